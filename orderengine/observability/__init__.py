"""What every call of the engine reports, in one place each: request ids,
per-call logs, Prometheus metrics and OpenTelemetry traces. The server and
channel factories (orderengine.serving, orderengine.channels) take their
interceptors from here, so no service wires them by hand."""

from __future__ import annotations

from typing import Any

import grpc


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Run on every call a grpc.aio server of the engine takes, outermost first."""
    return []


def client_interceptors() -> list[Any]:
    """For synchronous channels (``grpc.intercept_channel``), outermost first."""
    return []


def aio_client_interceptors() -> list[Any]:
    """For grpc.aio channels (``interceptors=``), outermost first."""
    return []
