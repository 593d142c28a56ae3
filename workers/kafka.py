"""Knowledge changes over Kafka: topic ``knowledge.changes`` in, tasks on the queue out.

An event is a JSON object::

    {"id": "<event id>", "op": "upsert" | "delete", "kind": "article" | "faq" | "entity",
     "data": {...}}

    article/faq upsert  data: index_document's payload (doc_id or id, title, text, lang, tags,
                        version); a FAQ may give question/answer instead of title/text
    article/faq delete  data: {"doc_id", "version"?}
    entity upsert       data: upsert_entity's payload (label, key, props, edges,
                        replace_edges)
    entity delete       data: {"label", "key"}

The consumer enqueues each event's task with the event id as the idempotency key, and
commits a partition's offset only once every event before it was enqueued (or
dead-lettered): after a crash the uncommitted events are read again and, being duplicates,
change nothing. An event that can never become a task (not JSON, unknown op or kind, missing
fields) is logged by position and dead-lettered once; the consumer moves on. When the queue
itself fails, the consumer waits and reads the same event again. aiokafka is imported only
here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from core.config import Settings
from workers.context import Payload
from workers.errors import InvalidPayload

logger = logging.getLogger(__name__)

TOPIC = "knowledge.changes"
GROUP_ID = "parley-knowledge"
DEAD_LETTER_TASK = "kafka.change"
MAX_DEAD_LETTER_CHARS = 10_000


def _field(data: dict[str, Any], *names: str) -> Any:
    return next((data[n] for n in names if data.get(n) not in (None, "")), None)


def _required(data: dict[str, Any], *names: str) -> str:
    value = _field(data, *names)
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"data.{names[0]} must be a non-empty string")
    return value


def task_for_event(event: Any) -> tuple[str, Payload]:
    """The task an event asks for, and its payload; ``InvalidPayload`` if there is none."""
    if not isinstance(event, dict):
        raise InvalidPayload(f"an event is a JSON object, not {type(event).__name__}")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise InvalidPayload("the event has no id")
    op, kind, data = event.get("op"), event.get("kind"), event.get("data")
    if op not in ("upsert", "delete"):
        raise InvalidPayload(f"unknown op {op!r}")
    if kind not in ("article", "faq", "entity"):
        raise InvalidPayload(f"unknown kind {kind!r}")
    if not isinstance(data, dict):
        raise InvalidPayload("data must be an object")
    if kind == "entity":
        if op == "delete":
            return "delete_entity", {"label": _required(data, "label"),
                                     "key": _required(data, "key")}
        return "upsert_entity", {"label": _required(data, "label"), "key": _required(data, "key"),
                                 "props": data.get("props") or {},
                                 "edges": data.get("edges") or [],
                                 "replace_edges": data.get("replace_edges") is True}
    doc_id = _required(data, "doc_id", "id")
    version = data.get("version")
    if op == "delete":
        return "delete_document", {"doc_id": doc_id, "version": version}
    tags = list(data.get("tags") or [])
    if kind == "faq" and "faq" not in tags:
        tags.append("faq")
    return "index_document", {
        "doc_id": doc_id, "title": _required(data, "title", "question"),
        "text": _required(data, "text", "answer"), "lang": data.get("lang"), "tags": tags,
        "source": "kafka", "version": version}


def partition_key(event: dict[str, Any]) -> bytes:
    """Changes to one document or entity share a partition, so they stay in order."""
    data = event.get("data") or {}
    if event.get("kind") == "entity":
        return f"{data.get('label')}:{data.get('key')}".encode()
    return str(data.get("doc_id") or data.get("id") or "").encode()


def bootstrap_servers(settings: Settings) -> str:
    servers = settings.kafka_bootstrap
    if not servers:
        raise ValueError("PARLEY_KAFKA_BOOTSTRAP is not set (host:port of a Kafka broker)")
    return servers


async def publish_change(settings: Settings, event: dict[str, Any]) -> str:
    """Publish a change (the KB editor, when Kafka is configured); its event id."""
    event = {**event, "id": event.get("id") or uuid.uuid4().hex}
    task_for_event(event)  # never publish what the consumer would dead-letter
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka_topic,
                                     json.dumps(event, ensure_ascii=False).encode(),
                                     key=partition_key(event))
    finally:
        await producer.stop()
    return str(event["id"])


class ChangeSink(Protocol):
    """What the consumer asks of a ``TaskQueue``."""

    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str: ...

    def dead_letter(self, task: str, payload: Any, error: str, *,
                    key: str | None = None) -> str: ...


@dataclass
class ConsumeReport:
    enqueued: int = 0  # enqueue calls, duplicates included (the queue ignores those)
    dead_lettered: int = 0


class ChangeConsumer:
    """Reads change events into a ``TaskQueue``.

    ``assign=True`` reads every partition of the topic without joining the consumer group
    (offsets are still committed under ``group_id``): right for a single consumer, and it
    starts in milliseconds where a group join takes seconds.
    """

    def __init__(self, queue: ChangeSink, *, bootstrap: str, topic: str = TOPIC,
                 group_id: str = GROUP_ID, assign: bool = False, max_records: int = 100,
                 retry_s: float = 1.0) -> None:
        self.queue = queue
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.assign = assign
        self.max_records = max_records
        self.retry_s = retry_s
        self.report = ConsumeReport()

    @classmethod
    def from_settings(cls, settings: Settings, queue: ChangeSink,
                      **kwargs: Any) -> ChangeConsumer:
        return cls(queue, bootstrap=bootstrap_servers(settings), topic=settings.kafka_topic,
                   group_id=settings.kafka_group_id, **kwargs)

    async def run(self, *, idle_s: float | None = None,
                  stop: asyncio.Event | None = None) -> ConsumeReport:
        """Consume until ``stop`` is set, or until nothing arrived for ``idle_s`` seconds."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group_id,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            if self.assign:
                await consumer.topics()  # loads the metadata
                partitions = consumer.partitions_for_topic(self.topic) or set()
                if not partitions:
                    raise ValueError(f"topic {self.topic!r} does not exist")
                consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
            else:
                consumer.subscribe([self.topic])
            last_record = time.monotonic()
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if not batches:
                    if idle_s is not None and time.monotonic() - last_record >= idle_s:
                        break
                    continue
                last_record = time.monotonic()
                for tp, records in batches.items():
                    await self._consume(consumer, tp, records)
        finally:
            await consumer.stop()
        return self.report

    async def _consume(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                       records: list[ConsumerRecord]) -> None:
        done: int | None = None
        for record in records:
            try:
                await self._handle(record)
            except Exception as exc:  # the queue failed: read this event again later
                logger.warning("could not enqueue %s[%d]@%d (%s); retrying in %.1f s",
                               tp.topic, tp.partition, record.offset, type(exc).__name__,
                               self.retry_s)
                consumer.seek(tp, record.offset)
                await asyncio.sleep(self.retry_s)
                break
            done = record.offset + 1
        if done is not None:
            try:
                await consumer.commit({tp: done})
            except KafkaError as exc:  # e.g. a rebalance: the events are read again, harmlessly
                logger.warning("could not commit %s[%d]@%d (%s)", tp.topic, tp.partition, done,
                               type(exc).__name__)

    async def _handle(self, record: ConsumerRecord) -> None:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            event = json.loads(record.value or b"")
            task, payload = task_for_event(event)
        except Exception as exc:  # anything unparseable: never retried, never fatal
            if isinstance(exc, InvalidPayload):
                error = str(exc)
            elif isinstance(exc, ValueError):  # JSONDecodeError, UnicodeDecodeError
                error = f"not JSON: {exc}"
            else:
                error = f"unreadable: {type(exc).__name__}"
            raw = (record.value or b"").decode("utf-8", errors="replace")
            await asyncio.to_thread(
                self.queue.dead_letter, DEAD_LETTER_TASK,
                {"topic": record.topic, "partition": record.partition,
                 "offset": record.offset, "event": raw[:MAX_DEAD_LETTER_CHARS]},
                error, key=f"kafka:{where}")
            self.report.dead_lettered += 1
            logger.warning("dead-lettered the malformed change event at %s (%s)", where,
                           error[:200])
            return
        await asyncio.to_thread(self.queue.enqueue, task, payload, key=f"event:{event['id']}")
        self.report.enqueued += 1
        logger.info("change event %s at %s: %s %s -> %s", event["id"], where, event["op"],
                    event["kind"], task)


async def consume(settings: Settings, queue: ChangeSink, *, stop: asyncio.Event | None = None,
                  **kwargs: Any) -> ConsumeReport:
    """``parley kafka consume``: read changes until ``stop`` is set."""
    return await ChangeConsumer.from_settings(settings, queue, **kwargs).run(stop=stop)
