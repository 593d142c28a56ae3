"""OpenTelemetry tracing for every Parley process: off unless an OTLP endpoint is configured.

``configure(settings, service="parley-api")`` installs this process's tracer provider, which
exports over OTLP/HTTP to ``PARLEY_OTEL_ENDPOINT`` (or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Without one nothing
is created: ``span()`` hands out a shared no-op context and ``inject()`` an empty carrier, so
tracing that is off costs a function call. The SDK is imported only when tracing is on.

Parley's spans go through the provider installed here (``use`` swaps it, as tests do with an
in-memory exporter), not through OpenTelemetry's global one. The trace context travels as W3C
``traceparent``/``tracestate``: in HTTP headers (``TracingMiddleware`` continues it), in
Rasa's message metadata (Rasa forwards no headers; the action server reads it back from the
tracker) and in task payloads (``workers.base``).

Attributes are ids, names, counts and flags only: never message text, e-mail addresses,
tokens or anything else a customer typed. For the same reason an exception is recorded by its
type (``error.type``), not its message, which can quote input.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import Settings

__all__ = ["Span", "SpanKind", "TracingMiddleware", "annotate", "configure", "enabled",
           "extract", "failed", "inject", "span", "start_span", "traced", "use"]

AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue | None]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
TRACER_NAME = "parley"
CARRIER_KEYS = ("traceparent", "tracestate")
STANDARD_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_provider: trace.TracerProvider | None = None
_tracer: trace.Tracer | None = None
_propagator = TraceContextTextMapPropagator()  # W3C only: no baggage crosses a process
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)


def otlp_endpoint(settings: Settings) -> str | None:
    """The traces URL to export to; "" means the exporter reads the standard variables;
    None: tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if settings.otel_endpoint:
        base = settings.otel_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"
    return "" if any(os.environ.get(name) for name in STANDARD_ENDPOINTS) else None


def configure(settings: Settings, *, service: str) -> trace.TracerProvider | None:
    """Install the exporter the settings ask for, as ``service`` (``service.name``); once per
    process: a provider already installed (by an earlier call, or a test's ``use``) is kept.
    Returns the provider, or None when tracing is off (then nothing is created)."""
    if _provider is not None:
        return _provider
    endpoint = otlp_endpoint(settings)
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "parley",
                                  "deployment.environment.name": settings.environment}),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint or None)))
    use(provider)
    return provider


def use(provider: trace.TracerProvider | None) -> trace.TracerProvider | None:
    """Make ``provider`` the one Parley's spans go to (None: off); returns the previous one."""
    global _provider, _tracer
    previous, _provider = _provider, provider
    _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None
    return previous


def enabled() -> bool:
    return _tracer is not None


def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: Context | None = None,
         attributes: Attributes | None = None) -> AbstractContextManager[Span]:
    """A span, current while the block runs (a child of the current one, or of ``parent``);
    an exception marks it failed with its type."""
    if _tracer is None:
        return _OFF
    return _recording(_tracer, name, kind, parent, attributes)


@contextmanager
def _recording(tracer: trace.Tracer, name: str, kind: SpanKind, parent: Context | None,
               attributes: Attributes | None) -> Iterator[Span]:
    with tracer.start_as_current_span(name, context=parent, kind=kind,
                                      attributes=_clean(attributes), record_exception=False,
                                      set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def start_span(name: str, *, kind: SpanKind = SpanKind.INTERNAL,
               attributes: Attributes | None = None) -> Span:
    """A span that is not made current, for work that ends elsewhere (a future's callback);
    the caller ends it."""
    if _tracer is None:
        return INVALID_SPAN
    return _tracer.start_span(name, kind=kind, attributes=_clean(attributes),
                              record_exception=False, set_status_on_exception=False)


def failed(current: Span, error: BaseException | str) -> None:
    """Mark ``current`` failed with the error's type (an exception, or its class name)."""
    kind = error if isinstance(error, str) else type(error).__name__
    current.set_attribute("error.type", kind)
    current.set_status(Status(StatusCode.ERROR, kind))


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (nothing when tracing is off)."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(_clean(attributes))


def traced(name: str, *, attributes: Mapping[str, str] | None = None,
           kind: SpanKind = SpanKind.INTERNAL) -> Callable[[F], F]:
    """Run an async function in a span; ``attributes`` maps an attribute name to the keyword
    argument whose value it takes (``{"parley.conversation_id": "conversation_id"}``)."""
    mapping = dict(attributes or {})

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _tracer is None:
                return await fn(*args, **kwargs)
            with span(name, kind=kind,
                      attributes={attr: kwargs.get(arg) for attr, arg in mapping.items()}):
                return await fn(*args, **kwargs)
        return cast(F, wrapper)
    return decorate


def inject() -> dict[str, str]:
    """The current trace context as ``{"traceparent": ...}``; empty when nothing is traced."""
    carrier: dict[str, str] = {}
    if _tracer is not None:
        _propagator.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> Context | None:
    """The context a ``traceparent`` continues; None without one (a new trace starts)."""
    if not carrier or not isinstance(carrier.get("traceparent"), str):
        return None
    return _propagator.extract({k: str(carrier[k]) for k in CARRIER_KEYS if k in carrier})


def _clean(attributes: Attributes | None) -> dict[str, AttributeValue]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}


class TracingMiddleware:
    """A server span per HTTP request, continuing the caller's ``traceparent``. It is named
    after the route's template (``POST /model/parse``): never the path, which holds ids, nor
    the query, which can hold a token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _tracer is None:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope.get("headers") or ()
                   if key in (b"traceparent", b"tracestate")}
        method = scope.get("method", "GET")
        status: list[int] = []

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with span(method, kind=SpanKind.SERVER, parent=extract(headers),
                  attributes={"http.request.method": method}) as current:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
                if status:
                    current.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        current.set_status(Status(StatusCode.ERROR))
