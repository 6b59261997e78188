"""``orderengine``: submit, watch, list, get and cancel orders from a terminal.

    orderengine submit SOL USDC 10 --watch
    orderengine watch ORDER_ID
    orderengine orders
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import datetime

import grpc

from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.v1 import market_pb2, order_pb2, order_service_pb2, order_service_pb2_grpc


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
        return (f"quotes: {quotes} {output_token}; route: {legs}, expect "
                f"{event.route.amount_out} (min {event.route.min_amount_out}) {output_token}")
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
        print(f"  #{event.sequence:<3} {last.value:<10} {offset:>9}  "
              f"{describe(event, output_token)}".rstrip(), flush=True)
    return last


def _stub(args: argparse.Namespace) -> order_service_pb2_grpc.OrderServiceStub:
    return order_service_pb2_grpc.OrderServiceStub(grpc.insecure_channel(args.address))


def _watch(args: argparse.Namespace, order_id: str, after: int = 0) -> int:
    stub = _stub(args)
    order = stub.GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10)
    stream = stub.WatchOrder(order_service_pb2.WatchOrderRequest(order_id=order_id,
                                                                  after_sequence=after))
    final = print_events(stream, order.output_token)
    return 0 if final in (Status.CONFIRMED, None) else 1


def cmd_submit(args: argparse.Namespace) -> int:
    reply = _stub(args).SubmitOrder(order_service_pb2.SubmitOrderRequest(
        input_token=args.input_token, output_token=args.output_token, amount=args.amount,
        slippage_bps=args.slippage_bps, client_order_id=args.client_order_id or ""),
        timeout=10)
    order = reply.order
    again = " (already submitted with this client order id)" if reply.already_exists else ""
    print(f"order {order.order_id}: {order.amount} {order.input_token} -> "
          f"{order.output_token}, slippage {order.slippage_bps} bps{again}", flush=True)
    return _watch(args, order.order_id) if args.watch else 0


def cmd_watch(args: argparse.Namespace) -> int:
    print(f"order {args.order_id}", flush=True)
    return _watch(args, args.order_id, args.after)


def _summary(order: order_pb2.Order) -> str:
    created = order.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    received = f"{order.amount_out} {order.output_token}" if order.amount_out else ""
    return (f"{order.order_id}  {created}  {Status.from_proto(order.status).value:<10} "
            f"{order.amount} {order.input_token} -> {order.output_token}  {received}").rstrip()


def cmd_orders(args: argparse.Namespace) -> int:
    reply = _stub(args).ListOrders(order_service_pb2.ListOrdersRequest(
        page_size=args.page_size, page_token=args.page_token), timeout=10)
    for order in reply.orders:
        print(_summary(order))
    if reply.next_page_token:
        print(f"more: orderengine orders --page-token {reply.next_page_token}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    order = _stub(args).GetOrder(order_service_pb2.GetOrderRequest(order_id=args.order_id),
                                 timeout=10)
    print(order)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    order = _stub(args).CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=args.order_id), timeout=10)
    print(_summary(order))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="orderengine", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--address", default=Settings().order_service_address,
                     help="OrderService address (default: $ORDER_SERVICE_ADDRESS or "
                          "127.0.0.1:50051)")
    sub = top.add_subparsers(dest="command", required=True)

    submit = sub.add_parser("submit", help="submit a market order")
    submit.add_argument("input_token")
    submit.add_argument("output_token")
    submit.add_argument("amount", help="in whole tokens, e.g. 10 or 0.25")
    submit.add_argument("--slippage-bps", type=int, default=0, help="default 50")
    submit.add_argument("--client-order-id", help="resubmitting with it returns the first order")
    submit.add_argument("--watch", action="store_true", help="follow the order to its end")
    submit.set_defaults(run=cmd_submit)

    watch = sub.add_parser("watch", help="print an order's events as they happen")
    watch.add_argument("order_id")
    watch.add_argument("--after", type=int, default=0, help="only events after this sequence")
    watch.set_defaults(run=cmd_watch)

    orders = sub.add_parser("orders", help="list orders, newest first")
    orders.add_argument("--page-size", type=int, default=20)
    orders.add_argument("--page-token", default="")
    orders.set_defaults(run=cmd_orders)

    get = sub.add_parser("get", help="show one order")
    get.add_argument("order_id")
    get.set_defaults(run=cmd_get)

    cancel = sub.add_parser("cancel", help="cancel a PENDING order")
    cancel.add_argument("order_id")
    cancel.set_defaults(run=cmd_cancel)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
