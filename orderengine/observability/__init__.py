"""What every call of the engine reports, in one place each: request ids,
per-call logs, Prometheus metrics and OpenTelemetry traces. The channel
factories (orderengine.mesh.channels) take their interceptors from here, and
every server wraps its handlers with them (orderengine.mesh.wrapped_handlers),
so no service wires them by hand."""

from __future__ import annotations

from typing import Any

from orderengine.observability import request_ids, tracing
from orderengine.observability.metrics_grpc import AIO_CLIENT_METRICS, CLIENT_METRICS


def client_interceptors() -> list[Any]:
    """For synchronous channels (``grpc.intercept_channel``), outermost first."""
    return [*tracing.client_interceptors(), request_ids.SendRequestId(), CLIENT_METRICS]


def aio_client_interceptors() -> list[Any]:
    """For grpc.aio channels (``interceptors=``), outermost first."""
    return [*tracing.aio_client_interceptors(), request_ids.AioSendRequestId(),
            request_ids.AioStreamSendRequestId(), AIO_CLIENT_METRICS]
