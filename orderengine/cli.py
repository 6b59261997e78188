"""``orderengine``: quote, submit, watch, list, get and cancel orders from a terminal.

    orderengine quote SOL USDC 5000
    orderengine submit SOL USDC 10 --watch
    orderengine watch ORDER_ID
    orderengine orders
    orderengine keys create NAME | keys list | keys revoke PREFIX

Calls to OrderService carry the API key in ORDERENGINE_API_KEY, else the one
in the key file (ORDERENGINE_API_KEY_FILE, default var/api-key, which make
run writes). ``keys`` works on the database (DATABASE_URL) directly; the
default, var/orderengine.db, is make run's file in the project, looked for
in this directory and each one above it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import grpc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from orderengine.mesh.auth import key_metadata
from orderengine.mesh.channels import ORDER_SERVICE
from orderengine.mesh.channels import channel as orderengine_channel
from orderengine.mesh.resumption import RESUMABLE, Resumption
from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.store.api_keys import ApiKeys, client_key
from orderengine.store.database import create_database_engine
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


class NoKey(Exception):
    pass


def _stub(args: argparse.Namespace) -> order_service_pb2_grpc.OrderServiceStub:
    settings = Settings()
    key = client_key(settings.api_key, settings.api_key_file)
    if key is None:
        raise NoKey(f"no API key: set ORDERENGINE_API_KEY, or start make run (it writes "
                    f"{settings.api_key_file}), or make one with: orderengine keys create NAME")
    channel = orderengine_channel(args.address, key_metadata(key), service=ORDER_SERVICE)
    return order_service_pb2_grpc.OrderServiceStub(channel)


class NoDatabase(Exception):
    """``keys`` found no database to work on."""


def key_database_url(url: str, here: Path | None = None) -> str:
    """The database ``keys`` works on: ``url``, with a relative SQLite path
    (the default, var/orderengine.db) found in ``here`` or the nearest
    directory above it, as make run keeps it in the project. An SQLite file
    that is not there is an error, never made: keys in a new, empty database
    would reach no OrderService."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" \
            or parsed.query.get("uri"):
        return url
    relative = Path(path)
    if relative.is_absolute():
        if not relative.is_file():
            raise NoDatabase(f"no database at {relative} (DATABASE_URL)")
        return url
    start = (here or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / relative).is_file():
            return parsed.set(database=str(directory / relative)).render_as_string(
                hide_password=False)
    raise NoDatabase(f"no database {relative} in {start} or above it: run this in the "
                     f"project's directory (make run keeps its database in var/ there), "
                     f"or set DATABASE_URL to the engine's database")


def _keys() -> ApiKeys:
    return ApiKeys(create_database_engine(key_database_url(Settings().database_url)))


