"""Tracing: spans across a customer turn, the NLU service, the action server, knowledge answers
and workers, continuing one trace through W3C ``traceparent``; off (and free) by default.

Spans go to an in-memory exporter here; no attribute may hold what a customer typed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conversations.dialogue import Turn
from core import tracing
from core.config import Settings
from knowledge.answer import KnowledgeAnswerer
from knowledge.documents.protocol import Chunk, Hit
from knowledge.generator.protocol import ChatMessage
from tests.unit.conftest import ScriptedDialogue
from workers.base import TRACE_KEY, RetryPolicy, run_attempt
from workers.context import TaskContext
from workers.embedded import EmbeddedQueue
from workers.registry import task

pytestmark = pytest.mark.unit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SECRET_TEXT = "my email is anna.lee@example.com and my order is PL-204817"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use(provider)
    yield exporter
    tracing.use(previous)
    provider.shutdown()


class RecordingDialogue(ScriptedDialogue):
    """The scripted dialogue, keeping the metadata each turn was sent with."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata: list[dict[str, Any]] = []

    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        self.metadata.append(metadata)
        return await super().handle(conversation_id, text, message_id=message_id,
                                    metadata=metadata)


@pytest.fixture
def dialogue() -> RecordingDialogue:
    return RecordingDialogue()


def named(finished: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in finished if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in finished]}"
    return found[0]


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    assert span.parent is not None and parent.context is not None
    return (span.parent.span_id == parent.context.span_id
            and span.context is not None and span.context.trace_id == parent.context.trace_id)


def assert_no_customer_text(finished: Sequence[ReadableSpan], *secrets: str) -> None:
    for span in finished:
        for key, value in (span.attributes or {}).items():
            for secret in secrets:
                assert secret not in str(value), f"{span.name} {key}={value!r}"
            assert "@" not in str(value), f"{span.name} {key}={value!r}"


def test_a_customer_turn_is_one_trace_without_its_text(
        spans: InMemorySpanExporter, client: TestClient, dialogue: RecordingDialogue) -> None:
    created = client.post("/api/v1/conversations", json={"locale": "en"}).json()
    spans.clear()
    response = client.post(f"/api/v1/conversations/{created['id']}/messages",
                           json={"text": SECRET_TEXT, "client_message_id": "m-1"},
                           headers={"Authorization": f"Bearer {created['token']}",
                                    "traceparent": TRACEPARENT})
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    server = named(finished, "POST /api/v1/conversations/{conversation_id}/messages")
    turn, rasa = named(finished, "parley.turn"), named(finished, "rasa.handle")
    assert server.kind == SpanKind.SERVER and server.context is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID  # the caller's trace goes on
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert child_of(turn, server) and child_of(rasa, turn)
    message_id = response.json()["messages"][0]["id"]
    assert turn.attributes == {"parley.conversation_id": created["id"],
                               "parley.message_id": message_id}
    assert rasa.kind == SpanKind.CLIENT and rasa.attributes is not None
    assert rasa.attributes["parley.intent"] == "test"
    # Rasa forwards no headers: the context rides in the metadata, to the action server.
    assert dialogue.metadata[-1]["traceparent"].split("-")[1:3] == [
        TRACE_ID, format(rasa.context.span_id, "016x")]  # type: ignore[union-attr]
    assert_no_customer_text(finished, SECRET_TEXT, "anna.lee", "PL-204817", created["token"])


def test_a_turn_without_tracing_sends_no_trace_context(client: TestClient,
                                                        dialogue: RecordingDialogue) -> None:
    created = client.post("/api/v1/conversations", json={"locale": "en"}).json()
    response = client.post(f"/api/v1/conversations/{created['id']}/messages",
                           json={"text": "hello", "client_message_id": "m-1"},
                           headers={"Authorization": f"Bearer {created['token']}"})
    assert response.status_code == 200
    assert dialogue.metadata == [{"locale": "en"}]


class _FakeJointModel:
    threshold = 0.5
    oos_label = None

    def predict(self, texts: list[str]) -> list[Any]:
        from nlu.runtime import Prediction

        return [Prediction("order_status", 0.93, [("order_status", 0.93), ("greet", 0.07)],
                           False, []) for _ in texts]


class _FakeVersion:
    version = "v-test"
    model = _FakeJointModel()

    def __init__(self) -> None:
        from nlu.patterns import Gazetteer

        self.gazetteer = Gazetteer({})


