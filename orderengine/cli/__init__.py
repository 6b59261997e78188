"""``orderengine``: quote, submit, watch, list, get and cancel orders from a terminal.

    orderengine quote SOL USDC 5000
    orderengine submit SOL USDC 10 --watch
    orderengine submit SOL USDC 10 --limit-out 1500 --expires 1h
    orderengine submit SOL USDC 10 --stop 140
    orderengine submit SOL USDC 10 --twap 10x30s
    orderengine orders --open
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

import grpc
from sqlalchemy.exc import DBAPIError

from orderengine.cli import waiting
from orderengine.cli.keys import (
    NoDatabase,
    cmd_keys_create,
    cmd_keys_list,
    cmd_keys_revoke,
    database_error,
)
from orderengine.cli.orders import (
    NoKey,
    cmd_cancel,
    cmd_get,
    cmd_orders,
    cmd_quote,
    cmd_submit,
    cmd_watch,
)
from orderengine.settings import Settings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="orderengine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--address",
        default=Settings().order_service_address,
        help="OrderService address (default: $ORDER_SERVICE_ADDRESS or 127.0.0.1:50051)",
    )
    sub = top.add_subparsers(dest="command", required=True)

    submit = sub.add_parser("submit", help="submit a market, limit, stop or TWAP order")
    submit.add_argument("input_token")
    submit.add_argument("output_token")
    submit.add_argument("amount", help="in whole tokens, e.g. 10 or 0.25")
    submit.add_argument("--slippage-bps", type=int, default=0, help="default 50")
    submit.add_argument("--client-order-id", help="resubmitting with it returns the first order")
    submit.add_argument("--watch", action="store_true", help="follow the order to its end")
    waiting.add_options(submit)
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
    orders.add_argument("--open", action="store_true", help="only orders waiting (OPEN)")
    orders.set_defaults(run=cmd_orders)

    get = sub.add_parser("get", help="show one order")
    get.add_argument("order_id")
    get.set_defaults(run=cmd_get)

    cancel = sub.add_parser("cancel", help="cancel a PENDING or OPEN order")
    cancel.add_argument("order_id")
    cancel.set_defaults(run=cmd_cancel)

    keys = sub.add_parser("keys", help="API keys (on the database: DATABASE_URL)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="a new key for NAME, printed once")
    create.add_argument("name", help="the owner: whose orders the key reaches")
    create.set_defaults(run=cmd_keys_create)
    keys_sub.add_parser("list", help="every key: prefix, owner, state").set_defaults(
        run=cmd_keys_list
    )
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
        print(f"error: {database_error(exc)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
