"""Two companies' projects, run side by side through the real stack (NLU, actions, Rasa, API).

- Lumen Bank (English and Chinese): intents from the public BANKING77 dataset, one rule of its
  own, a small knowledge base written here; everything else is Parley's built-in core.
- Harbor Books (Chinese only): nothing but ``parley.yml`` and a knowledge base.

Neither may ever show the demo company, and neither may see the other's knowledge or
conversations.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import ROOT
from tests.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BANKING77 = ROOT.parent / "shared" / "datasets" / "banking77" / "train.csv"
INTENTS = ("card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_limits")
DEMO_SOURCES = {p.stem for p in (ROOT / "examples" / "nimbus-home" / "kb").rglob("*.md")}

LUMEN_YML = """\
company:
  name: Lumen Bank
languages: [en, zh]
default_language: en
assistant:
  tone: formal
widget:
  color: "#1d4ed8"
"""
LUMEN_DOMAIN = """\
version: "3.1"
intents: [lost_or_stolen_card]
responses:
  utter_freeze_card:
    - text: "您的卡已可在手机银行的「卡片」页面立即冻结。"
      condition:
        - type: slot
          name: language
          value: zh
    - text: "You can freeze your card at once on the Cards screen of the Lumen app."
"""
LUMEN_RULES = """\
version: "3.1"
rules:
  - rule: a lost card is frozen in the app
    steps:
      - intent: lost_or_stolen_card
      - action: utter_freeze_card
"""
LUMEN_KB = {
    "en/cards.md": """---
title: Cards and exchange rates
lang: en
id: lumen-cards
---

## New cards

A new Lumen card arrives within 3 to 5 working days after you order it.

## Exchange rates

Card payments in another currency use the Mastercard exchange rate with no markup on weekdays.
""",
    "zh/cards.md": """---
title: 银行卡与汇率
lang: zh
id: lumen-cards-zh
---

## 新卡

新的 Lumen 银行卡会在下单后 3 至 5 个工作日内寄到。

## 汇率

外币刷卡在工作日按万事达卡汇率结算，不加收任何费用。
""",
}
HARBOR_YML = """\
company:
  name: 海港书店
languages: [zh]
"""
HARBOR_KB = {
    "zh/shipping.md": """---
title: 配送与运费
lang: zh
id: harbor-shipping
---

## 运费

订单满 99 元包邮，不满 99 元收取 8 元运费。

## 配送时间

江浙沪地区一般 2 天送达，其他地区 3 到 5 天送达。
""",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def banking77_intents(path: Path, per_intent: int = 40) -> str:
    """``text,intent`` rows for a few BANKING77 intents, read from the shared dataset."""
    rows: dict[str, list[str]] = {intent: [] for intent in INTENTS}
    with BANKING77.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in rows and len(rows[row["category"]]) < per_intent:
                rows[row["category"]].append(row["text"])
    lines = ["text,intent"] + [f'"{t.replace(chr(34), "")}",{i}' for i, ts in rows.items()
                               for t in ts]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    if not BANKING77.exists():
        pytest.skip(f"{BANKING77} is not on this machine")
    root = tmp_path_factory.mktemp("projects")
    models = root / "models"  # Parley's model cache, shared as on one machine
    lumen = write(root / "lumen", {"parley.yml": LUMEN_YML, "dialogue/domain.yml": LUMEN_DOMAIN,
                                   "dialogue/rules.yml": LUMEN_RULES,
                                   **{f"kb/{k}": v for k, v in LUMEN_KB.items()}})
    (lumen / "nlu").mkdir()
    (lumen / "nlu" / "banking77.csv").write_text(banking77_intents(BANKING77), encoding="utf-8")
    harbor = write(root / "harbor", {"parley.yml": HARBOR_YML,
                                     **{f"kb/{k}": v for k, v in HARBOR_KB.items()}})
    with running_stack(root / "lumen-state", project=lumen, models=models) as a, \
            running_stack(root / "harbor-state", project=harbor, models=models) as b:
        yield {"lumen": a, "harbor": b}


class Chat:
    def __init__(self, stack: Stack, locale: str) -> None:
        self.http = httpx.Client(base_url=stack.api_url, timeout=60)
        created = self.http.post("/api/v1/conversations", json={"locale": locale}).json()
        self.id, self.headers = created["id"], {"Authorization": f"Bearer {created['token']}"}

    def say(self, text: str) -> list[dict[str, Any]]:
        response = self.http.post(f"/api/v1/conversations/{self.id}/messages",
                                  headers=self.headers,
                                  json={"text": text, "client_message_id": uuid.uuid4().hex})
        assert response.status_code == 200, response.text
        return [m for m in response.json()["messages"] if m["role"] == "bot"]


def text_of(replies: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in replies)


def sources_of(replies: list[dict[str, Any]]) -> set[str]:
    return {c["source_id"] for m in replies for c in (m.get("citations") or [])}


def assert_not_the_demo(replies: list[dict[str, Any]]) -> None:
    assert "nimbus" not in text_of(replies).lower()
    cited = sources_of(replies)
    assert not {s for s in cited if any(s.startswith(d) for d in DEMO_SOURCES)}, cited
    assert "nimbus" not in str([m.get("citations") for m in replies]).lower()


@pytest.mark.parametrize(("locale", "script"), [
    ("en", [("hello", ["Lumen Bank"], None),
            ("When will my new card arrive?", ["3 to 5 working days"], "lumen-cards"),
            ("I think my card was stolen", ["freeze your card"], None),
            ("are you a bot?", ["Lumen Bank"], None)]),
    ("zh", [("你好", ["Lumen Bank"], None),
            ("我的新卡多久能寄到？", ["3 至 5 个工作日"], "lumen-cards-zh")]),
])
def test_a_bank_project_answers_from_its_own_intents_and_knowledge(
        projects: dict[str, Stack], locale: str,
        script: list[tuple[str, list[str], str | None]]) -> None:
    chat = Chat(projects["lumen"], locale)
    for text, expected, source in script:
        replies = chat.say(text)
        assert any(e in text_of(replies) for e in expected), (text, text_of(replies))
        if source:
            assert source in sources_of(replies), (text, sources_of(replies))
        assert_not_the_demo(replies)


def test_a_knowledge_only_project_answers_every_question_from_its_knowledge(
        projects: dict[str, Stack]) -> None:
    chat = Chat(projects["harbor"], "zh")
    greeting = chat.say("你好")
    assert "海港书店" in text_of(greeting)
    for question in ("运费怎么算？", "买多少钱可以包邮？"):
        replies = chat.say(question)
        assert "99 元" in text_of(replies), (question, text_of(replies))
        assert sources_of(replies) == {"harbor-shipping"}
        assert_not_the_demo(replies)


def test_projects_side_by_side_see_neither_the_others_knowledge_nor_its_chats(
        projects: dict[str, Stack]) -> None:
    lumen, harbor = projects["lumen"], projects["harbor"]
    assert lumen.settings.var_dir != harbor.settings.var_dir
    replies = Chat(lumen, "zh").say("运费怎么算？买多少包邮？")
    assert "99" not in text_of(replies) and not sources_of(replies) & {"harbor-shipping"}
    replies = Chat(harbor, "zh").say("新卡多久能寄到？")
    assert "3 至 5" not in text_of(replies) and not sources_of(replies) & {"lumen-cards-zh"}
    chat = Chat(lumen, "en")
    chat.say("hello")
    other = httpx.get(f"{harbor.api_url}/api/v1/conversations/{chat.id}/messages",
                      headers=chat.headers, timeout=30)
    assert other.status_code in (401, 404)
