"""Analytics tables: facts folded from the outbox (``core.outbox``), hourly rollups and the
fold's cursor. Nothing here is written by a request; only ``analytics.fold`` writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime


class ConversationFact(Base):
    """One conversation's outcome. The cohort of a period is the conversations opened in it;
    every rate divides by that cohort.

    Indexes: a cohort is a range of ``opened_at``, with or without one language; both indexes
    end with the id, so joining a cohort to its parses reads no table row (SQLite keeps no
    statistics, and a lone ``language`` index, two values, made it scan half the table)."""

    __tablename__ = "analytics_conversations"
    __table_args__ = (
        Index("ix_analytics_conversations_cohort", "opened_at", "language", "conversation_id"),
        Index("ix_analytics_conversations_language_cohort", "language", "opened_at",
              "conversation_id"),
    )

    conversation_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    language: Mapped[str] = mapped_column(String(16), default="en")
    turns: Mapped[int] = mapped_column(Integer, default=0)  # customer messages parsed
    messages: Mapped[int] = mapped_column(Integer, default=0)  # system notices not counted
    answers: Mapped[int] = mapped_column(Integer, default=0)
    abstentions: Mapped[int] = mapped_column(Integer, default=0)
    handed_off: Mapped[bool] = mapped_column(Boolean, default=False)
    handoff_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_agent_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_response_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The standing resolution (None once reopened within the window, until resolved again).
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(8), nullable=True)  # bot | agent
    resolution_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    bot_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    reopened: Mapped[bool] = mapped_column(Boolean, default=False)
    csat: Mapped[int | None] = mapped_column(Integer, nullable=True)
    csat_by: Mapped[str | None] = mapped_column(String(8), nullable=True)  # bot | human
    agent_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class AnswerFact(Base):
    """One answer from the knowledge path (cited or abstained)."""

    __tablename__ = "analytics_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    message_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    question: Mapped[str] = mapped_column(Text, default="")
    abstained: Mapped[bool] = mapped_column(Boolean, default=False)
    abstain_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    generator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    stage_ms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kept: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dropped: Mapped[list[Any]] = mapped_column(JSON, default=list)
    top_score: Mapped[float | None] = mapped_column(Float, nullable=True)


class ParseFact(Base):
    """What the NLU made of one customer message, and how long the whole turn took.

    The cohort index holds every column the summary reads, so a cohort's parses are read from
    the index alone (the summary's largest join)."""

    __tablename__ = "analytics_parses"
    __table_args__ = (
        Index("ix_analytics_parses_cohort", "conversation_id", "intent", "nlu_version", "canary",
              "low_confidence", "fallback", "turn_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    nlu_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    canary: Mapped[bool] = mapped_column(Boolean, default=False)
    low_confidence: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    turn_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class HourlyRollup(Base):
    """Counts (and sums) per UTC hour of the conversations' opening, language, metric and
    dimension (a hand-off reason, who was rated; "" for none), kept equal to what the facts
    give by the fold (it applies each fact's change as a difference)."""

    __tablename__ = "analytics_hourly"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    count: Mapped[int] = mapped_column(Integer, default=0)
    sum: Mapped[float] = mapped_column(Float, default=0.0)


class HourlyParses(Base):
    """The parses of the conversations opened in a UTC hour, by the conversation's language,
    intent, NLU version and canary flag ("" for no intent or version): what the summary's
    intents and NLU table read instead of joining a cohort to its parses. A parse only ever
    adds (a conversation's language is settled by its first parse, before any is counted)."""

    __tablename__ = "analytics_hourly_parses"
    __table_args__ = ({"sqlite_with_rowid": False},)  # as HourlyLatency's

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    intent: Mapped[str] = mapped_column(String(64), primary_key=True)
    nlu_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    canary: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    parses: Mapped[int] = mapped_column(Integer, default=0)
    low_confidence: Mapped[int] = mapped_column(Integer, default=0)
    fallback: Mapped[int] = mapped_column(Integer, default=0)


class HourlyLatency(Base):
    """Latency histograms (``analytics.histogram`` buckets) per UTC hour of the conversations'
    opening, language and stage: ``turn_ms`` (each parsed turn), ``first_response_s`` and
    ``resolution_s`` (the standing resolution; a reopening takes it out again).

    On SQLite the table is ``WITHOUT ROWID``: a period's rows are one range of the primary key
    and are read from it alone (with a rowid, SQLite read the key's index and then every row:
    twice the time for the ~200,000 rows of 30 days at 1M messages)."""

    __tablename__ = "analytics_hourly_latency"
    __table_args__ = ({"sqlite_with_rowid": False},)

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FoldCursor(Base):
    """One row: the id of the last outbox event folded."""

    __tablename__ = "analytics_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
