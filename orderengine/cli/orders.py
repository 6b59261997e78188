"""The order commands of ``orderengine`` (orderengine.cli): quote, submit,
watch, list, get and cancel, as calls to OrderService carrying the API key."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal

import grpc

from orderengine.mesh.auth import key_metadata
from orderengine.mesh.channels import ORDER_SERVICE
from orderengine.mesh.channels import channel as orderengine_channel
from orderengine.mesh.resumption import RESUMABLE, Resumption
from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.store.api_keys import client_key
from orderengine.swaps import DEFAULT_SLIPPAGE_BPS
from orderengine.v1 import market_pb2, order_pb2, order_service_pb2, order_service_pb2_grpc

# How long ``watch`` keeps resuming while OrderService is away.
WATCH_RESUME_SECONDS = 30.0


def _venue(value: int) -> str:
    return market_pb2.Venue.Name(value).removeprefix("VENUE_").lower()


def describe(event: order_pb2.OrderEvent, output_token: str) -> str:
    """What an event says, in one line."""
    status = Status.from_proto(event.status)
    if status is Status.ROUTING and event.reason:
        return f"attempt {event.attempt}, after: {event.reason}"
    if status is Status.ROUTING:
        return f"attempt {event.attempt}"
    if status is Status.ROUTED:
        quotes = ", ".join(f"{_venue(q.venue)} {q.amount_out}" for q in event.quotes)
        legs = " + ".join(f"{_venue(leg.venue)} {leg.pool_id}" for leg in event.route.legs)
        return (
            f"quotes: {quotes} {output_token}; route: {legs}, expect "
            f"{event.route.amount_out} (min {event.route.min_amount_out}) {output_token}"
        )
    if status is Status.SUBMITTED:
        return f"signature {event.signature}"
    if status is Status.CONFIRMED:
        return f"received {event.amount_out} {output_token}, signature {event.signature}"
    if status in (Status.FAILED, Status.CANCELLED):
        return event.reason
    return ""


def print_events(events: Iterable[order_pb2.OrderEvent], output_token: str) -> Status | None:
    start: datetime | None = None
    last: Status | None = None
    for event in events:
        moment = event.event_time.ToDatetime()
        start = start or moment
        offset = f"+{(moment - start).total_seconds():.3f}s"
        last = Status.from_proto(event.status)
        print(
            f"  #{event.sequence:<3} {last.value:<10} {offset:>9}  "
            f"{describe(event, output_token)}".rstrip(),
            flush=True,
        )
    return last


class NoKey(Exception):
    pass


def _stub(args: argparse.Namespace) -> order_service_pb2_grpc.OrderServiceStub:
    settings = Settings()
    key = client_key(settings.api_key, settings.api_key_file)
    if key is None:
        raise NoKey(
            f"no API key: set ORDERENGINE_API_KEY, or start make run (it writes "
            f"{settings.api_key_file}), or make one with: orderengine keys create NAME"
        )
    channel = orderengine_channel(args.address, key_metadata(key), service=ORDER_SERVICE)
    return order_service_pb2_grpc.OrderServiceStub(channel)


def resumed_events(
    stub: order_service_pb2_grpc.OrderServiceStub,
    order_id: str,
    after: int,
    give_up_seconds: float = WATCH_RESUME_SECONDS,
) -> Iterator[order_pb2.OrderEvent]:
    """The order's events after ``after``, through any number of broken
    streams: each is opened again after the last event seen (on another
    OrderService replica, or the same one back). Raises the last RpcError
    once OrderService has been away ``give_up_seconds``."""
    resumption = Resumption(give_up_seconds)
    while True:
        opened_at = resumption.opened()
        stream = stub.WatchOrder(
            order_service_pb2.WatchOrderRequest(order_id=order_id, after_sequence=after)
        )
        try:
            for event in stream:
                resumption.served()
                after = event.sequence
                yield event
            return
        except grpc.RpcError as exc:
            delay = resumption.ended(exc.code(), opened_at)
            if delay is None:
                if exc.code() in RESUMABLE:
                    print(
                        f"  (gave up; resume with: orderengine watch {order_id} --after {after})",
                        file=sys.stderr,
                        flush=True,
                    )
                raise
            print(f"  ({exc.code().name}: resuming after #{after})", file=sys.stderr, flush=True)
        finally:
            stream.cancel()
        time.sleep(delay)


def _watch(args: argparse.Namespace, order_id: str, after: int = 0) -> int:
    stub = _stub(args)
    order = stub.GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10)
    final = print_events(resumed_events(stub, order_id, after), order.output_token)
    return 0 if final in (Status.CONFIRMED, None) else 1


def cmd_submit(args: argparse.Namespace) -> int:
    reply = _stub(args).SubmitOrder(
        order_service_pb2.SubmitOrderRequest(
            input_token=args.input_token,
            output_token=args.output_token,
            amount=args.amount,
            slippage_bps=args.slippage_bps,
            client_order_id=args.client_order_id or "",
        ),
        timeout=10,
    )
    order = reply.order
    again = " (already submitted with this client order id)" if reply.already_exists else ""
    print(
        f"order {order.order_id}: {order.amount} {order.input_token} -> "
        f"{order.output_token}, slippage {order.slippage_bps} bps{again}",
        flush=True,
    )
    return _watch(args, order.order_id) if args.watch else 0


def cmd_watch(args: argparse.Namespace) -> int:
    print(f"order {args.order_id}", flush=True)
    return _watch(args, args.order_id, args.after)


def _summary(order: order_pb2.Order) -> str:
    created = order.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    received = f"{order.amount_out} {order.output_token}" if order.amount_out else ""
    return (
        f"{order.order_id}  {created}  {Status.from_proto(order.status).value:<10} "
        f"{order.amount} {order.input_token} -> {order.output_token}  {received}"
    ).rstrip()


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    """Rows as aligned columns; the columns in ``right`` right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


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
                _venue(q.venue),
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
    lines += _table(rows, right={1, 2, 3})
    # What the route spends of each token, so each leg's share reads as a
    # percentage of it (share_bps itself is of what is held at that point).
    spent: dict[str, Decimal] = {}
    for leg in route.legs:
        spent[leg.input_token] = spent.get(leg.input_token, Decimal(0)) + Decimal(leg.amount_in)
    legs = [["", "venue", "pool", "share", "in", "out"]]
    for i, leg in enumerate(route.legs, 1):
        legs.append(
            [
                f"{i}.",
                _venue(leg.venue),
                leg.pool_id,
                f"{_pct(Decimal(leg.amount_in), spent[leg.input_token])} of {leg.input_token}",
                f"{leg.amount_in} {leg.input_token}",
                f"{leg.amount_out} {leg.output_token}",
            ]
        )
    lines += ["", "route, leg by leg:", *("  " + line for line in _table(legs, right={3, 4, 5}))]
    lines += ["", f"expect {route.amount_out} {dst}, at least {route.min_amount_out} {dst}"]
    return lines


def cmd_quote(args: argparse.Namespace) -> int:
    reply = _stub(args).QuoteOrder(
        order_service_pb2.QuoteOrderRequest(
            input_token=args.input_token,
            output_token=args.output_token,
            amount=args.amount,
            slippage_bps=args.slippage_bps,
        ),
        timeout=10,
    )
    for line in quote_lines(reply, args.slippage_bps or DEFAULT_SLIPPAGE_BPS):
        print(line)
    return 0


def cmd_orders(args: argparse.Namespace) -> int:
    reply = _stub(args).ListOrders(
        order_service_pb2.ListOrdersRequest(page_size=args.page_size, page_token=args.page_token),
        timeout=10,
    )
    for order in reply.orders:
        print(_summary(order))
    if reply.next_page_token:
        print(f"more: orderengine orders --page-token {reply.next_page_token}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    order = _stub(args).GetOrder(
        order_service_pb2.GetOrderRequest(order_id=args.order_id), timeout=10
    )
    print(order)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    order = _stub(args).CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=args.order_id), timeout=10
    )
    print(_summary(order))
    return 0
