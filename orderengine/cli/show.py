"""What the CLI prints: for a person, aligned fields and tables with amounts
in their tokens, statuses as words and times in local ISO form; with
``--json``, the messages as proto3 JSON (the names grpcurl prints) for
scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.cli.waiting import terms_text
from orderengine.client.route_figures import leg_shares
from orderengine.v1 import market_pb2, order_pb2, order_service_pb2

# -- JSON ---------------------------------------------------------------------


def as_json(message: Message) -> dict[str, Any]:
    """Every field, set or not, so that a script finds each key; 64-bit
    integers as JSON numbers (sequence numbers), amounts as the decimal
    strings they are."""
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, unquote_int64_if_possible=True
    )


def print_json(value: Message | dict[str, Any] | list[Any], *, line: bool = False) -> None:
    """Pretty-printed, or as one line for a stream of them (``line``)."""
    data = as_json(value) if isinstance(value, Message) else value
    print(json.dumps(data, indent=None if line else 2), flush=True)


# -- words --------------------------------------------------------------------


def status_word(value: int) -> str:
    return order_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")


def venue_word(value: int) -> str:
    return market_pb2.Venue.Name(value).removeprefix("VENUE_").lower()


def local_time(stamp: Timestamp) -> str:
    """``2026-12-06 20:03:36+01:00``: ISO 8601 in this machine's zone."""
    moment = stamp.ToDatetime(tzinfo=UTC).astimezone()
    return moment.isoformat(sep=" ", timespec="seconds")


def seconds_between(earlier: Timestamp, later: Timestamp) -> float:
    return (later.ToNanoseconds() - earlier.ToNanoseconds()) / 1e9


def swap(order: order_pb2.Order) -> str:
    return f"{order.amount} {order.input_token} -> {order.output_token}"


def table(rows: list[list[str]], right: set[int]) -> list[str]:
    """Rows as aligned columns; the columns in ``right`` right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def fields(pairs: Iterable[tuple[str, str | list[str]]]) -> list[str]:
    """``name  value`` lines, the values aligned; a list of values takes a
    line each under the first."""
    pairs = [(name, value) for name, value in pairs if value]
    width = max(len(name) for name, _ in pairs)
    lines = []
    for name, value in pairs:
        values = value if isinstance(value, list) else [value]
        lines.append(f"{name.ljust(width)}  {values[0]}")
        lines += [f"{'':{width}}  {more}" for more in values[1:]]
    return lines


# -- orders -------------------------------------------------------------------


def route_legs(route: market_pb2.Route) -> list[str]:
    rows = [
        [
            f"{i}.",
            venue_word(leg.venue),
            leg.pool_id,
            f"{leg.amount_in} {leg.input_token} -> {leg.amount_out} {leg.output_token}",
        ]
        for i, leg in enumerate(route.legs, 1)
    ]
    return table(rows, right=set()) if rows else []


def order_lines(order: order_pb2.Order) -> list[str]:
    """One order, a field a line."""
    route = order.route
    status = status_word(order.status)
    return fields(
        [
            ("order", order.order_id),
            ("status", status),
            ("swap", f"{swap(order)}, slippage {order.slippage_bps} bps"),
            ("waits for", terms_text(order)),
            ("received", f"{order.amount_out} {order.output_token}" if order.amount_out else ""),
            ("reason", order.failure_reason),
            ("route", route_legs(route)),
            (
                "expected",
                f"{route.amount_out} {order.output_token}, at least "
                f"{route.min_amount_out} {order.output_token}"
                if route.amount_out and not order.amount_out
                else "",
            ),
            ("signature", order.signature),
            ("attempt", str(order.attempt) if order.attempt else ""),
            ("client id", order.client_order_id),
            ("created", local_time(order.create_time)),
            (
                "updated",
                f"{local_time(order.update_time)} "
                f"({seconds_between(order.create_time, order.update_time):.3f} s after)"
                if order.update_time != order.create_time
                else "",
            ),
            (
                "events",
                f"{order.last_sequence} (orderengine watch {order.order_id} shows them)"
                if order.last_sequence
                else "",
            ),
        ]
    )


def orders_table(orders: Iterable[order_pb2.Order]) -> list[str]:
    rows = [["order", "created", "status", "swap", "received"]]
    rows += [
        [
            order.order_id,
            local_time(order.create_time),
            status_word(order.status),
            swap(order) + (f" ({terms})" if (terms := terms_text(order)) else ""),
            f"{order.amount_out} {order.output_token}" if order.amount_out else "",
        ]
        for order in orders
    ]
    return table(rows, right=set())


# -- events -------------------------------------------------------------------


def describe(event: order_pb2.OrderEvent, output_token: str) -> str:
    """What an event says, in one line."""
    status = event.status
    if status == order_pb2.ORDER_STATUS_ROUTING and event.reason:
        return f"attempt {event.attempt}, after: {event.reason}"
    if status == order_pb2.ORDER_STATUS_ROUTING:
        return f"attempt {event.attempt}"
    if status == order_pb2.ORDER_STATUS_ROUTED:
        quotes = ", ".join(f"{venue_word(q.venue)} {q.amount_out}" for q in event.quotes)
        legs = " + ".join(f"{venue_word(leg.venue)} {leg.pool_id}" for leg in event.route.legs)
        return (
            f"quotes: {quotes} {output_token}; route: {legs}, expect "
            f"{event.route.amount_out} (min {event.route.min_amount_out}) {output_token}"
        )
    if status == order_pb2.ORDER_STATUS_SUBMITTED:
        return f"signature {event.signature}"
    if status == order_pb2.ORDER_STATUS_CONFIRMED:
        return f"received {event.amount_out} {output_token}, signature {event.signature}"
    if status in (
        order_pb2.ORDER_STATUS_FAILED,
        order_pb2.ORDER_STATUS_CANCELLED,
        order_pb2.ORDER_STATUS_OPEN,
        order_pb2.ORDER_STATUS_EXPIRED,
    ):
        return event.reason
    return ""


class EventLines:
    """An order's events a line each, timed from the first one shown."""

    def __init__(self, output_token: str) -> None:
        self.output_token = output_token
        self._start: datetime | None = None

    def line(self, event: order_pb2.OrderEvent) -> str:
        moment = event.event_time.ToDatetime()
        self._start = self._start or moment
        offset = f"+{(moment - self._start).total_seconds():.3f}s"
        return (
            f"  #{event.sequence:<3} {status_word(event.status):<10} {offset:>9}  "
            f"{describe(event, self.output_token)}"
        ).rstrip()


