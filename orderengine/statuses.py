"""The order state machine: which status may follow which.

PENDING -> ROUTING -> ROUTED -> SUBMITTED -> CONFIRMED, FAILED from any step
before CONFIRMED, CANCELLED only from PENDING or OPEN. A failed attempt that
will be retried goes back to ROUTING (from ROUTED or SUBMITTED).

A waiting order (limit, stop, twap) starts OPEN. Its trigger moves it to
ROUTING (then as a market order), its expire_time to EXPIRED. A limit order
whose route or landing gives less than its minimum goes back to OPEN from
ROUTING, ROUTED or SUBMITTED. A TWAP order stays OPEN while its slices run
(each slice is its own market order): OPEN -> OPEN records a slice done,
with the amount filled so far, and the last one ends it CONFIRMED (or
FAILED when no slice filled)."""

from __future__ import annotations

from enum import StrEnum
from typing import cast

from orderengine.v1 import order_pb2


class Status(StrEnum):
    PENDING = "PENDING"
    ROUTING = "ROUTING"
    ROUTED = "ROUTED"
    SUBMITTED = "SUBMITTED"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    OPEN = "OPEN"
    EXPIRED = "EXPIRED"

    @property
    def proto(self) -> order_pb2.OrderStatus:
        return cast(
            "order_pb2.OrderStatus", order_pb2.OrderStatus.Value(f"ORDER_STATUS_{self.value}")
        )

    @classmethod
    def from_proto(cls, value: int) -> Status:
        return cls(order_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_"))

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.CONFIRMED, Status.FAILED, Status.CANCELLED, Status.EXPIRED})
# Statuses of an order that waits for its trigger: the trigger part's, not
# the reconciler's.
WAITING = frozenset({Status.OPEN})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.ROUTING, Status.CANCELLED, Status.FAILED}),
    Status.ROUTING: frozenset({Status.ROUTED, Status.FAILED, Status.OPEN}),
    Status.ROUTED: frozenset({Status.SUBMITTED, Status.ROUTING, Status.FAILED, Status.OPEN}),
    Status.SUBMITTED: frozenset({Status.CONFIRMED, Status.ROUTING, Status.FAILED, Status.OPEN}),
    Status.CONFIRMED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.OPEN: frozenset(
        {
            Status.ROUTING,
            Status.EXPIRED,
            Status.CANCELLED,
            Status.FAILED,
            Status.OPEN,
            Status.CONFIRMED,
        }
    ),
    Status.EXPIRED: frozenset(),
}


def sources(target: Status) -> frozenset[Status]:
    """The statuses an order may be in to move to ``target``."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)
