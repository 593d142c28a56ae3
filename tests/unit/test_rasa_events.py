"""Rasa's events from its SQL event broker into facts and the hourly rollup (analytics.rasa_events).

The broker's table is written here as Rasa 3.6's ``SQLEventBroker`` writes it (table ``events``:
``id INTEGER PRIMARY KEY, sender_id VARCHAR(255), data TEXT``, one JSON event per row, the body
``{"sender_id": ..., **event.as_dict()}`` of ``TrackerStore._stream_new_events``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.models import ConversationFact
from analytics.rasa_events import (
    OVERLAP,
    HourlyRasa,
    RasaCursor,
    RasaEventFact,
    broker_endpoint,
    broker_url,
    fold_sql,
    store,
    useful,
)
from core import db
from core.config import Settings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC).timestamp()


def user(sender: str, intent: str, confidence: float, at: float) -> dict[str, Any]:
    return {"sender_id": sender, "event": "user", "timestamp": at, "text": "…",
            "parse_data": {"intent": {"name": intent, "confidence": confidence},
                           "entities": [], "text": "…"},
            "input_channel": "parley", "message_id": f"m{at}", "metadata": {}}


def other(sender: str, kind: str, name: str | None, at: float) -> dict[str, Any]:
    return {"sender_id": sender, "event": kind, "timestamp": at, "name": name,
            "metadata": {}}


def conversation(sender: str) -> list[dict[str, Any]]:
    return [other(sender, "action", "action_session_start", T0),
            user(sender, "order_status", 0.93, T0 + 1),
            other(sender, "active_loop", "order_form", T0 + 2),
            other(sender, "action_execution_rejected", "order_form", T0 + 3),
            user(sender, "nlu_fallback", 0.31, T0 + 4),
            other(sender, "action", "action_default_fallback", T0 + 5),
            {"sender_id": sender, "event": "bot", "timestamp": T0 + 6, "text": "Sorry?"},
            other(sender, "action", "action_listen", T0 + 7),
            other(sender, "active_loop", None, T0 + 8)]  # the form ended: not counted


class Broker:
    """The ``events`` table of Rasa's SQLEventBroker, in an SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER NOT NULL, "
                         "sender_id VARCHAR(255), data TEXT, PRIMARY KEY (id))")

    def publish(self, *events: dict[str, Any]) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.executemany("INSERT INTO events (sender_id, data) VALUES (?, ?)",
                             [(e.get("sender_id"), json.dumps(e)) for e in events])

    def drop(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("DROP TABLE events")

    def clear(self) -> None:
        self.drop()
        self.__init__(self.path)  # type: ignore[misc]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", var_dir=tmp_path / "var",
                    secret_key=SecretStr("unit-test-secret-key-0123456789"),
                    rasa_token=SecretStr("unit-rasa-token"))


@pytest.fixture
async def maker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    db.upgrade_database(settings.database_url)
    engine = db.create_engine(settings.database_url)
    try:
        yield db.sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def broker(settings: Settings) -> Broker:
    return Broker(settings.var_dir / "rasa" / "events.db")


async def rollup(maker: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str, str], int]:
    async with maker() as session:
        rows = (await session.execute(select(HourlyRasa))).scalars().all()
    return {(r.language, r.metric, r.name): r.count for r in rows}