class Progress:
    """A long wait shown on standard error as the statuses it passes
    (``PENDING → ROUTING → ROUTED → SUBMITTED → CONFIRMED in 1.213 s``), each
    as it comes, so standard output keeps only the result."""

    def __init__(self, start: Timestamp) -> None:
        self._start = start
        self._last: order_pb2.OrderEvent | None = None

    def step(self, event: order_pb2.OrderEvent) -> None:
        word = status_word(event.status)
        if event.status == order_pb2.ORDER_STATUS_ROUTING and event.attempt > 1:
            word = f"{word} (attempt {event.attempt})"
        sys.stderr.write(word if self._last is None else f" → {word}")
        sys.stderr.flush()
        self._last = event

    def done(self) -> None:
        if self._last is not None:
            took = seconds_between(self._start, self._last.event_time)
            sys.stderr.write(f" in {took:.3f} s\n")
            sys.stderr.flush()


# -- quotes -------------------------------------------------------------------


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{(part * 100 / whole).quantize(Decimal('0.01'))}%" if whole else "-"


def quote_lines(reply: order_service_pb2.QuoteOrderResponse, slippage_bps: int) -> list[str]:
    """Each venue's quote beside the route the engine would take, then the
    route's legs in the order they run."""
    route = reply.route
    src, dst = route.input_token, route.output_token
    lines = [f"{route.amount_in} {src} -> {dst}, slippage {slippage_bps} bps", ""]
    rows = [["", f"amount out ({dst})", f"fee ({src})", "price impact", "pools"]]
    for q in reply.quotes:
        rows.append(
            [
                venue_word(q.venue),
                q.amount_out,
                q.fee,
                f"{q.price_impact_pct}%",
                q.pool_id.replace(">", " > "),
            ]
        )
    pools = list(dict.fromkeys(leg.pool_id for leg in route.legs))
    best = max((Decimal(q.amount_out) for q in reply.quotes), default=Decimal(0))
    versus = (
        f", {_pct(Decimal(route.amount_out) - best, best)} more than the best venue"
        if best and Decimal(route.amount_out) > best
        else ""
    )
    rows.append(
        [
            "route",
            route.amount_out,
            "",
            f"{route.price_impact_pct}%" if route.price_impact_pct else "",
            f"{len(route.legs)} leg{'s' if len(route.legs) != 1 else ''} over "
            f"{len(pools)} pool{'s' if len(pools) != 1 else ''}{versus}",
        ]
    )
    lines += table(rows, right={1, 2, 3})
    # Each leg's share of what the route spends of its token, as the page shows it.
    legs = [["", "venue", "pool", "share", "in", "out"]]
    for i, (leg, share) in enumerate(zip(route.legs, leg_shares(route), strict=True), 1):
        legs.append(
            [
                f"{i}.",
                venue_word(leg.venue),
                leg.pool_id,
                f"{share}% of {leg.input_token}",
                f"{leg.amount_in} {leg.input_token}",
                f"{leg.amount_out} {leg.output_token}",
            ]
        )
    lines += ["", "route, leg by leg:", *("  " + line for line in table(legs, right={3, 4, 5}))]
    lines += ["", f"expect {route.amount_out} {dst}, at least {route.min_amount_out} {dst}"]
    if reply.price:  # under the first line: what limit and stop orders are compared to
        lines.insert(1, f"price now: {reply.price} {dst} per {src}")
    return lines
