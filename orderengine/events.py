"""The event bus: every committed status change is published on one Redis
channel; each OrderService process subscribes once and fans out in memory.
A lost publish costs only latency: watchers fill gaps from the database."""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis
from redis.client import Pipeline

from orderengine.v1 import order_pb2

CHANNEL = "orderengine:order-events"


def publish(redis: Redis | Pipeline, events: Iterable[order_pb2.OrderEvent]) -> None:
    """Publishes the events; on a pipeline they go with its next execute()."""
    if isinstance(redis, Pipeline):
        for event in events:
            redis.publish(CHANNEL, event.SerializeToString())
        return
    with redis.pipeline(transaction=False) as pipe:
        publish(pipe, events)
        pipe.execute()


def decode(message: bytes) -> order_pb2.OrderEvent:
    return order_pb2.OrderEvent.FromString(message)
