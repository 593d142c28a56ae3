"""When a bot turn should bring in a person: the policy the turn asks, and what it is told.

The conversation flow only knows this Protocol; the hand-off package provides the policy
(``handoff.triggers.Triggers``) and the app wires it in, so conversations never import the
hand-off package that is built on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TurnSignals:
    """What one customer turn produced: the intent Rasa saw and whether the knowledge answer
    abstained (its sources did not support an answer)."""

    intent: str | None
    abstained: bool = False


class Escalation(Protocol):
    def reason(self, *, text: str, history: list[TurnSignals], requested: bool) -> str | None:
        """``history`` holds this turn's signals last. The hand-off reason, or None to stay."""
        ...

    def priority(self, reason: str) -> int:
        """Queue priority for a hand-off with this reason (higher is served first)."""
        ...

    def closed_notice(self, language: str) -> str | None:
        """What the customer is told on a hand-off while no one answers (outside the project's
        hand-off hours), or None while people are at work."""
        ...

