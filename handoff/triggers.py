"""When the bot should hand a conversation to a person, decided after each bot turn.

``Triggers`` is the ``conversations.escalation.Escalation`` policy the app wires into every
turn.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from conversations.escalation import TurnSignals
from core.project import project_of
from handoff.sentiment import clearly_negative

FALLBACK_INTENTS = {"nlu_fallback"}
PRIORITY_FOR = {"negative_sentiment": 2, "customer_request": 1}


def handoff_reason(*, text: str, history: list[TurnSignals], requested: bool) -> str | None:
    """``history`` holds this turn's signals last. Returns the reason, or None to stay."""
    if requested:
        return "customer_request"
    if clearly_negative(text):
        return "negative_sentiment"
    if len(history) >= 2 and all(t.intent in FALLBACK_INTENTS for t in history[-2:]):
        return "low_confidence"
    if len(history) >= 2 and all(t.abstained for t in history[-2:]):
        return "knowledge_abstained"
    return None


CLOSED_NOTICE = {
    "en": "Our team is offline right now. Your conversation is in the queue, and a person will "
          "reply here as soon as we are back.",
    "zh": "人工客服目前不在线。您的对话已进入排队，我们上班后会尽快在这里回复您。",
}


class Triggers:
    """Parley's hand-off triggers: a request, clear frustration, two fallbacks or two
    abstentions in a row; and the project's hand-off hours."""

    def __init__(self, project: Path | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.project = project
        self.clock = clock

    def reason(self, *, text: str, history: list[TurnSignals], requested: bool) -> str | None:
        return handoff_reason(text=text, history=history, requested=requested)

    def priority(self, reason: str) -> int:
        return PRIORITY_FOR.get(reason, 0)

    def closed_notice(self, language: str) -> str | None:
        if self.project is None:
            return None
        project = project_of(self.project)
        if project.open_at(self.clock()):
            return None
        return (project.text(project.handoff.outside_hours, language)
                or CLOSED_NOTICE.get(language, CLOSED_NOTICE["en"]))
