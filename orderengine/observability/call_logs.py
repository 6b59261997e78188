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
from typing import Any

import grpc
from opentelemetry import trace

from orderengine.observability import handlers, request_ids

log = logging.getLogger("orderengine.calls")

# The server's fault, not the caller's: worth a warning.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def level(
    *, failed: bool, server_error: bool, milliseconds: float, slow_ms: float, health: bool
) -> int:
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
    return " ".join(
        f"{key}={value}" for key, value in fields.items() if value is not None and value != ""
    )


def trace_id() -> str | None:
    """The current trace, to go from a log line to it (None when tracing is
    off, or the trace is not recorded)."""
    context = trace.get_current_span().get_span_context()
    # An unsampled one (the tracker's status polls) is recorded nowhere.
    return f"{context.trace_id:032x}" if context.trace_flags.sampled else None


class MethodLog:
    """The call log of one method's calls, on a server."""

    __slots__ = ("_health", "_method", "_slow_ms", "_slow_seconds")

    def __init__(self, method: str, slow_ms: float) -> None:
        self._method = method
        self._slow_ms = slow_ms
        self._slow_seconds = slow_ms / 1000
        self._health = method.startswith(handlers.HEALTH_PREFIX)

    def record(self, code: grpc.StatusCode, seconds: float, request: Any, response: Any) -> None:
        if code is grpc.StatusCode.OK and (seconds < self._slow_seconds or self._health):
            # Most calls: quick and fine, a DEBUG line, most often not written.
            if not log.isEnabledFor(logging.DEBUG):
                return
            at = logging.DEBUG
        else:
            at = level(
                failed=code is not grpc.StatusCode.OK,
                server_error=code in SERVER_ERRORS,
                milliseconds=seconds * 1000,
                slow_ms=self._slow_ms,
                health=self._health,
            )
            if not log.isEnabledFor(at):
                return
        log.log(
            at,
            "%s",
            line(
                {
                    "call": self._method,
                    "code": code.name,
                    "ms": f"{seconds * 1000:.1f}",
                    "request_id": request_ids.current(),
                    "order_id": handlers.order_id(self._method, request, response),
                    "trace_id": trace_id(),
                }
            ),
        )
