"""``parley init``: a new project that works at once.

It holds a ``parley.yml``, one example article per language, one example intent with its rule
and response (how a team adds its own), and empty places for the company graph. Parley's core
(greet, goodbye, hand-off, out of scope, questions, "are you a bot") comes built in.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from core.project import LANGUAGES, PROJECT_FILE, ProjectError, load_project

ARTICLE = {
    "en": """---
title: About {name}
lang: en
id: about
tags: [contact, hours]
---

## Opening hours

Our support team answers Monday to Friday, 9:00 to 17:00. The chat assistant answers around the
clock, and you can ask for a person at any time.

## Contact

You can also write to support@example.com. We reply to emails within one business day.
""",
    "zh": """---
title: 关于{name}
lang: zh
id: about-zh
tags: [contact, hours]
---

## 服务时间

人工客服的服务时间为周一至周五 9:00 至 17:00。智能助手 24 小时在线，您也可以随时要求转人工。

## 联系方式

您也可以发送邮件至 support@example.com，我们会在一个工作日内回复。
""",
}
INTENT = {
    "en": ["what's your email address?", "how can I contact you?", "how do I reach you",
           "what is your phone number", "can I email you?", "contact details please",
           "where can I send a letter?", "how do I get in touch"],
    "zh": ["你们的邮箱是多少？", "怎么联系你们？", "客服电话是多少", "可以给你们发邮件吗？",
           "你们的联系方式", "怎么和你们取得联系", "联系地址在哪里", "我想联系你们"],
}
CONTACT = {"en": "You can write to us at support@example.com; we reply within one business day.",
           "zh": "您可以发送邮件至 support@example.com，我们会在一个工作日内回复。"}


def scaffold(directory: Path, *, name: str, languages: list[str]) -> list[Path]:
    """Create the project in ``directory`` (new or empty); return the files written."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ProjectError(directory, None, "already exists and is not empty")
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if not languages or unknown:
        raise ProjectError(directory, None, f"languages must be some of {', '.join(LANGUAGES)}"
                                            f"{f', not {unknown}' if unknown else ''}")
    files: dict[str, str] = {
        PROJECT_FILE: _parley_yml(name, languages),
        ".gitignore": ".parley/\n",
        "company/README.md": "Graph entities for the assistant: `products.yml`, "
                             "`policies.yml`, `customers.yml` and `orders.yml`\n"
                             "(see examples/nimbus-home/company/ and docs/projects.md).\n",
        "dialogue/domain.yml": _dump({"version": "3.1", "intents": ["contact"], "responses": {
            "utter_contact": _variants(CONTACT, languages)}}),
        "dialogue/rules.yml": _dump({"version": "3.1", "rules": [
            {"rule": "contact details", "steps": [{"intent": "contact"},
                                                  {"action": "utter_contact"}]}]}),
    }
    for language in languages:
        files[f"kb/{language}/about.md"] = ARTICLE[language].format(name=name)
        files[f"nlu/{language}.yml"] = (
            'version: "3.1"\n\nnlu:\n- intent: contact\n  examples: |\n'
            + "".join(f"    - {text}\n" for text in INTENT[language]))
    written = []
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    load_project(directory)  # what we wrote must be a valid project
    return written


def _parley_yml(name: str, languages: list[str]) -> str:
    title = {lang: name for lang in languages}
    body = {"company": {"name": name}, "languages": languages,
            "default_language": languages[0],
            "assistant": {"name": "", "tone": "friendly"},
            "widget": {"title": title, "color": "#2563eb"},
            "orders": {"id_prefix": "", "id_digits": 6},
            "handoff": {"timezone": "UTC", "hours": {}}}
    return ("# Your Parley project. Every key is described in docs/projects.md.\n"
            "# orders: the shape of your order ids, e.g. id_prefix: ORD, id_digits: 8 for\n"
            "# ORD-20481733 (no prefix: the digits alone).\n"
            "# handoff.hours, e.g. {mon-fri: \"09:00-17:00\", sat: closed}: outside them the\n"
            "# customer is told when people answer (add handoff.outside_hours per language).\n"
            + _dump(body))


def _variants(texts: dict[str, str], languages: list[str]) -> list[dict[str, object]]:
    """One response variant per language: the default (first) language's without a
    condition, last."""
    others: list[dict[str, object]] = [{"text": texts[lang], "condition": [
        {"type": "slot", "name": "language", "value": lang}]} for lang in languages[1:]]
    return [*others, {"text": texts[languages[0]]}]


def _dump(data: object) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
