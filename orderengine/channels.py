"""Every channel the engine opens to one of its gRPC services: from one
service to another, from the gateway, the CLI and the benchmark. One place
decides the options, the credentials and the interceptors of them all."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from orderengine import observability
from orderengine.auth import aio_interceptors, with_metadata

Metadata = Sequence[tuple[str, str]]

# A peer that restarts is back within a second or two; gRPC's default
# reconnect back-off (up to two minutes) would keep calls failing long after.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Long-lived watch streams notice a dead peer (the servers allow pings
    # every 10 s without data).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def channel(address: str, metadata: Metadata = ()) -> grpc.Channel:
    """A channel to ``address`` sending ``metadata`` (a key or the internal
    token) on every call."""
    raw = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    intercepted = grpc.intercept_channel(raw, *observability.client_interceptors())
    return with_metadata(intercepted, metadata) if metadata else intercepted


def aio_channel(address: str, metadata: Metadata = ()) -> grpc.aio.Channel:
    """The same for grpc.aio (create it inside the running loop)."""
    interceptors = [*observability.aio_client_interceptors(),
                    *(aio_interceptors(metadata) if metadata else ())]
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS,
                                     interceptors=interceptors or None)
