"""Rasa's own events, from Rasa's event broker, into analytics facts and an hourly rollup.

Where Rasa sends them (``event_broker`` in endpoints.yml):

- **SQL (default).** ``parley run`` writes ``broker_endpoint(settings)``: Rasa's
  ``SQLEventBroker`` appends each tracker event as a row ``(id, sender_id, data)`` of a table
  ``events``: in ``<var_dir>/rasa/events.db`` with SQLite, in the schema ``rasa_events`` of
  Parley's database with PostgreSQL (migration 0008 creates it; the tracker store's own
  ``events`` table is in ``public``, and the two must not meet). The reader keeps a cursor by
  row id in ``analytics_rasa_cursor`` and re-reads the last ``OVERLAP`` ids each time, so a
  row whose id was handed out before a later one's but committed after it is still read.
- **Kafka (the production stack, or ``PARLEY_KAFKA_BOOTSTRAP`` set).** bot/endpoints.compose.yml
  (and then ``broker_endpoint``) sends them to ``TOPIC``; the reader consumes it in the group
  ``GROUP_ID`` and commits the offsets once the facts are committed (at least once).

Either way an event's key is the SHA-256 of its sender and its JSON: an event delivered twice
(a Kafka redelivery, a row read again, the same event published twice) is stored once, and only
a newly stored event adds to the rollup. Which events count:

- ``user``: the intent Rasa acted on and its confidence (metric ``intent``; ``low_confidence``
  under ``LOW_CONFIDENCE``; ``fallback`` for ``nlu_fallback``);
- ``action`` of a fallback action (``FALLBACK_ACTIONS``): metric ``fallback``;
- ``active_loop`` with a form name: metric ``form`` (a form started);
- ``action_execution_rejected``: metric ``rejected`` (a form or action refused to run).

``analytics_hourly_rasa`` counts them per UTC hour *of the event*, language (the conversation's,
from ``analytics_conversations``; "" when Parley has no such conversation), metric and name.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote, urlparse

import sqlalchemy as sa
from sqlalchemy import Boolean, Float, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from analytics.models import ConversationFact
from core.config import Settings
from core.db import Base, UTCDateTime, async_url, utcnow

logger = logging.getLogger(__name__)

TOPIC = "rasa_events"  # bot/endpoints.compose.yml and docker-compose.yml's kafka-topics
GROUP_ID = "parley-rasa-events"
SCHEMA = "rasa_events"  # PostgreSQL: the broker's schema in Parley's database
OVERLAP = 1000  # broker rows read again each time (ids committed out of order)
BATCH = 5000
LOW_CONFIDENCE = 0.5  # as analytics.fold
FALLBACK_ACTIONS = frozenset({"action_default_fallback", "action_two_stage_fallback"})
SQL_SOURCE, KAFKA_SOURCE = "sql", "kafka"


class RasaEventFact(Base):
    """One Rasa event analytics uses, stored once (``key``)."""

    __tablename__ = "analytics_rasa_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))  # user | action | active_loop | ...rejected
    name: Mapped[str] = mapped_column(String(64), default="")  # intent, action or form
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)


class HourlyRasa(Base):
    """Counts of Rasa events per UTC hour of the event, language, metric and name."""

    __tablename__ = "analytics_hourly_rasa"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class RasaCursor(Base):
    """Per source ("sql"): the highest broker row id read."""

    __tablename__ = "analytics_rasa_cursor"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# ---------------------------------------------------------------- where Rasa writes

def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+"))


def broker_url(settings: Settings) -> str:
    """The SQL broker's database, as Rasa's SQLAlchemy (psycopg2) and Parley both read it."""
    if _is_postgres(settings.database_url):
        parsed = urlparse(settings.database_url)
        auth = quote(unquote(parsed.username or ""), safe="")
        if parsed.password:
            auth += ":" + quote(unquote(parsed.password), safe="")
        host = f"{auth}@{parsed.hostname}" if auth else str(parsed.hostname)
        return (f"postgresql://{host}:{parsed.port or 5432}{parsed.path}"
                f"?options=-csearch_path%3D{SCHEMA}")
    return f"sqlite:///{settings.var_dir / 'rasa' / 'events.db'}"


def broker_endpoint(settings: Settings) -> dict[str, object]:
    """``event_broker`` of the endpoints.yml ``parley run`` writes: Kafka when
    ``kafka_bootstrap`` is set (where ``fold_rasa_events`` then reads), else Rasa 3.6's
    SQLEventBroker (a full URL in ``url`` is used as it is, else ``dialect`` and ``db``)."""
    if settings.kafka_bootstrap:
        return {"type": "kafka", "url": settings.kafka_bootstrap.split(","), "topic": TOPIC,
                "client_id": "parley-rasa", "partition_by_sender": True,
                "security_protocol": "PLAINTEXT"}
    if _is_postgres(settings.database_url):
        return {"type": "SQL", "url": broker_url(settings)}
    return {"type": "SQL", "dialect": "sqlite",
            "db": str(settings.var_dir / "rasa" / "events.db")}


# ---------------------------------------------------------------- what an event is worth

@dataclass(frozen=True)
class Useful:
    kind: str
    name: str
    confidence: float | None
    metrics: tuple[str, ...]

    @property
    def fallback(self) -> bool:
        return "fallback" in self.metrics


def event_key(event: dict[str, Any]) -> str:
    """The same event, however delivered, has the same key."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def useful(event: dict[str, Any]) -> Useful | None:
    """What analytics takes from one Rasa event, or None for the events it ignores."""
    kind, name = event.get("event"), event.get("name")
    if kind == "user":
        intent = (event.get("parse_data") or {}).get("intent") or {}
        intent_name = str(intent.get("name") or "")[:64]
        if not intent_name:
            return None
        raw = intent.get("confidence")
        confidence = float(raw) if isinstance(raw, int | float) else None
        metrics = ["intent"]
        if confidence is not None and confidence < LOW_CONFIDENCE:
            metrics.append("low_confidence")
        if intent_name == "nlu_fallback":
            metrics.append("fallback")
        return Useful("user", intent_name, confidence, tuple(metrics))
    if kind == "action" and name in FALLBACK_ACTIONS:
        return Useful("action", str(name), _number(event.get("confidence")), ("fallback",))
    if kind == "active_loop" and name:
        return Useful("active_loop", str(name)[:64], None, ("form",))
    if kind == "action_execution_rejected" and name:
        return Useful(kind, str(name)[:64], None, ("rejected",))
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _at(event: dict[str, Any]) -> datetime:
    stamp = event.get("timestamp")
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, UTC)
    return utcnow()


