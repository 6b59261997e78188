"""OpenTelemetry traces: a span for each call every server of the engine
takes and each call its channels make, W3C ``traceparent`` in the metadata
between them, so that one order's path (gateway, OrderService, the worker's
job, QuoteService, ExecutionService, the tracker) is one trace.

Channels take their client spans from opentelemetry-instrumentation-grpc's
interceptors. Servers keep their own hooks, run by the one wrapper of each
method's handler (orderengine.mesh.wrapped_handlers): that library's server
interceptors would bring back a chain of interceptors per call, and iterate
a streaming handler's answers, where the engine's write theirs
(docs/operations.md, "Tracing").

OTEL_TRACES_EXPORTER picks where spans go: ``console`` (one JSON line a
span, on standard output), ``otlp`` (to OTEL_EXPORTER_OTLP_ENDPOINT, in
batches) or ``none``, the default. With none no tracer is installed, no
interceptor here is added and nothing is carried: tracing off costs nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors as otel_aio_interceptors
from opentelemetry.instrumentation.grpc import client_interceptor as otel_client_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orderengine.observability import handlers, request_ids
from orderengine.observability.call_details import OPEN_PREFIXES, metadata_value
from orderengine.settings import Settings

EXPORTERS = ("none", "console", "otlp")
# Attributes of the engine's own: what a span is about.
ORDER_ID = "order.id"
REQUEST_ID = "request.id"

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_PROPAGATOR = TraceContextTextMapPropagator()
# A server's fault, an error on its span; a caller's mistake (NOT_FOUND,
# INVALID_ARGUMENT...) is not (OpenTelemetry's RPC conventions).
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

_tracer: trace.Tracer | None = None
_provider: trace.TracerProvider | None = None


# -- setting up ---------------------------------------------------------------


def configure(service_name: str) -> None:
    """Installs the tracer the settings ask for, named OTEL_SERVICE_NAME or
    ``service_name``; nothing with OTEL_TRACES_EXPORTER=none."""
    settings = Settings()
    exporter = settings.traces_exporter.lower()
    if exporter not in EXPORTERS:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)}, "
            f"got {settings.traces_exporter!r}"
        )
    if exporter == "none":
        install(None)
        return
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name or service_name})
    )
    if exporter == "console":
        # One line a span: it shares standard output with the process's prints.
        provider.add_span_processor(
            SimpleSpanProcessor(
                ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + os.linesep)
            )
        )
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # Batched off the calls' path; flushed when the process exits.
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint or None))
        )
    install(provider)


def install(provider: trace.TracerProvider | None) -> None:
    """Spans go to ``provider`` from now on (None: tracing off). Interceptors
    and channels made before keep what they had."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("orderengine") if provider is not None else None
    if provider is not None:
        # The library's client interceptors inject with the global
        # propagator: the W3C header the servers and the queue read.
        propagate.set_global_textmap(_PROPAGATOR)


def shutdown() -> None:
    """Sends what is still batched and turns tracing off (it happens by
    itself when the process exits)."""
    provider = _provider
    install(None)
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer() -> trace.Tracer | None:
    """The installed tracer, or None when tracing is off."""
    return _tracer


def enabled() -> bool:
    return _tracer is not None


# -- carrying a trace ----------------------------------------------------------


def inject(carrier: MutableMapping[str, str]) -> None:
    """Writes the current span's ``traceparent`` into ``carrier`` (nothing when off)."""
    if _tracer is not None:
        _PROPAGATOR.inject(carrier)


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The context ``carrier`` continues (an empty one: a new trace)."""
    return _PROPAGATOR.extract(carrier)


@contextmanager
def untraced() -> Iterator[None]:
    """Calls made inside start no trace (the tracker's status polls, many a
    second and about no one order): they carry an unsampled traceparent,
    which the servers' samplers follow."""
    if _tracer is None:
        yield
        return
    ids = RandomIdGenerator()
    quiet = NonRecordingSpan(
        SpanContext(
            ids.generate_trace_id(),
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(0),
        )
    )
    token = otel_context.attach(trace.set_span_in_context(quiet))
    try:
        yield
    finally:
        otel_context.detach(token)


