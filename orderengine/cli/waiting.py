"""The CLI's waiting orders: ``submit ... --limit-out 1500 --expires 1h``,
``--stop 140``, and how an order's type reads in a listing."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.v1 import order_pb2

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:(\d+)([smhd]))+$")
_PART = re.compile(r"(\d+)([smhd])")


def add_options(submit: argparse.ArgumentParser) -> None:
    kind = submit.add_mutually_exclusive_group()
    kind.add_argument(
        "--limit-out",
        metavar="AMOUNT",
        help="limit order: swap only for at least AMOUNT of the output token (take-profit)",
    )
    kind.add_argument(
        "--stop",
        metavar="PRICE",
        help="stop order: swap once the price (output per input) falls to PRICE (stop-loss)",
    )
    submit.add_argument(
        "--expires",
        metavar="WHEN",
        help="a waiting order expires after a duration (30s, 15m, 1h, 2d, 1h30m) or at an "
        "ISO time (2026-12-31T12:00:00Z); without it, it waits until cancelled",
    )


def expiry(text: str, now: datetime) -> datetime:
    """``--expires``: a duration from now, or an ISO 8601 time (UTC if no zone)."""
    raw = text.strip()
    if _DURATION.match(raw):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(raw))
        return now + timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--expires: {text!r} is neither a duration (30s, 15m, 1h, 2d) nor an ISO time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def request_terms(args: argparse.Namespace, now: datetime | None = None) -> dict[str, Any]:
    """SubmitOrderRequest's order type and expire_time, from the options."""
    terms: dict[str, Any] = {}
    if getattr(args, "limit_out", None):
        terms["limit"] = order_pb2.LimitOrder(min_amount_out=args.limit_out)
    elif getattr(args, "stop", None):
        terms["stop"] = order_pb2.StopOrder(trigger_price=args.stop)
    if getattr(args, "expires", None):
        stamp = Timestamp()
        stamp.FromDatetime(expiry(args.expires, now or datetime.now(UTC)))
        terms["expire_time"] = stamp
    return terms


def terms_text(order: order_pb2.Order) -> str:
    """The order type as a listing shows it: "" for a market order."""
    kind = order.WhichOneof("order_type")
    if kind == "limit":
        text = f"limit: at least {order.limit.min_amount_out} {order.output_token}"
    elif kind == "stop":
        text = f"stop at {order.stop.trigger_price} {order.output_token}/{order.input_token}"
    else:
        return ""
    if order.HasField("expire_time"):
        ends = order.expire_time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
        text += f", expires {ends}Z"
    return text
