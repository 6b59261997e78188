"""One log line per call a server of the engine takes, as ``key=value``
pairs: method, status code, duration, request id, the order the request or
the answer names, and the trace when tracing. Never metadata and never a
body: no API key, token or authorization header reaches a log through here.

Which level (docs/operations.md, "Request ids and call logs"): a call that failed, or took longer
than CALL_LOG_SLOW_MS, is INFO (a server error WARNING); a quick successful
one is DEBUG, and so is every health check. A written line costs OrderService
about 90 us of CPU, an eighth more per SubmitOrder (~700 us) at 1,500 a
second; an unwritten one about 1 us. So the lines worth reading stand out,
and LOG_LEVEL=DEBUG shows every call."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from opentelemetry import trace

from orderengine.observability import handlers, request_ids
from orderengine.settings import Settings

log = logging.getLogger("orderengine.calls")

# The server's fault, not the caller's: worth a warning.
SERVER_ERRORS = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
})


def level(*, failed: bool, server_error: bool, milliseconds: float, slow_ms: float,
          health: bool) -> int:
    """The level of one call's line (gRPC or HTTP alike)."""
    if server_error:
        return logging.WARNING
    if health:
        return logging.DEBUG
    if failed or milliseconds >= slow_ms:
        return logging.INFO
    return logging.DEBUG


def line(fields: dict[str, object]) -> str:
    """``key=value`` for each field that has a value, in order."""
    return " ".join(f"{key}={value}" for key, value in fields.items()
                    if value is not None and value != "")


def trace_id() -> str | None:
    """The current trace, to go from a log line to it (None when tracing is
    off, or the trace is not recorded)."""
    context = trace.get_current_span().get_span_context()
    # An unsampled one (the tracker's status polls) is recorded nowhere.
    return f"{context.trace_id:032x}" if context.trace_flags.sampled else None


class _Logged:
    def __init__(self, method: str, slow_ms: float) -> None:
        self.method = method
        self.slow_ms = slow_ms
        self.health = method.startswith(handlers.HEALTH_PREFIX)

    def enter(self, request: Any, context: grpc.aio.ServicerContext, streaming: bool) -> float:
        return time.perf_counter()

    def exit(self, state: float, context: grpc.aio.ServicerContext, request: Any,
             response: Any, error: BaseException | None) -> None:
        milliseconds = (time.perf_counter() - state) * 1000
        code = handlers.status_code(context, error)
        at = level(failed=code is not grpc.StatusCode.OK, server_error=code in SERVER_ERRORS,
                   milliseconds=milliseconds, slow_ms=self.slow_ms, health=self.health)
        if not log.isEnabledFor(at):  # the common case costs two clock reads
            return
        log.log(at, "%s", line({
            "call": self.method, "code": code.name, "ms": f"{milliseconds:.1f}",
            "request_id": request_ids.current(),
            "order_id": handlers.order_id(self.method, request, response),
            "trace_id": trace_id(),
        }))


class CallLogs:
    def __init__(self, slow_ms: float) -> None:
        self.slow_ms = slow_ms

    def hooks(self, method: str, handler: grpc.RpcMethodHandler) -> _Logged:
        return _Logged(method, self.slow_ms)


def server_observers() -> list[handlers.Observer]:
    return [CallLogs(Settings().call_log_slow_ms)]
