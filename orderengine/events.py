"""The event bus: the status changes of each commit are published together,
one message on one Redis channel; each OrderService process subscribes once
and fans out in memory. A lost publish costs only latency: watchers fill
gaps from the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis import Redis
from redis.client import Pipeline

from orderengine.v1 import order_pb2

# Named for what its messages hold (OrderEvents), so that a part that reads
# another format never takes them for its own.
CHANNEL = "orderengine:order-event-batches"


def publish(redis: Redis | Pipeline, events: Iterable[order_pb2.OrderEvent]) -> None:
    """Publishes the events as one message; on a pipeline it goes with the
    next execute(). Nothing is sent for no events."""
    batch = order_pb2.OrderEvents(events=events)
    if batch.events:
        redis.publish(CHANNEL, batch.SerializeToString())


def decode(message: bytes) -> Sequence[order_pb2.OrderEvent]:
    """The events of one message, in commit order."""
    return order_pb2.OrderEvents.FromString(message).events