# -- spans of calls ---------------------------------------------------------------


def _text(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def _rpc_attributes(method: str) -> dict[str, Any]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _finish(span: trace.Span, code: grpc.StatusCode | None, order_id: str | None) -> None:
    code = code or grpc.StatusCode.UNKNOWN
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if order_id:
        span.set_attribute(ORDER_ID, order_id)
    if code in SERVER_ERRORS:
        span.set_status(Status(trace.StatusCode.ERROR, code.name))
    span.end()


class _ServerSpan:
    def __init__(self, tracer: trace.Tracer, method: str) -> None:
        self.tracer = tracer
        self.method = method

    def enter(
        self, request: Any, context: grpc.aio.ServicerContext, streaming: bool
    ) -> tuple[trace.Span, object | None]:
        metadata = context.invocation_metadata()
        parent = extract(
            {
                name: value
                for name in (TRACEPARENT, TRACESTATE)
                if (value := metadata_value(metadata, name))
            }
        )
        span = self.tracer.start_span(
            self.method.lstrip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_rpc_attributes(self.method),
        )
        # The handler's own calls are children of this span. Not for a
        # stream: it may end in another context than it began.
        token = None if streaming else otel_context.attach(trace.set_span_in_context(span, parent))
        return span, token

    def exit(
        self,
        state: tuple[trace.Span, object | None],
        context: grpc.aio.ServicerContext,
        request: Any,
        response: Any,
        error: BaseException | None,
    ) -> None:
        span, token = state
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        request_id = request_ids.current()
        if request_id:
            span.set_attribute(REQUEST_ID, request_id)
        _finish(
            span,
            handlers.status_code(context, error),
            handlers.order_id(self.method, request, response),
        )


class ServerSpans:
    """A SERVER span for each call, continuing the caller's trace."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def hooks(self, method: str, handler: grpc.RpcMethodHandler) -> _ServerSpan | None:
        if method.startswith(OPEN_PREFIXES):
            return None
        return _ServerSpan(self.tracer, method)


def _traced(details: Any) -> bool:
    """A client span for unary calls of the engine's own services: none for
    health and reflection, nor for a stream, which may stay open for hours.
    ``details`` is a synchronous call's info or a grpc.aio call's details."""
    method = _text(getattr(details, "full_method", None) or details.method)
    return not method.startswith(OPEN_PREFIXES) and not getattr(details, "is_server_stream", False)


def _client_request(span: trace.Span, request: Any) -> None:
    """What the engine adds to the library's client span: the request id;
    and the RPC conventions' name, without the method's leading slash, as
    the servers' spans have it."""
    if not span.is_recording():
        return
    name = getattr(span, "name", "")
    if name.startswith("/"):
        span.update_name(name[1:])
    request_id = request_ids.current()
    if request_id:
        span.set_attribute(REQUEST_ID, request_id)


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """A synchronous channel (the executor's) whose unary calls, ``.future()``
    ones too, each get a CLIENT span, ended when the call is; ``channel``
    itself when tracing is off."""
    if _provider is None:
        return channel
    spans = otel_client_interceptor(
        tracer_provider=_provider, filter_=_traced, request_hook=_client_request
    )
    return intercept_channel(channel, spans)


def server_observers() -> list[handlers.Observer]:
    return [ServerSpans(_tracer)] if _tracer is not None else []


def aio_client_interceptors() -> list[Any]:
    """For grpc.aio channels (gateway to OrderService, OrderService to
    QuoteService): a CLIENT span per unary call, child of the caller's
    current span (the interceptor runs in a task with a copy of its context)."""
    if _provider is None:
        return []
    made = otel_aio_interceptors(
        tracer_provider=_provider, filter_=_traced, request_hook=_client_request
    )
    return [i for i in made if isinstance(i, grpc.aio.UnaryUnaryClientInterceptor)]