async def facts(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return int((await session.execute(select(func.count(RasaEventFact.id)))).scalar_one())


EXPECTED = {("intent", "order_status"): 1, ("intent", "nlu_fallback"): 1,
            ("low_confidence", "nlu_fallback"): 1, ("fallback", "nlu_fallback"): 1,
            ("fallback", "action_default_fallback"): 1, ("form", "order_form"): 1,
            ("rejected", "order_form"): 1}


def expected(language: str, times: int = 1) -> dict[tuple[str, str, str], int]:
    return {(language, metric, name): count * times for (metric, name), count in EXPECTED.items()}


async def test_the_useful_events_are_stored_and_counted(settings, maker, broker):
    broker.publish(*conversation("c1"))
    assert await fold_sql(maker, broker_url(settings)) == 5
    assert await rollup(maker) == expected("")
    async with maker() as session:
        stored = (await session.execute(select(RasaEventFact))).scalars().all()
        hours = (await session.execute(select(HourlyRasa.hour).distinct())).scalars().all()
    assert {(f.kind, f.name, f.fallback) for f in stored} == {
        ("user", "order_status", False), ("user", "nlu_fallback", True),
        ("active_loop", "order_form", False), ("action_execution_rejected", "order_form", False),
        ("action", "action_default_fallback", True)}
    assert hours == [datetime(2026, 3, 2, 9, tzinfo=UTC)]


async def test_an_event_delivered_twice_changes_no_figure(settings, maker, broker):
    events = conversation("c1")
    broker.publish(*events, *events)  # the broker wrote every event twice
    assert await fold_sql(maker, broker_url(settings)) == 5
    broker.publish(*events[3:])  # and again, later, after the cursor
    assert await fold_sql(maker, broker_url(settings)) == 0
    assert await rollup(maker) == expected("")
    assert await facts(maker) == 5


async def test_a_redelivered_batch_is_stored_once(maker):
    events = conversation("c1")
    async with maker() as session, session.begin():  # one Kafka batch with a redelivery
        assert await store(session, [*events, *events]) == 5
    async with maker() as session, session.begin():  # the same batch after a rebalance
        assert await store(session, events) == 0
    assert await rollup(maker) == expected("")


async def test_the_reader_resumes_after_its_cursor(settings, maker, broker):
    broker.publish(*conversation("c1"))
    url = broker_url(settings)
    assert await fold_sql(maker, url) == 5
    assert await fold_sql(maker, url) == 0  # nothing new: the overlap is read again, harmlessly
    broker.publish(*conversation("c2"))
    assert await fold_sql(maker, url) == 5
    assert await rollup(maker) == expected("", times=2)
    async with maker() as session:
        cursor = (await session.execute(select(RasaCursor))).scalar_one()
    assert (cursor.source, cursor.last_id) == ("sql", 18)


async def test_many_rows_are_read_in_batches(settings, maker, broker):
    senders = [f"c{i}" for i in range(OVERLAP // 9 + 40)]  # more rows than the overlap
    broker.publish(*[e for s in senders for e in conversation(s)])
    assert await fold_sql(maker, broker_url(settings), batch=100) == 5 * len(senders)
    assert await rollup(maker) == expected("", times=len(senders))


async def test_a_row_committed_late_within_the_overlap_is_read(settings, maker, broker):
    broker.publish(*conversation("c1"))
    url = broker_url(settings)
    await fold_sql(maker, url)
    with sqlite3.connect(broker.path) as conn:  # an id handed out earlier, committed now
        conn.execute("DELETE FROM events WHERE id = 2")
    async with maker() as session, session.begin():
        await session.execute(RasaEventFact.__table__.delete().where(
            RasaEventFact.name == "order_status"))
        await session.execute(HourlyRasa.__table__.delete())
    with sqlite3.connect(broker.path) as conn:
        conn.execute("INSERT INTO events (id, sender_id, data) VALUES (2, 'c1', ?)",
                     (json.dumps(user("c1", "order_status", 0.93, T0 + 1)),))
    assert await fold_sql(maker, url) == 1
    assert await rollup(maker) == {("", "intent", "order_status"): 1}


async def test_a_broker_table_started_afresh_is_read_from_its_start(settings, maker, broker):
    broker.publish(*conversation("c1"), *conversation("c2"))
    url = broker_url(settings)
    assert await fold_sql(maker, url) == 10
    broker.clear()
    broker.publish(*conversation("c1"), *conversation("c3"))  # ids from 1 again
    assert await fold_sql(maker, url) == 5  # c1's were stored before
    assert await rollup(maker) == expected("", times=3)


async def test_the_language_is_the_conversations(settings, maker, broker):
    async with maker() as session, session.begin():
        session.add(ConversationFact(conversation_id="c1", language="de",
                                     opened_at=datetime(2026, 3, 2, 9, tzinfo=UTC)))
    broker.publish(*conversation("c1"), *conversation("c2"))
    await fold_sql(maker, broker_url(settings))
    assert await rollup(maker) == {**expected("de"), **expected("")}


async def test_no_broker_yet_reads_nothing(settings, maker):
    assert await fold_sql(maker, broker_url(settings)) == 0
    Broker(Path(broker_url(settings).removeprefix("sqlite:///"))).drop()  # no table
    assert await fold_sql(maker, broker_url(settings)) == 0


async def test_odd_rows_never_stop_the_reader(settings, maker, broker):
    with sqlite3.connect(broker.path) as conn:
        conn.executemany("INSERT INTO events (sender_id, data) VALUES (?, ?)",
                         [("c1", "not json"), ("c1", "[1]"), (None, None),
                          ("c1", json.dumps({"event": "user", "sender_id": "c1"}))])
    broker.publish(user("c1", "greet", "high", T0))  # type: ignore[arg-type]
    assert await fold_sql(maker, broker_url(settings)) == 1
    assert await rollup(maker) == {("", "intent", "greet"): 1}


def test_which_events_count():
    assert useful(user("c", "greet", 0.2, T0)).metrics == ("intent", "low_confidence")
    assert useful(other("c", "action", "utter_greet", T0)) is None
    assert useful(other("c", "action", "action_two_stage_fallback", T0)).fallback
    assert useful(other("c", "slot", "order_id", T0)) is None


def test_rasa_writes_where_the_reader_reads(tmp_path):
    def make(**kw: Any) -> Settings:
        return Settings(var_dir=tmp_path, secret_key=SecretStr("s" * 32),
                        rasa_token=SecretStr("t" * 32), **kw)

    assert broker_endpoint(make()) == {"type": "SQL", "dialect": "sqlite",
                                       "db": str(tmp_path / "rasa" / "events.db")}
    assert broker_url(make()) == f"sqlite:///{tmp_path / 'rasa' / 'events.db'}"
    pg = make(database_url="postgresql://bob:p%40ss%2Fw@db:5433/parley")
    url = "postgresql://bob:p%40ss%2Fw@db:5433/parley?options=-csearch_path%3Drasa_events"
    assert broker_endpoint(pg) == {"type": "SQL", "url": url} and broker_url(pg) == url
    kafka = broker_endpoint(make(kafka_bootstrap="k1:9092,k2:9092"))
    assert kafka["type"] == "kafka" and kafka["url"] == ["k1:9092", "k2:9092"]
    assert kafka["topic"] == "rasa_events" and kafka["partition_by_sender"] is True


def test_the_reader_runs_every_minute(settings):
    from workers.schedule import enqueue_due

    class Queue:
        def __init__(self) -> None:
            self.keys: list[str | None] = []

        def enqueue(self, task: str, payload: dict[str, Any], *, key: str | None = None) -> str:
            self.keys.append(key)
            return task

    queue = Queue()
    assert "analytics.rasa_events" not in enqueue_due(queue, settings, now=120.0)
    Broker(Path(broker_url(settings).removeprefix("sqlite:///")))  # Rasa has started
    assert "analytics.rasa_events" in enqueue_due(queue, settings, now=120.0)
    assert "periodic:analytics.rasa_events:2" in queue.keys


RASA_PYTHON = Path(__file__).resolve().parents[2] / ".venv-rasa" / "bin" / "python"
PUBLISH = """
import asyncio, json, sys
from rasa.core.brokers.broker import EventBroker
from rasa.shared.core.events import Event
from rasa.utils.endpoints import EndpointConfig

async def main():
    broker = await EventBroker.create(EndpointConfig.from_dict(json.loads(sys.argv[1])))
    for body in json.loads(sys.argv[2]):
        event = Event.from_parameters(body)
        broker.publish({"sender_id": body["sender_id"], **event.as_dict()})

asyncio.run(main())
"""


def publish_with_rasa(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Rasa's own SQLEventBroker, made from the endpoints.yml ``parley run`` writes."""
    import subprocess

    import yaml

    from web.runner import write_endpoints

    endpoint = yaml.safe_load(write_endpoints(settings).read_text())["event_broker"]
    result = subprocess.run([str(RASA_PYTHON), "-c", PUBLISH, json.dumps(endpoint),
                             json.dumps(events)], capture_output=True, text=True, timeout=120,
                            env={"SQLALCHEMY_SILENCE_UBER_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="no .venv-rasa (make install)")
async def test_rasa_s_own_sql_broker_writes_what_the_reader_reads(settings, maker):
    """Rasa publishes one conversation twice; the reader stores it once."""
    await asyncio.to_thread(publish_with_rasa, settings, conversation("c1") * 2)
    assert await fold_sql(maker, broker_url(settings)) == 5
    assert await rollup(maker) == expected("")