# ---------------------------------------------------------------- folding

async def store(session: AsyncSession, events: list[dict[str, Any]]) -> int:
    """Store the useful events not stored before and add them to the rollup; how many were
    new. The caller commits (and holds the source's cursor lock)."""
    candidates: dict[str, tuple[dict[str, Any], Useful]] = {}
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("sender_id"), str):
            continue
        found = useful(event)
        if found is not None:
            candidates.setdefault(event_key(event), (event, found))
    if not candidates:
        return 0
    keys = list(candidates)
    seen: set[str] = set()
    for start in range(0, len(keys), 500):
        seen.update((await session.execute(select(RasaEventFact.key).where(
            RasaEventFact.key.in_(keys[start:start + 500])))).scalars())
    new = {key: value for key, value in candidates.items() if key not in seen}
    if not new:
        return 0
    senders = {event["sender_id"][:255] for event, _ in new.values()}
    languages = dict((await session.execute(select(
        ConversationFact.conversation_id, ConversationFact.language).where(
        ConversationFact.conversation_id.in_(senders)))).tuples().all())
    counts: Counter[tuple[datetime, str, str, str]] = Counter()
    rows = []
    for key, (event, found) in new.items():
        sender, at = event["sender_id"][:255], _at(event)
        rows.append({"key": key, "sender_id": sender, "at": at, "kind": found.kind,
                     "name": found.name, "confidence": found.confidence,
                     "fallback": found.fallback})
        hour = at.replace(minute=0, second=0, microsecond=0)
        for metric in found.metrics:
            counts[(hour, languages.get(sender) or "", metric, found.name)] += 1
    await session.execute(_insert(session, RasaEventFact).on_conflict_do_nothing(
        index_elements=["key"]), rows)
    insert = _insert(session, HourlyRasa)
    await session.execute(insert.on_conflict_do_update(
        index_elements=["hour", "language", "metric", "name"],
        set_={"count": HourlyRasa.__table__.c["count"] + insert.excluded["count"]}),
        [{"hour": h, "language": lang, "metric": m, "name": n, "count": c}
         for (h, lang, m, n), c in counts.items()])
    return len(new)


