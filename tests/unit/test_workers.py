"""Background workers: each task inline after a JSON round trip, and the embedded queue.

Task bodies run against temporary embedded stores (SQLite document index and graph under
``PARLEY_VAR_DIR``). The queue tests use small tasks registered here (``test.*``) to watch
order, retries, dead letters and crash recovery; the real bodies go through the same base.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

from core.config import Settings
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.graph.embedded import SQLiteGraphStore
from knowledge.ingest import chunk_document
from knowledge.payloads import document_from_payload
from knowledge.tasks import EMBEDDER
from workers.base import RetryPolicy, run_attempt, run_inline
from workers.context import Resource, Resources, TaskContext
from workers.embedded import EmbeddedQueue
from workers.errors import (
    DeadLetterNotFound,
    InvalidPayload,
    NotRetryable,
    UnknownTask,
    WorkerAlreadyRunning,
)
from workers.kafka import partition_key, task_for_event
from workers.queue import get_queue, wait_for_change, wait_until_applied
from workers.registry import task, task_names
from workers.service import submit_change

pytestmark = pytest.mark.unit

FAST = RetryPolicy(max_attempts=3, backoff_s=0.05)
ARTICLE = """---
id: kettle-care
title: Kettle care
lang: en
---
# Kettle care

Descale the Aura kettle with white vinegar every four weeks.
"""


def kettle(v: int, text: str, **extra: Any) -> dict[str, Any]:
    """An ``index_document`` payload for version ``v`` of the kettle article."""
    return {"doc_id": "kettle", "title": "Kettle care", "lang": "en", "tags": ["care"],
            "text": text, "source": "editor", "version": v, **extra}


# -- tasks registered for the queue tests -----------------------------------------------------

CALLS: list[tuple[str, Any, float]] = []
FLAKY = {"fail": True}
CRASHED: set[str] = set()


@task("test.record", timeout_s=5)
async def _record(payload: dict[str, Any], ctx: TaskContext) -> None:
    CALLS.append(("record", payload["n"], time.monotonic()))


@task("test.flaky", timeout_s=5)
async def _flaky(payload: dict[str, Any], ctx: TaskContext) -> None:
    CALLS.append(("flaky", payload["n"], time.monotonic()))
    if FLAKY["fail"]:
        raise ConnectionError("the store is down")


@task("test.crash", timeout_s=5)
async def _crash(payload: dict[str, Any], ctx: TaskContext) -> None:
    """Kills its worker the first time (like a power cut mid-task), then succeeds."""
    CALLS.append(("crash", payload["n"], time.monotonic()))
    if payload["n"] not in CRASHED:
        CRASHED.add(payload["n"])
        raise SystemExit("the process died")


@task("test.always_crash", timeout_s=5)
async def _always_crash(payload: dict[str, Any], ctx: TaskContext) -> None:
    CALLS.append(("always_crash", payload["n"], time.monotonic()))
    raise SystemExit("the process died")


@task("test.wait", timeout_s=5)
async def _wait(payload: dict[str, Any], ctx: TaskContext) -> None:
    await asyncio.sleep(0.2)
    CALLS.append(("wait", payload["n"], time.monotonic()))


@task("test.slow", timeout_s=0.2)
async def _slow(payload: dict[str, Any], ctx: TaskContext) -> None:
    await asyncio.sleep(5)


THING: Resource[object] = Resource("test.thing", object)


@task("test.resource", timeout_s=5)
async def _resource(payload: dict[str, Any], ctx: TaskContext) -> None:
    CALLS.append(("resource", ctx.resources.get(THING), time.monotonic()))


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FLAKY["fail"] = True
    CRASHED.clear()


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_encoders: Path) -> Settings:
    """Settings built for this test alone, stores under a temporary var/ and models/."""
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARLEY_MODELS_DIR", str(tmp_path / "models"))
    kb, company, nlu = tmp_path / "kb", tmp_path / "company", tmp_path / "nlu"
    for folder in (kb, company, nlu):
        folder.mkdir()
    (kb / "kettle-care.md").write_text(ARTICLE, encoding="utf-8")
    (company / "policies.yml").write_text(
        "policies:\n- id: returns\n  title: {en: Returns}\n"
        "  text: {en: Return any product within 30 days.}\n", encoding="utf-8")
    (nlu / "tiny.csv").write_text("text,intent\nhi,greet\nhello,greet\nbye,bye\nsee you,bye\n",
                                  encoding="utf-8")
    return Settings(environment="test", kb_dir=kb, company_data_dir=company, nlu_data_dir=nlu,
                    nlu_preset="fast", nlu_base_dir=base_encoders)


@pytest.fixture
def idle(settings: Settings) -> Iterator[EmbeddedQueue]:
    """The queue with no worker started: its journal is what ``ctx`` writes."""
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings, policy=FAST)
    yield queue
    queue.close()


@pytest.fixture
def ctx(settings: Settings, idle: EmbeddedQueue) -> TaskContext:
    return TaskContext(settings, journal=idle.journal)


@pytest.fixture
def queue(settings: Settings) -> Iterator[EmbeddedQueue]:
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings, policy=FAST,
                          poll_s=0.05)
    yield queue
    queue.close()


async def run(name: str, payload: dict[str, Any], ctx: TaskContext) -> str:
    """The task as a worker runs it: the payload after a JSON round trip."""
    return await run_inline(name, json.loads(json.dumps(payload)), ctx)


async def chunk_ids(settings: Settings, doc_id: str) -> set[str]:
    index = SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")
    try:
        return set(await index.hashes(doc_id))
    finally:
        await index.close()


async def search(settings: Settings, query: str) -> list[str]:
    index = SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")
    try:
        return [hit.chunk.text for hit in await index.search(query, k=5)]
    finally:
        await index.close()


# -- the task bodies -------------------------------------------------------------------------

async def test_an_edit_is_what_search_returns(settings: Settings, ctx: TaskContext) -> None:
    assert await run("index_document", kettle(1, "Descale the kettle with vinegar."), ctx) \
        == "done"
    assert any("vinegar" in text for text in await search(settings, "vinegar"))
    edited = kettle(2, "# Kettle care\n\n## Descaling\nUse citric acid, never vinegar.\n\n"
                       "## Cleaning\nWipe the outside with a damp cloth.")
    assert await run("index_document", edited, ctx) == "done"
    expected = chunk_document(document_from_payload(edited))
    assert await chunk_ids(settings, "kettle") == {c.id for c in expected}
    texts = await search(settings, "citric acid")
    assert texts and "citric acid" in texts[0]
    assert not any("Descale the kettle with vinegar" in t for t in await search(settings,
                                                                                 "vinegar"))


async def test_reapplying_or_an_older_version_changes_nothing(
        settings: Settings, ctx: TaskContext, idle: EmbeddedQueue) -> None:
    await run("index_document", kettle(2, "Use citric acid."), ctx)
    before = await chunk_ids(settings, "kettle")
    assert await run("index_document", kettle(2, "Use citric acid."), ctx) == "skipped"
    assert await run("index_document", kettle(1, "Use vinegar."), ctx) == "skipped"
    assert await chunk_ids(settings, "kettle") == before
    assert idle.journal.applied_version("kettle") == 2
    # Without a version the change applies, and chunk ids keep a re-run a no-op.
    assert await run("index_document", kettle(2, "Use citric acid.", version=None), ctx) == "done"
    assert await chunk_ids(settings, "kettle") == before


async def test_a_versioned_delete_also_stops_a_late_older_edit(
        settings: Settings, ctx: TaskContext) -> None:
    await run("index_document", kettle(1, "Use vinegar."), ctx)
    assert await run("delete_document", {"doc_id": "kettle", "version": 2}, ctx) == "done"
    assert await chunk_ids(settings, "kettle") == set()
    assert await run("index_document", kettle(1, "Use vinegar."), ctx) == "skipped"
    assert await run("delete_document", {"doc_id": "kettle", "version": 3}, ctx) == "done"
    assert await chunk_ids(settings, "kettle") == set()


async def test_entities_are_upserted_with_edges_and_deleted(
        settings: Settings, ctx: TaskContext) -> None:
    await run("upsert_entity", {"label": "Policy", "key": "warranty",
                                "props": {"title": {"en": "Warranty"}}}, ctx)
    product = {"label": "Product", "key": "NH-BL-200", "props": {"name": "Blender"},
               "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "warranty",
                          "props": {"months": 24}}]}
    await run("upsert_entity", product, ctx)
    await run("upsert_entity", product, ctx)  # idempotent
    graph = SQLiteGraphStore(settings.var_dir / "kb" / "graph.db")
    try:
        node = await graph.get("Product", "NH-BL-200")
        assert node is not None and node.props["name"] == "Blender"
        ((edge, other),) = await graph.neighbours("Product", "NH-BL-200")
        assert (edge.rel, other.key, edge.props["months"]) == ("COVERED_BY", "warranty", 24)
        # With replace_edges the listed relations are all of its outgoing ones.
        await run("upsert_entity", {**product, "edges": [], "replace_edges": True}, ctx)
        assert await graph.neighbours("Product", "NH-BL-200") == []
        await run("delete_entity", {"label": "Product", "key": "NH-BL-200"}, ctx)
        await run("delete_entity", {"label": "Product", "key": "NH-BL-200"}, ctx)
        assert await graph.get("Product", "NH-BL-200") is None
        assert await graph.count() == 1
    finally:
        await graph.close()


async def test_reindex_all_imports_the_knowledge_folders(
        settings: Settings, ctx: TaskContext) -> None:
    assert await run("reindex_all", {}, ctx) == "done"
    assert await chunk_ids(settings, "kettle-care")
    assert await chunk_ids(settings, "policy-returns")
    assert await run("reindex_all", {}, ctx) == "done"  # unchanged files: nothing rewritten


async def test_retrain_nlu_publishes_an_active_model(settings: Settings, ctx: TaskContext) -> None:
    from nlu.registry import Registry

    assert await run("retrain_nlu", {}, ctx) == "done"
    assert Registry(settings.nlu_model_dir).active_version() is not None


@pytest.mark.parametrize(("name", "payload"), [
    ("index_document", {"doc_id": "kettle", "text": "no title", "version": 1}),
    ("index_document", kettle(1, "text", version="2")),
    ("index_document", kettle(1, "   ")),
    ("index_document", kettle(1, "text", tags="care")),
    ("index_document", kettle(1, "text", source="email")),
    ("upsert_entity", {"label": "Product", "key": "", "props": {}}),
    ("upsert_entity", {"label": "Product", "key": "A", "edges": [{"rel": "X"}]}),
    ("upsert_entity", {"label": "Product", "key": "A", "replace_edges": "yes"}),
    ("delete_entity", {"label": "Product"}),
    ("nope", {}),
])
async def test_a_payload_that_can_never_work_is_refused(
        ctx: TaskContext, name: str, payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload):
        await run(name, payload, ctx)


def test_the_bodies_are_loaded_from_the_domains_task_modules(settings: Settings) -> None:
    assert {"index_document", "delete_document", "upsert_entity", "delete_entity",
            "reindex_all", "retrain_nlu"} <= set(task_names(settings))
    with pytest.raises(ModuleNotFoundError):
        task_names(settings.model_copy(update={"task_modules": ["no_such_domain.tasks"]}))


def test_a_resource_is_made_once_per_worker_unless_provided() -> None:
    resources = Resources()
    made = resources.get(THING)
    assert resources.get(THING) is made
    assert Resources().get(THING) is not made
    provided = object()
    resources.provide(THING, provided)
    assert resources.get(THING) is provided


def test_markdown_bodies_are_split_like_imported_files() -> None:
    document = document_from_payload(kettle(1, "# Care\n\n## Descaling\n- Fill it\n- Boil\n\n"
                                               "| Part | Cycle |\n|---|---|\n"
                                               "| Filter | 4 weeks |\n"))
    assert document.sections == [("Descaling", "Fill it\nBoil\nPart: Filter; Cycle: 4 weeks.")]
    assert (document.id, document.title, document.tags) == ("kettle", "Kettle care", ("care",))
    # A body is never read as front matter: the editor's fields say what the document is.
    document = document_from_payload(kettle(1, "---\nid: other\n---\nBody text."))
    assert document.id == "kettle" and "id: other" in document.sections[0][1]


# -- the embedded queue ----------------------------------------------------------------------

def ran(kind: str) -> list[Any]:
    return [n for k, n, _ in CALLS if k == kind]


def wait_for_worker_death(queue: EmbeddedQueue) -> None:
    deadline = time.monotonic() + 10
    while queue._thread is not None and queue._thread.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_tasks_run_in_the_order_they_were_enqueued(queue: EmbeddedQueue) -> None:
    for n in range(20):
        queue.enqueue("test.record", {"n": n})
    queue.start()
    queue.drain(10)
    assert ran("record") == list(range(20))


async def test_a_task_delivered_again_after_it_finished_is_not_run_again(
        idle: EmbeddedQueue, ctx: TaskContext) -> None:
    """A broker delivers at least once; a second delivery must not run it or change its status."""
    task_id = idle.enqueue("test.record", {"n": 1})
    first = await run_attempt("test.record", {"n": 1}, ctx, task_id=task_id, policy=FAST)
    again = await run_attempt("test.record", {"n": 1}, ctx, task_id=task_id, policy=FAST)
    assert (first.state, again.state) == ("done", "skipped")
    assert ran("record") == [1]
    status = idle.status(task_id)
    assert status is not None and (status["state"], status["attempts"]) == ("done", 1)
    idle.journal.finish(task_id, "skipped")  # a duplicate that was already running finishes late
    assert idle.status(task_id)["state"] == "done"  # type: ignore[index]


def test_the_same_key_twice_is_enqueued_once(queue: EmbeddedQueue) -> None:
    first = queue.enqueue("test.record", {"n": 1}, key="kettle:3")
    assert queue.enqueue("test.record", {"n": 2}, key="kettle:3") == first
    assert queue.pending() == 1
    queue.start()
    queue.drain(10)
    assert queue.enqueue("test.record", {"n": 3}, key="kettle:3") == first  # also once done
    queue.drain(10)
    assert ran("record") == [1]


def test_unknown_tasks_and_unsafe_payloads_are_refused_at_enqueue(queue: EmbeddedQueue) -> None:
    with pytest.raises(UnknownTask):
        queue.enqueue("nope", {})
    with pytest.raises(InvalidPayload):
        queue.enqueue("test.record", {"n": float("nan")})
    with pytest.raises(InvalidPayload):
        queue.enqueue("test.record", {"n": object()})
    assert queue.pending() == 0


def test_pending_work_survives_a_restart(settings: Settings) -> None:
    path = settings.var_dir / "queue.db"
    first = EmbeddedQueue(path, settings=settings, policy=FAST)
    ids = [first.enqueue("test.record", {"n": n}) for n in range(3)]
    first.close()
    assert CALLS == []
    reopened = EmbeddedQueue(path, settings=settings, policy=FAST, poll_s=0.05)
    try:
        assert reopened.pending() == 3
        reopened.start()
        reopened.drain(10)
        assert ran("record") == [0, 1, 2]
        assert [reopened.status(i)["state"] for i in ids] == ["done"] * 3  # type: ignore[index]
    finally:
        reopened.close()


def test_a_task_interrupted_by_a_crash_runs_again_at_restart(settings: Settings) -> None:
    path = settings.var_dir / "queue.db"
    crashing = EmbeddedQueue(path, settings=settings, policy=FAST, poll_s=0.05)
    task_id = crashing.enqueue("test.crash", {"n": "a"})
    after = crashing.enqueue("test.record", {"n": "after"})
    crashing.start()
    wait_for_worker_death(crashing)
    assert crashing.status(task_id)["state"] == "running"  # type: ignore[index]
    crashing.close()
    restarted = EmbeddedQueue(path, settings=settings, policy=FAST, poll_s=0.05)
    try:
        restarted.start()
        restarted.drain(10)
        assert restarted.status(task_id) == {"id": task_id, "task": "test.crash",
                                             "state": "done", "attempts": 2, "error": ""}
        assert ran("crash") == ["a", "a"]
        assert ran("record") == ["after"]  # and the queue kept its order
        assert restarted.status(after)["state"] == "done"  # type: ignore[index]
    finally:
        restarted.close()


def test_a_task_that_keeps_killing_its_worker_is_given_up(settings: Settings) -> None:
    path = settings.var_dir / "queue.db"
    policy = RetryPolicy(max_attempts=2, backoff_s=0.01)
    queue = EmbeddedQueue(path, settings=settings)
    task_id = queue.enqueue("test.always_crash", {"n": 1})
    queue.close()
    for _ in range(policy.max_attempts):
        queue = EmbeddedQueue(path, settings=settings, policy=policy, poll_s=0.05)
        queue.start()
        wait_for_worker_death(queue)
        queue.close()
    queue = EmbeddedQueue(path, settings=settings, policy=policy, poll_s=0.05)
    try:
        queue.start()
        queue.drain(10)
        assert ran("always_crash") == [1, 1]
        status = queue.status(task_id)
        assert status is not None and status["state"] == "dead"
        assert status["error"].startswith("TaskInterrupted: interrupted 2 times")
        assert [d["task_id"] for d in queue.dead_letters()] == [task_id]
    finally:
        queue.close()


def test_a_failing_task_is_retried_with_backoff_then_dead_lettered(
        queue: EmbeddedQueue, caplog: pytest.LogCaptureFixture) -> None:
    def count(outcome: str) -> float:
        return METRICS.get_sample_value(
            "parley_tasks_total", {"task": "test.flaky", "outcome": outcome}) or 0.0

    retried, dead = count("retried"), count("dead_lettered")
    caplog.set_level(logging.INFO, logger="workers")
    task_id = queue.enqueue("test.flaky", {"n": "secret customer text"})
    queue.start()
    queue.drain(10)
    times = [t for k, _, t in CALLS if k == "flaky"]
    assert len(times) == FAST.max_attempts == 3
    assert times[1] - times[0] >= 0.05 * 0.9 and times[2] - times[1] >= 0.1 * 0.9
    status = queue.status(task_id)
    assert status is not None and (status["state"], status["attempts"]) == ("dead", 3)
    (letter,) = queue.dead_letters()
    assert letter["task"] == "test.flaky" and letter["task_id"] == task_id
    assert letter["payload"] == {"n": "secret customer text"}
    assert letter["error"] == "ConnectionError: the store is down"
    assert letter["attempts"] == 3
    assert (count("retried") - retried, count("dead_lettered") - dead) == (2, 1)
    assert task_id in caplog.text and "attempt 3/3" in caplog.text
    assert "secret customer text" not in caplog.text  # payloads stay out of the logs

    FLAKY["fail"] = False
    queue.retry_dead_letter(letter["id"])
    queue.drain(10)
    assert queue.status(task_id)["state"] == "done"  # type: ignore[index]
    assert queue.dead_letters() == []
    with pytest.raises(DeadLetterNotFound):
        queue.retry_dead_letter(letter["id"])


def test_an_invalid_payload_is_dead_lettered_without_retries(queue: EmbeddedQueue) -> None:
    task_id = queue.enqueue("index_document", {"doc_id": "kettle", "text": "no title"})
    queue.start()
    queue.drain(10)
    assert queue.status(task_id)["attempts"] == 1  # type: ignore[index]
    (letter,) = queue.dead_letters()
    assert letter["error"].startswith("InvalidPayload: 'title'")


def test_a_task_past_its_time_limit_fails_with_a_timeout(queue: EmbeddedQueue) -> None:
    task_id = queue.enqueue("test.slow", {})
    queue.start()
    queue.drain(10)
    status = queue.status(task_id)
    assert status is not None and (status["state"], status["attempts"]) == ("dead", 3)
    assert status["error"] == "TaskTimeout: test.slow took longer than 0.2 s"


def test_a_dead_letter_that_names_no_task_cannot_be_retried(queue: EmbeddedQueue) -> None:
    first = queue.dead_letter("kafka.change", {"event": "{"}, "not JSON", key="kafka:t[0]@7")
    assert queue.dead_letter("kafka.change", {"event": "{"}, "not JSON",
                             key="kafka:t[0]@7") == first
    assert len(queue.dead_letters()) == 1
    with pytest.raises(NotRetryable):
        queue.retry_dead_letter(first)
    with pytest.raises(NotRetryable):
        queue.retry_dead_letter(queue.dead_letter("test.record", ["not", "an object"], "x"))
    assert len(queue.dead_letters()) == 2


def test_a_dead_letter_with_no_task_row_is_queued_afresh(queue: EmbeddedQueue) -> None:
    letter = queue.dead_letter("test.record", {"n": "again"}, "ConnectionError: down")
    queue.retry_dead_letter(letter)
    assert queue.dead_letters() == []
    queue.start()
    queue.drain(10)
    assert ran("record") == ["again"]


def test_the_tasks_use_the_resources_the_queue_was_given(settings: Settings) -> None:
    shared, mine = Resources(), object()
    shared.provide(THING, mine)
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings, policy=FAST,
                          resources=shared, poll_s=0.05)
    try:
        for n in range(2):
            queue.enqueue("test.resource", {"n": n})
        queue.start()
        queue.drain(10)
        assert ran("resource") == [mine, mine]
    finally:
        queue.close()


def test_one_worker_per_queue_file(settings: Settings, queue: EmbeddedQueue) -> None:
    queue.start()
    other = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings)
    try:
        with pytest.raises(WorkerAlreadyRunning):
            other.start()
        task_id = other.enqueue("test.record", {"n": "from another process"})
        asyncio.run(wait_until_applied(queue, task_id, timeout_s=10))
        assert ran("record") == ["from another process"]
    finally:
        other.close()


async def test_an_edit_through_the_queue_is_searchable_when_applied(
        settings: Settings, queue: EmbeddedQueue) -> None:
    queue.start()
    first = queue.enqueue("index_document", kettle(1, "Descale with vinegar."), key="kettle:1")
    second = queue.enqueue("index_document", kettle(2, "Descale with citric acid."),
                           key="kettle:2")
    assert (await wait_until_applied(queue, first, timeout_s=30))["state"] == "done"
    assert (await wait_until_applied(queue, second, timeout_s=30))["state"] == "done"
    texts = await search(settings, "citric acid")
    assert texts == ["Descale with citric acid."]
    with pytest.raises(TimeoutError):
        await wait_until_applied(queue, "no-such-task", timeout_s=0.05)


async def test_an_editor_change_without_kafka_is_enqueued_once(
        settings: Settings, queue: EmbeddedQueue) -> None:
    queue.start()
    change = {"op": "upsert", "kind": "article", "data": kettle(4, "Descale monthly.")}
    event_id = await submit_change(settings, queue, change)
    status = await wait_for_change(queue, event_id, timeout_s=30)
    assert (status["task"], status["state"]) == ("index_document", "done")
    assert await submit_change(settings, queue, {**change, "id": event_id}) == event_id
    assert queue.task_for_key(f"event:{event_id}") == status["id"]
    assert queue.pending() == 0 and queue.journal.applied_version("kettle") == 4
    with pytest.raises(InvalidPayload):
        await submit_change(settings, queue, {"op": "upsert", "kind": "video", "data": {}})


def test_get_queue_is_the_embedded_queue_without_a_broker(settings: Settings) -> None:
    queue = get_queue(settings)
    try:
        assert isinstance(queue, EmbeddedQueue)
        assert queue.path == settings.var_dir / "queue.db"
    finally:
        queue.close()


def test_stop_lets_the_running_task_finish(queue: EmbeddedQueue) -> None:
    task_id = queue.enqueue("test.wait", {"n": 1})
    queue.start()
    deadline = time.monotonic() + 10
    while queue.status(task_id)["state"] != "running":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    queue.stop()
    assert queue.status(task_id)["state"] == "done"  # type: ignore[index]
    assert ran("wait") == [1]


# -- change events ---------------------------------------------------------------------------

def test_change_events_map_to_tasks() -> None:
    article = {"id": "e1", "op": "upsert", "kind": "article",
               "data": {"doc_id": "kettle", "title": "Kettle", "text": "Descale.", "version": 3}}
    assert task_for_event(article) == ("index_document", {
        "doc_id": "kettle", "title": "Kettle", "text": "Descale.", "lang": None, "tags": [],
        "source": "kafka", "version": 3})
    faq = {"id": "e2", "op": "upsert", "kind": "faq",
           "data": {"id": "faq-returns", "question": "Can I return it?", "answer": "Yes.",
                    "lang": "en"}}
    name, payload = task_for_event(faq)
    assert (name, payload["title"], payload["text"], payload["tags"]) == (
        "index_document", "Can I return it?", "Yes.", ["faq"])
    assert task_for_event({"id": "e3", "op": "delete", "kind": "faq",
                           "data": {"doc_id": "faq-returns"}}) == (
        "delete_document", {"doc_id": "faq-returns", "version": None})
    entity = {"id": "e4", "op": "upsert", "kind": "entity",
              "data": {"label": "Product", "key": "A", "props": {"name": "a"}}}
    assert task_for_event(entity) == ("upsert_entity", {
        "label": "Product", "key": "A", "props": {"name": "a"}, "edges": [],
        "replace_edges": False})
    assert task_for_event({**entity, "op": "delete"}) == (
        "delete_entity", {"label": "Product", "key": "A"})
    assert partition_key(entity) == b"Product:A" and partition_key(article) == b"kettle"


@pytest.mark.parametrize("event", [
    [], "x", {"op": "upsert", "kind": "article", "data": {}},
    {"id": "e", "op": "merge", "kind": "article", "data": {}},
    {"id": "e", "op": "upsert", "kind": "video", "data": {}},
    {"id": "e", "op": "upsert", "kind": "article", "data": []},
    {"id": "e", "op": "upsert", "kind": "article", "data": {"doc_id": "d", "title": "t"}},
    {"id": "e", "op": "delete", "kind": "entity", "data": {"label": "Product"}},
])
def test_malformed_change_events_are_refused(event: Any) -> None:
    with pytest.raises(InvalidPayload):
        task_for_event(event)


def test_admins_see_and_retry_dead_letters_over_http(tmp_path):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from core.config import Settings
    from tests.unit.conftest import ScriptedDialogue
    from tests.unit.test_handoff import PASSWORD, make_agent
    from web.app import create_app

    settings = Settings(environment="test", var_dir=tmp_path / "var",
                        models_dir=tmp_path / "models", secret_key="s" * 32, rasa_token="t" * 32)
    make_agent(settings, "boss@example.com", role="admin")
    make_agent(settings, "ana@example.com")
    with TestClient(create_app(settings, dialogue=ScriptedDialogue())) as client:
        def login(email: str) -> dict[str, str]:
            token = client.post("/api/v1/auth/login", json={"email": email,
                                                            "password": PASSWORD}).json()["token"]
            return {"Authorization": f"Bearer {token}"}

        admin, agent = login("boss@example.com"), login("ana@example.com")
        queue = client.app.state.task_queue
        # The embedded worker's tasks embed with the API's own model: it is not loaded twice.
        assert queue.resources.get(EMBEDDER) is client.app.state.embedder
        letter = queue.dead_letter("delete_entity", {"label": "Product"}, "KeyError: 'key'")
        assert client.get("/api/v1/admin/tasks/dead", headers=agent).status_code == 403
        (listed,) = client.get("/api/v1/admin/tasks/dead", headers=admin).json()
        assert (listed["id"], listed["task"], listed["error"]) == (letter, "delete_entity",
                                                                   "KeyError: 'key'")
        missing = client.post("/api/v1/admin/tasks/dead/nope/retry", headers=admin)
        assert missing.json()["error"]["code"] == "dead_letter_not_found"
