"""Channels from one service of the engine to another."""

from __future__ import annotations

import grpc

from orderengine.auth import aio_interceptors, token_metadata, with_metadata

# A peer that restarts is back within a second or two; gRPC's default
# reconnect back-off (up to two minutes) would keep calls failing long after.
INTERNAL_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def internal_channel(address: str, token: str) -> grpc.Channel:
    """A channel to an internal service, showing it the internal ``token``."""
    return with_metadata(grpc.insecure_channel(address, options=INTERNAL_CHANNEL_OPTIONS),
                         token_metadata(token))


def internal_aio_channel(address: str, token: str) -> grpc.aio.Channel:
    """The same for grpc.aio."""
    return grpc.aio.insecure_channel(address, options=INTERNAL_CHANNEL_OPTIONS,
                                     interceptors=aio_interceptors(token_metadata(token)))
