"""What a server reports of each call of one method, made once per method:
its metrics (label children bound), its call log line, and its span when
tracing. The method's one wrapper (orderengine.mesh.wrapped_handlers)
starts the clock and the span, and hands the finished call here."""

from __future__ import annotations

import time
from typing import Any

import grpc

from orderengine.observability import call_logs, handlers, tracing
from orderengine.observability.metrics_grpc import SERVER_METRICS


class MethodReport:
    __slots__ = ("_figures", "_log", "spans")

    def __init__(self, method: str, handler: grpc.RpcMethodHandler, slow_ms: float) -> None:
        self._figures = SERVER_METRICS.figures(method, handler)
        self._log = call_logs.MethodLog(method, slow_ms)
        found = [
            hooks
            for observer in tracing.server_observers()
            if (hooks := observer.hooks(method, handler)) is not None
        ]
        # The span's hooks, or None: an untraced call pays one test for it.
        self.spans: handlers.Around[Any] | None = found[0] if found else None

    def done(
        self,
        context: grpc.aio.ServicerContext,
        began: float,
        spanned: Any,
        request: Any,
        response: Any,
        error: BaseException | None,
    ) -> None:
        """The call that began at ``began`` (perf_counter) ended: ``response``
        for a unary answer, ``error`` when it raised."""
        seconds = time.perf_counter() - began
        code = handlers.status_code(context, error)
        # The log line inside the span (to name its trace), the span last.
        self._log.record(code, seconds, request, response)
        self._figures.record(code, seconds)
        if self.spans is not None:
            self.spans.exit(spanned, context, request, response, error)