def test_the_nlu_service_continues_the_callers_trace(spans: InMemorySpanExporter,
                                                     settings: Settings) -> None:
    from nlu.app import create_nlu_app

    app = create_nlu_app(settings)
    app.state.nlu._active = _FakeVersion()  # no lifespan: no model to load
    try:
        response = TestClient(app).post(
            "/model/parse", json={"text": SECRET_TEXT, "conversation_id": "conv-1"},
            headers={"traceparent": TRACEPARENT})
    finally:
        app.state.nlu.close()
    assert response.status_code == 200
    assert response.json()["intent"]["name"] == "order_status"
    finished = spans.get_finished_spans()
    server, parse = named(finished, "POST /model/parse"), named(finished, "nlu.parse")
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert server.context is not None and format(server.context.trace_id, "032x") == TRACE_ID
    assert child_of(parse, server)
    assert parse.attributes == {"parley.conversation_id": "conv-1",
                                "parley.nlu.version": "v-test", "parley.nlu.canary": False,
                                "parley.intent": "order_status",
                                "parley.intent.confidence": 0.93}
    assert_no_customer_text(finished, SECRET_TEXT, "anna.lee", "PL-204817")


async def test_an_action_run_continues_the_turn_through_rasas_metadata(
        spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa_sdk.executor import ActionExecutor

    import bot.actions.tracing as action_tracing

    monkeypatch.setattr(action_tracing, "_configured", True)  # the test's provider stays
    executor = ActionExecutor()
    executor.register_package("bot.actions")
    tracker = {"sender_id": "conv-1", "slots": {}, "events": [], "paused": False,
               "latest_message": {"text": SECRET_TEXT, "intent": {"name": "request_human"},
                                  "entities": [], "metadata": {"traceparent": TRACEPARENT}},
               "active_loop": {}, "latest_action_name": "action_listen"}
    result = await executor.run({"next_action": "action_handoff", "sender_id": "conv-1",
                                 "tracker": tracker, "domain": {}, "version": "3.6.21"})
    assert result is not None
    action = named(spans.get_finished_spans(), "action.run")
    assert action.parent is not None and format(action.parent.span_id, "016x") == PARENT_ID
    assert action.context is not None and format(action.context.trace_id, "032x") == TRACE_ID
    assert action.attributes == {"parley.action": "action_handoff",
                                 "parley.conversation_id": "conv-1"}


SOURCE = ("Opened blenders can be returned within 14 days of delivery if they have not been "
          "used with food.")


class _FakeEmbedder:
    name, dim = "fake", 4

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        return np.tile(np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32), (len(texts), 1))


class _FakeIndex:
    async def search(self, text: str, *, vector: Any = None, k: int = 8, lang: str | None = None,
                     tags: Any = None) -> list[Hit]:
        chunk = Chunk(id="returns#0", doc_id="returns", title="Returns", text=SOURCE, lang="en")
        return [Hit(chunk, 1.0, "")]

    async def get(self, chunk_id: str) -> Chunk | None:
        return None

    async def close(self) -> None:
        return None


class _QuotingGenerator:
    name = "quoting"

    async def available(self) -> bool:
        return True

    async def stream(self, messages: list[ChatMessage], *, max_tokens: int = 256,
                     temperature: float = 0.0) -> AsyncIterator[str]:
        yield f"{SOURCE} [1] "
        yield "Every order ships free forever. [1]"


async def test_a_knowledge_answer_traces_retrieval_generation_and_the_gate(
        spans: InMemorySpanExporter) -> None:
    answerer = KnowledgeAnswerer(index=_FakeIndex(), embedder=_FakeEmbedder(),  # type: ignore[arg-type]
                                 generators=[_QuotingGenerator()])  # type: ignore[list-item]
    question = "Can I return an opened blender? anna.lee@example.com"
    with tracing.span("action.run") as action:
        answer = await answerer.answer(question, lang="en", topic="returns")
    assert not answer.abstained and answer.generator == "quoting"
    finished = spans.get_finished_spans()
    top = named(finished, "knowledge.answer")
    retrieval, generation = named(finished, "knowledge.retrieval"), named(finished,
                                                                          "knowledge.generation")
    gates = [s for s in finished if s.name == "knowledge.gate"]
    assert top.parent is not None and top.parent.span_id == action.get_span_context().span_id
    assert child_of(retrieval, top) and child_of(generation, top)
    assert len(gates) == 2 and all(child_of(g, generation) for g in gates)
    assert [g.attributes["parley.gate.supported"] for g in gates] == [True, False]  # type: ignore[index]
    assert top.attributes == {"parley.language": "en", "parley.topic": "returns"}
    assert retrieval.attributes == {"parley.hits": 1, "parley.sources": 1}
    assert generation.attributes == {"parley.generator": "quoting", "parley.abstained": False,
                                     "parley.answer.reason": "answered"}
    assert_no_customer_text(finished, question, "blender", "14 days")


TRACED_PAYLOADS: list[dict[str, Any]] = []


@task("test.traced", timeout_s=5)
async def _traced(payload: dict[str, Any], ctx: TaskContext) -> None:
    TRACED_PAYLOADS.append(payload)