def _database_error(exc: DBAPIError) -> str:
    url = Settings().database_url
    with suppress(NoDatabase):
        url = key_database_url(url)
    where = make_url(url).render_as_string(hide_password=True)
    said = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if "api_keys" in said:  # no such table (SQLite), does not exist (PostgreSQL)
        return (f"the database {where} has no api_keys table ({said}); bring it to the "
                f"newest schema with: python -m orderengine.store.migrate (make run does)")
    return f"the database {where} failed: {said}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def cmd_keys_create(args: argparse.Namespace) -> int:
    key, info = _keys().create(args.name)
    print(f"created key {info.prefix}... for {info.owner} (id {info.key_id}); it is shown "
          "only now:", file=sys.stderr)
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    for info in _keys().all():
        state = f"revoked {_when(info.revoked_at)}" if info.revoked_at else "active"
        print(f"{info.prefix}...  {info.owner:<16} {_when(info.created_at)}  {state}  "
              f"{info.key_id}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    revoked = _keys().revoke(args.prefix.removesuffix("..."))
    if not revoked:
        print(f"error: no active key {args.prefix!r}", file=sys.stderr)
        return 1
    for info in revoked:
        print(f"revoked {info.prefix}... of {info.owner}")
    return 0


def resumed_events(stub: order_service_pb2_grpc.OrderServiceStub, order_id: str, after: int,
                   give_up_seconds: float = WATCH_RESUME_SECONDS
                   ) -> Iterator[order_pb2.OrderEvent]:
    """The order's events after ``after``, through any number of broken
    streams: each is opened again after the last event seen (on another
    OrderService replica, or the same one back). Raises the last RpcError
    once OrderService has been away ``give_up_seconds``."""
    resumption = Resumption(give_up_seconds)
    while True:
        opened_at = resumption.opened()
        stream = stub.WatchOrder(order_service_pb2.WatchOrderRequest(order_id=order_id,
                                                                      after_sequence=after))
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
                    print(f"  (gave up; resume with: orderengine watch {order_id} "
                          f"--after {after})", file=sys.stderr, flush=True)
                raise
            print(f"  ({exc.code().name}: resuming after #{after})", file=sys.stderr,
                  flush=True)
        finally:
            stream.cancel()
        time.sleep(delay)


def _watch(args: argparse.Namespace, order_id: str, after: int = 0) -> int:
    stub = _stub(args)
    order = stub.GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10)
    final = print_events(resumed_events(stub, order_id, after), order.output_token)
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


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    """Rows as aligned columns; the columns in ``right`` right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


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
        rows.append([_venue(q.venue), q.amount_out, q.fee, f"{q.price_impact_pct}%",
                     q.pool_id.replace(">", " > ")])
    pools = list(dict.fromkeys(leg.pool_id for leg in route.legs))
    best = max((Decimal(q.amount_out) for q in reply.quotes), default=Decimal(0))
    versus = (f", {_pct(Decimal(route.amount_out) - best, best)} more than the best venue"
              if best and Decimal(route.amount_out) > best else "")
    rows.append(["route", route.amount_out, "", "",
                 f"{len(route.legs)} leg{'s' if len(route.legs) != 1 else ''} over "
                 f"{len(pools)} pool{'s' if len(pools) != 1 else ''}{versus}"])
    lines += _table(rows, right={1, 2, 3})
    # What the route spends of each token, so each leg's share reads as a
    # percentage of it (share_bps itself is of what is held at that point).
    spent: dict[str, Decimal] = {}
    for leg in route.legs:
        spent[leg.input_token] = spent.get(leg.input_token, Decimal(0)) + Decimal(leg.amount_in)
    legs = [["", "venue", "pool", "share", "in", "out"]]
    for i, leg in enumerate(route.legs, 1):
        legs.append([f"{i}.", _venue(leg.venue), leg.pool_id,
                     f"{_pct(Decimal(leg.amount_in), spent[leg.input_token])} of {leg.input_token}",
                     f"{leg.amount_in} {leg.input_token}", f"{leg.amount_out} {leg.output_token}"])
    lines += ["", "route, leg by leg:", *("  " + line for line in _table(legs, right={3, 4, 5}))]
    lines += ["", f"expect {route.amount_out} {dst}, at least {route.min_amount_out} {dst}"]
    return lines


def cmd_quote(args: argparse.Namespace) -> int:
    reply = _stub(args).QuoteOrder(order_service_pb2.QuoteOrderRequest(
        input_token=args.input_token, output_token=args.output_token, amount=args.amount,
        slippage_bps=args.slippage_bps), timeout=10)
    for line in quote_lines(reply, args.slippage_bps or DEFAULT_SLIPPAGE_BPS):
        print(line)
    return 0


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

    quote = sub.add_parser("quote", help="what each venue and the route would give now")
    quote.add_argument("input_token")
    quote.add_argument("output_token")
    quote.add_argument("amount", help="in whole tokens, e.g. 10 or 0.25")
    quote.add_argument("--slippage-bps", type=int, default=0, help="default 50")
    quote.set_defaults(run=cmd_quote)

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

    keys = sub.add_parser("keys", help="API keys (on the database: DATABASE_URL)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="a new key for NAME, printed once")
    create.add_argument("name", help="the owner: whose orders the key reaches")
    create.set_defaults(run=cmd_keys_create)
    keys_sub.add_parser("list", help="every key: prefix, owner, state").set_defaults(
        run=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its prefix or id")
    revoke.add_argument("prefix", help="as keys list shows it, e.g. oe_AbCd1234")
    revoke.set_defaults(run=cmd_keys_revoke)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        code = 2
    except (NoKey, NoDatabase, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except DBAPIError as exc:
        print(f"error: {_database_error(exc)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
