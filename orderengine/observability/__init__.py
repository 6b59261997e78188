"""What every call of the engine reports, in one place each: request ids,
per-call logs, Prometheus metrics and OpenTelemetry traces. The channel
factories (orderengine.mesh.channels) take their interceptors from here, and
every server wraps its handlers with them (orderengine.mesh.wrapped_handlers),
so no service wires them by hand."""

from __future__ import annotations

from typing import Any

import grpc

from orderengine.observability import tracing


def traced(channel: grpc.Channel) -> grpc.Channel:
    """A synchronous channel, its calls spanned when tracing (outermost).
    What every call sends and reports besides, one interceptor of the
    channel's does (orderengine.mesh.client_calls)."""
    return tracing.traced_channel(channel)


def aio_client_interceptors() -> list[Any]:
    """For grpc.aio channels (``interceptors=``), outermost first: the span
    when tracing. What every call sends and reports besides, a channel's
    wrapper does (orderengine.mesh.client_calls)."""
    return tracing.aio_client_interceptors()