def _insert(session: AsyncSession, model: type[Base]) -> Any:
    table = cast(Table, model.__table__)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def _cursor(session: AsyncSession, source: str) -> RasaCursor:
    cursor = (await session.execute(select(RasaCursor).where(RasaCursor.source == source)
                                    .with_for_update())).scalar_one_or_none()
    if cursor is None:
        cursor = RasaCursor(source=source, last_id=0)
        session.add(cursor)
    return cursor


BROKER_EVENTS = sa.table("events", sa.column("id", sa.Integer), sa.column("sender_id"),
                         sa.column("data", sa.Text))


async def fold_sql(maker: async_sessionmaker[AsyncSession], url: str, *,
                   batch: int = BATCH) -> int:
    """Read the SQL broker's table after the cursor (less ``OVERLAP``) and store what is new;
    the number of new events. A missing broker database or table reads as empty."""
    if _no_sqlite_file(url):
        return 0
    engine = create_async_engine(async_url(url))
    total = 0
    try:
        while True:
            async with maker() as session, session.begin():
                cursor = await _cursor(session, SQL_SOURCE)
                try:
                    async with engine.connect() as broker:
                        highest = (await broker.execute(
                            select(sa.func.max(BROKER_EVENTS.c.id)))).scalar() or 0
                        if highest < cursor.last_id:  # the broker's table was started afresh
                            cursor.last_id = 0
                        rows = (await broker.execute(
                            select(BROKER_EVENTS.c.id, BROKER_EVENTS.c.data)
                            .where(BROKER_EVENTS.c.id > max(cursor.last_id - OVERLAP, 0))
                            .order_by(BROKER_EVENTS.c.id).limit(batch + OVERLAP))).all()
                except sa.exc.DBAPIError as exc:  # no table yet: Rasa has published nothing
                    logger.info("Rasa's event broker table is not readable yet (%s)",
                                type(exc).__name__)
                    return total
                total += await store(session, [_loads(data) for _, data in rows])
                if rows and rows[-1][0] > cursor.last_id:
                    cursor.last_id = rows[-1][0]
                    cursor.updated_at = utcnow()
                done = cursor.last_id >= highest
            if done:
                return total
    finally:
        await engine.dispose()


def _no_sqlite_file(url: str) -> bool:
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()


def _loads(data: Any) -> dict[str, Any]:
    try:
        event = json.loads(data) if isinstance(data, str | bytes) else None
    except ValueError:
        event = None
    return event if isinstance(event, dict) else {}


async def fold_kafka(maker: async_sessionmaker[AsyncSession], bootstrap: str, *,
                     topic: str = TOPIC, group_id: str = GROUP_ID, idle_s: float = 2.0,
                     max_records: int = BATCH) -> int:
    """Consume ``topic`` in ``group_id`` until nothing arrives for ``idle_s``; each batch is
    stored and committed to the database before its offsets are committed to Kafka."""
    import asyncio
    import time

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group_id,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    total, last = 0, time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                await asyncio.sleep(0)
                continue
            last = time.monotonic()
            async with maker() as session, session.begin():
                await _cursor(session, KAFKA_SOURCE)  # one folder at a time
                total += await store(session, [_loads(r.value) for r in records])
            await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
    finally:
        await consumer.stop()
    return total


def broker_in_use(settings: Settings) -> bool:
    """Whether there can be anything to read: Kafka or PostgreSQL configured, or the SQLite
    file Rasa's broker creates on its first start."""
    return bool(settings.kafka_bootstrap) or not _no_sqlite_file(broker_url(settings))


async def fold_rasa_events(settings: Settings,
                           maker: async_sessionmaker[AsyncSession]) -> int:
    """Fold what Rasa's broker has sent since last time: Kafka when ``kafka_bootstrap`` is set
    (the production stack), else the SQL broker ``broker_endpoint`` configured."""
    if settings.kafka_bootstrap:
        return await fold_kafka(maker, settings.kafka_bootstrap)
    return await fold_sql(maker, broker_url(settings))
