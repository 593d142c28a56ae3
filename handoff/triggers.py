"""When the bot should hand a conversation to a person, decided after each bot turn."""

from __future__ import annotations

from dataclasses import dataclass

from handoff.sentiment import clearly_negative

FALLBACK_INTENTS = {"nlu_fallback"}


@dataclass(frozen=True)
class TurnSignals:
    """What one customer turn produced: the intent Rasa saw and whether the knowledge answer
    abstained (its sources did not support an answer)."""

    intent: str | None
    abstained: bool = False


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


PRIORITY_FOR = {"negative_sentiment": 2, "customer_request": 1}
