"""Small things tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from grpc_status import rpc_status

from orderengine.statuses import Status
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc

T = TypeVar("T")


def statuses(events: list[order_pb2.OrderEvent]) -> list[str]:
    return [Status.from_proto(e.status).value for e in events]


def watch_all(
    stub: order_service_pb2_grpc.OrderServiceStub, order_id: str, after: int = 0,
    timeout: float = 30,
) -> list[order_pb2.OrderEvent]:
    """Every event the stream sends until it ends."""
    stream = stub.WatchOrder(
        order_service_pb2.WatchOrderRequest(order_id=order_id, after_sequence=after),
        timeout=timeout,
    )
    return list(stream)


def eventually(check: Callable[[], T | None], timeout: float = 20, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(every)


def details(error: grpc.RpcError) -> str:
    """The status message of a failed call."""
    return error.details() or ""


def field_violations(error: grpc.RpcError) -> list[str]:
    """The fields a google.rpc.BadRequest detail of the error names."""
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields
