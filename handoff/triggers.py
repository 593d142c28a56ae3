"""When the bot should hand a conversation to a person, decided after each bot turn.

``Triggers`` is the ``conversations.escalation.Escalation`` policy the app wires into every
turn.
"""

from __future__ import annotations

from conversations.escalation import TurnSignals
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


class Triggers:
    """Parley's hand-off triggers: a request, clear frustration, two fallbacks or two
    abstentions in a row."""

    def reason(self, *, text: str, history: list[TurnSignals], requested: bool) -> str | None:
        return handoff_reason(text=text, history=history, requested=requested)

    def priority(self, reason: str) -> int:
        return PRIORITY_FOR.get(reason, 0)
