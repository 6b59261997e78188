"""Rows to the messages clients see: base units become decimal strings here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.amounts import format_amount
from orderengine.fees import FEE_TOKEN
from orderengine.statuses import Status
from orderengine.store.models import StoredOrder
from orderengine.tokens import token
from orderengine.v1 import market_pb2, order_pb2


def timestamp(moment: datetime) -> Timestamp:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def order_to_proto(row: StoredOrder) -> order_pb2.Order:
    order = order_pb2.Order(
        order_id=row.order_id,
        status=Status(row.status).proto,
        input_token=row.input_token,
        output_token=row.output_token,
        amount=format_amount(row.amount_in, token(row.input_token).decimals),
        slippage_bps=row.slippage_bps,
        client_order_id=row.client_order_id or "",
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        attempt=row.attempt,
        signature=row.signature or "",
        failure_reason=row.failure_reason or "",
        last_sequence=row.last_sequence,
        priority_fee=format_amount(row.priority_fee, token(FEE_TOKEN).decimals),
    )
    if row.route is not None:
        order.route.CopyFrom(row.route)
    if row.amount_out is not None:
        order.amount_out = format_amount(row.amount_out, token(row.output_token).decimals)
    return order


def message_to_json(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return result


def event_from_json(event: dict[str, Any]) -> order_pb2.OrderEvent:
    """An event stored as proto JSON (before events were stored as bytes)."""
    return json_format.ParseDict(event, order_pb2.OrderEvent())


def route_from_json(route: dict[str, Any]) -> market_pb2.Route:
    """A route stored as proto JSON (before routes were stored as bytes)."""
    return json_format.ParseDict(route, market_pb2.Route())
