"""Knowledge changes over Kafka (the tansu broker) into the embedded queue and stores.

The consumer assigns itself the topic's partitions (a group join takes ~5 s on tansu) and
commits under its group id; a second consumer in the same group starts where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.config import Settings
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.graph.embedded import SQLiteGraphStore
from knowledge.ingest import chunk_document
from knowledge.payloads import document_from_payload
from tests.kafka_broker import KafkaBroker, kafka_broker  # noqa: F401  (the fixture)
from workers.base import RetryPolicy
from workers.embedded import EmbeddedQueue
from workers.kafka import ChangeConsumer, publish_change

pytestmark = pytest.mark.integration

IDLE_S = 1.5


@pytest.fixture
def bootstrap(kafka_broker: KafkaBroker) -> str:  # noqa: F811
    return kafka_broker.bootstrap


@pytest.fixture
async def topic(bootstrap: str) -> AsyncIterator[str]:
    """A fresh topic with two partitions for each test."""
    name = f"knowledge.changes.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    yield name


@pytest.fixture
def settings(tmp_path: Path, topic: str, bootstrap: str,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {"PARLEY_VAR_DIR": tmp_path / "var",
                        "PARLEY_MODELS_DIR": tmp_path / "models",
                        "PARLEY_KAFKA_BOOTSTRAP": bootstrap,
                        "PARLEY_KAFKA_TOPIC": topic,
                        "PARLEY_KAFKA_GROUP_ID": f"group-{topic}"}.items():
        monkeypatch.setenv(name, str(value))
    return Settings(environment="test")


@pytest.fixture
def queue(settings: Settings) -> Iterator[EmbeddedQueue]:
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings, poll_s=0.05,
                          policy=RetryPolicy(max_attempts=3, backoff_s=0.05))
    queue.start()
    yield queue
    queue.close()


def article(doc_id: str, version: int, text: str) -> dict[str, Any]:
    return {"doc_id": doc_id, "title": doc_id.replace("-", " ").title(), "lang": "en",
            "tags": ["care"], "text": text, "version": version}


def event(event_id: str, op: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "op": op, "kind": kind, "data": data}


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Raw events, as any producer might send them (all to partition 0)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def chunk_ids(settings: Settings, doc_id: str) -> set[str]:
    index = SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")
    try:
        return set(await index.hashes(doc_id))
    finally:
        await index.close()


def expected_chunks(payload: dict[str, Any]) -> set[str]:
    return {c.id for c in chunk_document(document_from_payload(payload))}


def task_rows(settings: Settings) -> list[tuple[str, str, str, int]]:
    """(key, task, state, attempts) of every task the queue ever held but the periodic ones
    (with Kafka configured, the worker also queues its reading of Rasa's events)."""
    with sqlite3.connect(settings.var_dir / "queue.db") as db:
        return db.execute("SELECT key, name, state, attempts FROM tasks "
                          "WHERE key NOT LIKE 'periodic:%' ORDER BY seq").fetchall()


async def committed(bootstrap: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                group_id=f"group-{topic}", enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
    finally:
        await consumer.stop()


async def test_changes_apply_once_and_malformed_events_are_dead_lettered(
        settings: Settings, topic: str, queue: EmbeddedQueue,
        bootstrap: str) -> None:
    kettle = article("kettle-care", 1, "Descale the kettle with citric acid every month.")
    blender = article("blender-care", 1, "Rinse the blender jug straight after use.")
    product = {"label": "Product", "key": "NH-BL-200", "props": {"name": "Blender"}}
    # Through the editor's publisher: keyed by document, so one document stays in order.
    await publish_change(settings, event("e1", "upsert", "article", kettle))
    await publish_change(settings, event("e2", "upsert", "article", blender))
    await publish_change(settings, event("e3", "upsert", "entity", product))
    await publish_change(settings, event("e4", "delete", "article",
                                         {"doc_id": "blender-care", "version": 2}))
    # What a misbehaving producer sends: a duplicate, and two events that are no task.
    await produce(bootstrap, topic, [
        json.dumps(event("e1", "upsert", "article", kettle)).encode(),
        b"{not json",
        json.dumps(event("e9", "merge", "article", kettle)).encode(),
    ])
    faq = {"id": "faq-returns", "question": "Can I return a blender?",
           "answer": "Yes, within 30 days.", "lang": "en"}
    assert await publish_change(settings, {"op": "upsert", "kind": "faq", "data": faq})

    report = await ChangeConsumer.from_settings(settings, queue, assign=True).run(idle_s=IDLE_S)
    assert (report.enqueued, report.dead_lettered) == (6, 2)
    await asyncio.to_thread(queue.drain, 60)

    assert await chunk_ids(settings, "kettle-care") == expected_chunks(kettle)
    assert await chunk_ids(settings, "blender-care") == set()
    assert await chunk_ids(settings, "faq-returns")
    graph = SQLiteGraphStore(settings.var_dir / "kb" / "graph.db")
    try:
        assert (await graph.get("Product", "NH-BL-200")) is not None
    finally:
        await graph.close()
    rows = task_rows(settings)
    assert [r[0] for r in rows].count("event:e1") == 1  # the duplicate queued nothing
    assert len(rows) == 5 and {r[2] for r in rows} == {"done"} and {r[3] for r in rows} == {1}

    letters = queue.dead_letters()
    assert [d["task"] for d in letters] == ["kafka.change"] * 2
    assert letters[0]["error"].startswith("not JSON") and letters[0]["payload"]["event"] == \
        "{not json"
    assert letters[1]["error"] == "unknown op 'merge'"
    assert {d["payload"]["topic"] for d in letters} == {topic}

    # Everything was committed: a restarted consumer finds nothing new.
    partitions = await committed(bootstrap, topic)
    assert sum(o or 0 for o in partitions.values()) == 8
    again = await ChangeConsumer.from_settings(settings, queue, assign=True).run(idle_s=IDLE_S)
    assert (again.enqueued, again.dead_lettered) == (0, 0)


class Crash(BaseException):
    """The consumer process dying (not an error it could handle)."""


class CrashingQueue:
    """Passes enqueues to the queue, and crashes the consumer on the ``at``-th."""

    def __init__(self, queue: EmbeddedQueue, at: int) -> None:
        self.queue, self.at, self.calls = queue, at, 0

    def enqueue(self, task: str, payload: dict[str, Any], *, key: str | None = None) -> str:
        self.calls += 1
        if self.calls == self.at:
            raise Crash
        return self.queue.enqueue(task, payload, key=key)

    def dead_letter(self, *args: Any, **kwargs: Any) -> str:
        return self.queue.dead_letter(*args, **kwargs)


async def test_events_read_again_after_a_crash_before_commit_change_nothing(
        settings: Settings, topic: str, queue: EmbeddedQueue,
        bootstrap: str) -> None:
    docs = [article(f"doc-{n}", 1, f"Document number {n} explains topic {n}.") for n in range(4)]
    values = [json.dumps(event(f"e{n}", "upsert", "article", d)).encode()
              for n, d in enumerate(docs)]
    await produce(bootstrap, topic, values)

    crashing = CrashingQueue(queue, at=3)
    with pytest.raises(Crash):
        await ChangeConsumer.from_settings(settings, crashing, assign=True).run(idle_s=IDLE_S)
    # Two events were enqueued, but their offsets were not committed before the crash.
    assert (await committed(bootstrap, topic))[0] in (None, 0, 1, 2)
    await asyncio.to_thread(queue.drain, 60)
    assert [r[0] for r in task_rows(settings)] == ["event:e0", "event:e1"]

    report = await ChangeConsumer.from_settings(settings, queue, assign=True).run(idle_s=IDLE_S)
    assert report.enqueued >= 2  # e2 and e3, plus whatever had not been committed
    await asyncio.to_thread(queue.drain, 60)
    rows = task_rows(settings)
    assert [r[0] for r in rows] == [f"event:e{n}" for n in range(4)]  # each once, in order
    assert {(r[2], r[3]) for r in rows} == {("done", 1)}
    for doc in docs:
        assert await chunk_ids(settings, doc["doc_id"]) == expected_chunks(doc)
    assert (await committed(bootstrap, topic))[0] == 4


async def test_the_editor_publishes_through_kafka_when_it_is_configured(
        settings: Settings, queue: EmbeddedQueue) -> None:
    from knowledge.articles.submit import submit, task_status

    payload = article("gift-wrap", 3, "Gift wrapping costs EUR 4 per parcel.")
    published = await submit(queue, "index_document", payload, settings=settings)
    assert published.task_id.startswith("event:")  # went to the topic, not the queue
    assert (await task_status(queue, task_id=published.task_id)).state == "queued"
    report = await ChangeConsumer.from_settings(settings, queue, assign=True).run(idle_s=IDLE_S)
    assert report.enqueued == 1
    await asyncio.to_thread(queue.drain, 60)
    assert await chunk_ids(settings, "gift-wrap") == expected_chunks(payload)
    assert (await task_status(queue, task_id=published.task_id)).state == "done"