async def test_a_task_continues_the_trace_of_the_request_that_enqueued_it(
        spans: InMemorySpanExporter, settings: Settings) -> None:
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings)  # not started
    try:
        with tracing.span("POST /api/v1/kb/articles") as request:
            task_id = queue.enqueue("test.traced", {"doc_id": "kettle"})
        untraced_id = queue.enqueue("test.traced", {"doc_id": "other"})
        row = queue.journal.next_task()
        assert row is not None and row["id"] == task_id
        payload = json.loads(row["payload"])
        assert set(payload[TRACE_KEY]) == {"traceparent"}
        outcome = await run_attempt("test.traced", payload, TaskContext(
            settings, journal=queue.journal), task_id=task_id, policy=RetryPolicy())
        assert queue.status(untraced_id) is not None
    finally:
        queue.close()
    assert outcome.state == "done"
    assert TRACED_PAYLOADS[-1] == {"doc_id": "kettle"}  # the body never sees the context
    assert TRACE_KEY in payload  # and a retry of the same payload keeps it
    run = named(spans.get_finished_spans(), "task.run")
    assert run.kind == SpanKind.CONSUMER and run.parent is not None
    assert run.parent.span_id == request.get_span_context().span_id
    assert run.attributes == {"parley.task": "test.traced", "parley.task_id": task_id,
                              "parley.task.attempt": 1, "parley.task.outcome": "done"}


@task("test.traced_failure", timeout_s=5)
async def _traced_failure(payload: dict[str, Any], ctx: TaskContext) -> None:
    raise ValueError(f"no customer {SECRET_TEXT}")


async def test_a_failed_task_span_names_the_error_type_only(spans: InMemorySpanExporter,
                                                            settings: Settings) -> None:
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings)  # not started
    try:
        task_id = queue.enqueue("test.traced_failure", {"n": 1})
        outcome = await run_attempt("test.traced_failure", {"n": 1}, TaskContext(
            settings, journal=queue.journal), task_id=task_id, policy=RetryPolicy(max_attempts=1))
    finally:
        queue.close()
    assert outcome.state == "dead"
    run = named(spans.get_finished_spans(), "task.run")
    assert run.attributes is not None and run.attributes["error.type"] == "ValueError"
    assert run.status.status_code == StatusCode.ERROR and run.status.description == "ValueError"
    assert not run.events  # no exception event: its message could quote customer data
    assert_no_customer_text([run], SECRET_TEXT)


def test_tracing_is_off_by_default(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*tracing.STANDARD_ENDPOINTS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    built: list[Any] = []
    monkeypatch.setattr("opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter",
                        lambda **kwargs: built.append(kwargs))
    previous = tracing.use(None)
    try:
        assert settings.otel_endpoint == ""
        assert tracing.configure(settings, service="parley-api") is None
        assert not tracing.enabled() and built == []
        with tracing.span("parley.turn") as span:
            assert not span.is_recording()
        assert tracing.inject() == {}
    finally:
        tracing.use(previous)


class _FakeExporter:
    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = endpoint
        EXPORTERS.append(self)

    def export(self, spans: Any) -> Any:  # pragma: no cover - nothing is exported here
        raise AssertionError("no span should be exported in a unit test")

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


EXPORTERS: list[_FakeExporter] = []


@pytest.mark.parametrize(("setting", "environ", "expected"), [
    ("http://collector:4318", {}, "http://collector:4318/v1/traces"),
    ("http://collector:4318/v1/traces", {}, "http://collector:4318/v1/traces"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}, None),  # the exporter reads it
])
def test_an_otlp_endpoint_turns_tracing_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           setting: str, environ: dict[str, str],
                                           expected: str | None) -> None:
    for name in (*tracing.STANDARD_ENDPOINTS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter",
                        _FakeExporter)
    settings = Settings(environment="test", var_dir=tmp_path / "var", otel_endpoint=setting)
    previous = tracing.use(None)
    EXPORTERS.clear()
    try:
        provider = tracing.configure(settings, service="parley-nlu")
        assert provider is not None and tracing.enabled()
        assert tracing.configure(settings, service="parley-api") is provider  # once a process
        assert provider.resource.attributes["service.name"] == "parley-nlu"  # type: ignore[attr-defined]
        assert [e.endpoint for e in EXPORTERS] == [expected]
        provider.shutdown()  # type: ignore[attr-defined]
    finally:
        tracing.use(previous)


def test_otel_sdk_disabled_keeps_tracing_off(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    settings = Settings(environment="test", var_dir=tmp_path / "var",
                        otel_endpoint="http://collector:4318")
    previous = tracing.use(None)
    try:
        assert tracing.configure(settings, service="parley-api") is None
    finally:
        tracing.use(previous)
