"""Shapes of the agent console API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conversations.schemas import MessagePublic, State
from knowledge.schemas import Citation


class SlaPublic(BaseModel):
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_breached: bool
    resolution_breached: bool


class QueueItem(BaseModel):
    id: str
    state: State
    locale: str
    priority: int
    skill: str | None
    handoff_reason: str | None
    queued_at: datetime | None
    waiting_s: float | None
    agent_id: int | None
    last_message: str | None
    sla: SlaPublic


class NotePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    agent_id: int | None
    text: str
    created_at: datetime


class Summary(BaseModel):
    """What the bot learnt, so the customer never repeats themselves."""

    intents: list[str]
    slots: dict[str, Any]
    entities: list[dict[str, Any]]
    handoff_reason: str | None
    knowledge_answers: list[Citation]


class Suggestion(BaseModel):
    title: str
    text: str
    source_id: str


class ConversationDetail(BaseModel):
    conversation: QueueItem
    messages: list[MessagePublic]
    notes: list[NotePublic]
    summary: Summary
    suggestions: list[Suggestion]
    csat_score: int | None = None
    csat_comment: str | None = None


class AgentMessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: int | None = None
    skill: str | None = Field(default=None, max_length=64)


class HandBackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slots: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class QueueStatus(BaseModel):
    state: State
    position: int | None
    estimated_wait_s: float | None
    agents_online: int


class CsatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)
