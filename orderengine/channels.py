"""Channels from one service of the engine to another."""

from __future__ import annotations

import grpc

# A peer that restarts is back within a second or two; gRPC's default
# reconnect back-off (up to two minutes) would keep calls failing long after.
INTERNAL_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def internal_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=INTERNAL_CHANNEL_OPTIONS)


def internal_aio_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=INTERNAL_CHANNEL_OPTIONS)
