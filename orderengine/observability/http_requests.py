"""The gateway's HTTP requests get what a gRPC call gets: a request id
(the client's ``X-Request-Id``, or a new one, answered in the same header
and sent on to OrderService), a call log line, metrics (metrics_http) and,
when tracing, a SERVER span that the OrderService call continues. An ASGI
middleware, so nothing is buffered; a WebSocket gets the request id only
(it may stay open for hours: no line, no figure, no span)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status

from orderengine.observability import call_logs, request_ids, tracing
from orderengine.observability.metrics_http import HttpFigures
from orderengine.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

RESPONSE_HEADER = b"x-request-id"
# Polled by machines (orchestrators, Prometheus): no span, a DEBUG line.
POLLED_PATHS = ("/healthz", "/metrics")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


class ObservedRequests:
    def __init__(self, app: App) -> None:
        self.app = app
        self.slow_ms = Settings().call_log_slow_ms
        self.tracer = tracing.tracer()
        self.figures = HttpFigures()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_ids.accepted(_header(scope, RESPONSE_HEADER))
        with request_ids.using(request_id):
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, request_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        method, path = scope["method"], scope["path"]
        span = token = None
        polled = path in POLLED_PATHS
        if self.tracer is not None and not polled:
            carrier = {
                name: value.decode("latin-1")
                for name in (tracing.TRACEPARENT, tracing.TRACESTATE)
                if (value := _header(scope, name.encode()))
            }
            parent = tracing.extract(carrier)
            span = self.tracer.start_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": method,
                    "url.path": path,
                    tracing.REQUEST_ID: request_id,
                },
            )
            token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 500  # unless the app answers
        started = time.perf_counter()

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", ()),
                    (RESPONSE_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            seconds = time.perf_counter() - started
            milliseconds = seconds * 1000
            # The route's template once routed (/api/orders/{order_id}):
            # spans and figures are named by kind, not by order.
            route = getattr(scope.get("route"), "path", None)
            self.figures.record(route, method, status, seconds)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status >= 500:
                    span.set_status(Status(trace.StatusCode.ERROR, str(status)))
                otel_context.detach(token)  # type: ignore[arg-type]
                span.end()
            at = call_logs.level(
                failed=status >= 400,
                # A health check's 503 is its answer (not serving yet), which
                # its poller reports: not a fault of the call.
                server_error=status >= 500 and not (polled and status == 503),
                milliseconds=milliseconds,
                slow_ms=self.slow_ms,
                health=polled,
            )
            if call_logs.log.isEnabledFor(at):
                call_logs.log.log(
                    at,
                    "%s",
                    call_logs.line(
                        {
                            "http": f"{method} {path}",
                            "status": status,
                            "ms": f"{milliseconds:.1f}",
                            "request_id": request_id,
                            "trace_id": span and f"{span.get_span_context().trace_id:032x}",
                        }
                    ),
                )
