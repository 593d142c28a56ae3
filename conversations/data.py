"""What a message carries besides its text: ``messages.data``, as one typed schema.

Guarantees:
- every key is optional, so rows written before a key existed read with its default;
- keys this schema does not know are kept, so reading and writing a row loses nothing;
- only values that differ from their defaults are stored (``core.db.JSONModel``), in the JSON
  format rows have always had: a missing key and its default read the same;
- ``MessageData`` is frozen: ``replace`` returns a validated copy to assign to
  ``Message.data``, so SQLAlchemy sees every change.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from knowledge.schemas import Citation


class Button(BaseModel):
    title: str
    payload: str


class EntityValue(BaseModel):
    """An entity the NLU found in a customer message, as Rasa reports it: name and value
    (the span in the text, with offsets, is ``nlu.data.Entity``)."""

    entity: str | None = None
    value: Any = None


class AnswerAudit(BaseModel):
    """How a knowledge answer was made (answered or abstained): ``Answer.audit()`` in
    ``knowledge.answer``, sent by the action in its custom payload and stored with the
    customer message it answers (as ``abstained`` is), whence the analytics fold reads it.

    ``stage_ms``: retrieval, generation and gate; ``kept`` / ``dropped``: the sentences the
    gate let through and refused; ``top_score``: the best retrieval score of anything found
    (None when nothing was); ``scores``: the retrieval score of each citation, in order.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    generator: str = ""
    latency_ms: float = 0.0
    stage_ms: dict[str, float] = Field(default_factory=dict)
    kept: list[str] = Field(default_factory=list)
    dropped: list[str] = Field(default_factory=list)
    top_score: float | None = None
    scores: list[float] = Field(default_factory=list)


class MessageData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    # A customer message, once the bot has processed it: what Rasa understood.
    intent: str | None = None
    confidence: float | None = None
    entities: list[EntityValue] = Field(default_factory=list)
    slots: dict[str, Any] = Field(default_factory=dict)
    active_loop: str | None = None
    abstained: bool = Field(default=False, description="The knowledge answer abstained.")
    abstain_reason: str | None = None
    payload: str | None = Field(default=None, description="The payload of the button the "
                                "customer clicked (the text is the button's title); it is "
                                "what the dialogue received.")
    # A bot reply.
    buttons: list[Button] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    audit: AnswerAudit | None = None
    # An agent's message, or a notice from Parley itself (an agent joined, hand-back, rating).
    agent_id: int | None = None
    agent_name: str | None = None
    system: bool = False

    def replace(self, **changes: Any) -> MessageData:
        """A copy with ``changes`` applied, validated as a stored row is."""
        return MessageData.model_validate({**self.model_dump(exclude_defaults=True), **changes})
