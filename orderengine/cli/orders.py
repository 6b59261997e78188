"""The order commands of ``orderengine`` (orderengine.cli): quote, submit,
watch, list, get and cancel, each a call of the client (orderengine.client)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import grpc

from orderengine.cli import waiting
from orderengine.cli.show import (
    EventLines,
    Progress,
    as_json,
    order_lines,
    orders_table,
    print_json,
    quote_lines,
    swap,
)
from orderengine.client import Client, Resuming
from orderengine.client.requests import DEFAULT_SLIPPAGE_BPS
from orderengine.client.resumption import RESUMABLE
from orderengine.v1 import order_pb2


def client(args: argparse.Namespace) -> Client:
    return Client(args.address)


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _resuming(notice: Resuming) -> None:
    print(
        f"  ({notice.code.name}: resuming after #{notice.after_sequence})",
        file=sys.stderr,
        flush=True,
    )


def _events(orders: Client, order_id: str, after: int) -> Iterator[order_pb2.OrderEvent]:
    """The order's events, saying on standard error when the stream resumes
    and, when it gives up, how to go on."""
    last = after
    try:
        for event in orders.watch(order_id, after_sequence=after, on_resume=_resuming):
            last = event.sequence
            yield event
    except grpc.RpcError as exc:
        if exc.code() in RESUMABLE:
            print(
                f"  (gave up; resume with: orderengine watch {order_id} --after {last})",
                file=sys.stderr,
                flush=True,
            )
        raise


def _exit_code(final: int | None) -> int:
    """0 when the order ended CONFIRMED (or no event was left to show)."""
    return 0 if final in (order_pb2.ORDER_STATUS_CONFIRMED, None) else 1


def _follow(orders: Client, order: order_pb2.Order, after: int, as_json: bool) -> int:
    """Prints the order's events as they come, a line each."""
    lines = EventLines(order.output_token)
    final = None
    for event in _events(orders, order.order_id, after):
        final = event.status
        if as_json:
            print_json(event, line=True)
        else:
            print(lines.line(event), flush=True)
    return _exit_code(final)


def _wait(orders: Client, order: order_pb2.Order, as_json: bool) -> int:
    """Shows the statuses as they pass on standard error, then the order
    as it ended."""
    progress = Progress(order.create_time)
    final = None
    for event in _events(orders, order.order_id, 0):
        progress.step(event)
        final = event.status
    progress.done()
    ended = orders.get(order.order_id)
    if as_json:
        print_json(ended)
    else:
        _print_lines(order_lines(ended))
    return _exit_code(final)


def cmd_submit(args: argparse.Namespace) -> int:
    with client(args) as orders:
        reply = orders.submit(
            args.input_token,
            args.output_token,
            args.amount,
            slippage_bps=args.slippage_bps,
            client_order_id=args.client_order_id or "",
            priority_fee=args.priority_fee,
            **waiting.submit_terms(args),
        )
        order = reply.order
        if args.json and not args.wait:
            print_json(reply, line=args.watch)
        elif not args.json:
            again = " (already submitted with this client order id)" if reply.already_exists else ""
            terms = waiting.terms_text(order)
            print(
                f"order {order.order_id}: {swap(order)}, slippage {order.slippage_bps} bps"
                f"{f', {terms}' if terms else ''}{again}",
                flush=True,
            )
        if args.watch:
            return _follow(orders, order, 0, args.json)
        if args.wait:
            return _wait(orders, order, args.json)
        return 0


def cmd_snipe(args: argparse.Namespace) -> int:
    return cmd_submit(waiting.sniper_swap(args))


def cmd_watch(args: argparse.Namespace) -> int:
    with client(args) as orders:
        order = orders.get(args.order_id)
        if not args.json:
            print(f"order {order.order_id}: {swap(order)}", flush=True)
        return _follow(orders, order, args.after, args.json)


def cmd_orders(args: argparse.Namespace) -> int:
    if args.open:
        return _open_orders(args)
    with client(args) as orders:
        reply = orders.list(page_size=args.page_size, page_token=args.page_token)
    if args.json:
        print_json(reply)
        return 0
    if not reply.orders:
        print(
            "no more orders"
            if args.page_token
            else "no orders yet: submit one with  orderengine submit SOL USDC 1"
        )
        return 0
    _print_lines(orders_table(reply.orders))
    if reply.next_page_token:
        print(f"more: orderengine orders --page-token {reply.next_page_token}")
    return 0


# ``orders --open`` looks through at most this many of the newest orders.
OPEN_SCAN_ORDERS = 10_000


def _open_orders(args: argparse.Namespace) -> int:
    """The caller's OPEN orders, newest first, found page by page."""
    found: list[order_pb2.Order] = []
    token, seen = args.page_token, 0
    with client(args) as orders:
        while seen < OPEN_SCAN_ORDERS:
            reply = orders.list(page_size=1000, page_token=token)
            seen += len(reply.orders)
            found += [o for o in reply.orders if o.status == order_pb2.ORDER_STATUS_OPEN]
            token = reply.next_page_token
            if not token:
                break
    if args.json:
        print_json([as_json(order) for order in found])
        return 0
    if not found:
        print("no orders waiting")
        return 0
    _print_lines(orders_table(found))
    if token:
        print(f"(looked through the newest {seen}; more: --page-token {token})")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with client(args) as orders:
        order = orders.get(args.order_id)
    if args.json:
        print_json(order)
    else:
        _print_lines(order_lines(order))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with client(args) as orders:
        order = orders.cancel(args.order_id)
    if args.json:
        print_json(order)
    else:
        _print_lines(order_lines(order))
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    with client(args) as orders:
        reply = orders.quote(
            args.input_token, args.output_token, args.amount, slippage_bps=args.slippage_bps
        )
    if args.json:
        print_json(reply)
    else:
        _print_lines(quote_lines(reply, args.slippage_bps or DEFAULT_SLIPPAGE_BPS))
    return 0
