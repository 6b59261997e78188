"""What every call of the engine reports, in one place each: request ids,
per-call logs, Prometheus metrics and OpenTelemetry traces. The server and
channel factories (orderengine.mesh.serving, orderengine.mesh.channels) take their
interceptors from here, so no service wires them by hand."""

from __future__ import annotations

from typing import Any

import grpc

from orderengine.observability import call_logs, handlers, request_ids, tracing
from orderengine.observability.metrics_grpc import (
    AIO_CLIENT_METRICS,
    CLIENT_METRICS,
    SERVER_METRICS,
)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Run on every call a grpc.aio server of the engine takes, outermost first."""
    # The request id first: everything inside logs it; the call log inside
    # the span, to name its trace.
    return [request_ids.RequestIdInterceptor(), handlers.ObservedCalls(
        [*tracing.server_observers(), SERVER_METRICS, *call_logs.server_observers()])]


def client_interceptors() -> list[Any]:
    """For synchronous channels (``grpc.intercept_channel``), outermost first."""
    return [*tracing.client_interceptors(), request_ids.SendRequestId(), CLIENT_METRICS]


def aio_client_interceptors() -> list[Any]:
    """For grpc.aio channels (``interceptors=``), outermost first."""
    return [*tracing.aio_client_interceptors(), request_ids.AioSendRequestId(),
            request_ids.AioStreamSendRequestId(), AIO_CLIENT_METRICS]


def aio_self_observed_interceptors() -> list[Any]:
    """For a grpc.aio channel whose caller sends the request id and counts
    its calls itself (metrics_grpc.ObservedUnary): tracing's alone, none
    when tracing is off, so that its calls run without an interceptor task."""
    return tracing.aio_client_interceptors()
