"""Tables for conversations and messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conversations.data import MessageData
from core.db import Base, JSONModel, UTCDateTime, utcnow

Role = Literal["customer", "bot", "agent"]


def new_id() -> str:
    return uuid.uuid4().hex


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    state: Mapped[str] = mapped_column(String(16), default="bot", index=True)
    # Hand-off: who holds it, why, and the timestamps the SLA is measured from.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"),
                                                 nullable=True, index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    skill: Mapped[str | None] = mapped_column(String(64), nullable=True)
    handoff_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_agent_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    csat_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    csat_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who the host site vouched for when the conversation was created (a verified customer
    # token, core/customers.py): {"email"?, "customer_id"?}; None for an anonymous customer.
    customer_identity: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                 onupdate=utcnow)


class Message(Base):
    """One message. Customer messages carry the client's id and a processing status.

    ``status`` is ``pending`` from the moment the customer message is stored until its
    replies are stored in the same transaction that marks it ``done``; a message left
    ``pending`` by a crash is finished by the recovery pass at the next start. ``data`` is what
    the message carries besides its text (``conversations.data.MessageData``).
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "client_message_id", name="uq_messages_client_id"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    client_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reply_to: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="done", index=True)
    data: Mapped[MessageData] = mapped_column(JSONModel(MessageData), default=MessageData)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StateTransition(Base):
    """Audit trail: every change of a conversation's state, who made it and why."""

    __tablename__ = "state_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
