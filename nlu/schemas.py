"""Shapes of the NLU service's HTTP API (Rasa's parse format)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ParseRequest(BaseModel):
    text: str = Field(max_length=10_000)
    message_id: str | None = None
    locale: str | None = None
    conversation_id: str | None = Field(default=None, max_length=200)  # canary routing


class IntentPublic(BaseModel):
    name: str | None
    confidence: float


class EntityPublic(BaseModel):
    entity: str
    start: int
    end: int
    value: str
    confidence_entity: float
    extractor: str


class ParsePublic(BaseModel):
    text: str
    intent: IntentPublic
    intent_ranking: list[IntentPublic]
    entities: list[EntityPublic]
    language: str | None  # None: the text says nothing (an order id alone); nlu.patterns
    model_version: str
