"""The ``orderengine`` command: quote, submit, watch, list, get and cancel
orders from a terminal, through the client (orderengine.client). Commands
that work on the engine's own database (``keys``) come with the server's
distribution, which names them under the entry point group
``orderengine.cli``: each names a function that adds its commands to the
parser (it is given the subparsers and the parent parser of --json).

A command's modules (gRPC, the generated code) are imported when it runs:
--help and --version answer without them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points

from orderengine.cli import waiting
from orderengine.cli.errors import CommandError
from orderengine.client.keys import NoApiKey
from orderengine.client.settings import ClientSettings
from orderengine.client.version import VERSION

PLUGINS = "orderengine.cli"

DESCRIPTION = """\
Quote, submit, watch, list, get and cancel orders on the order engine, and
fund and read your wallet.

examples:
  orderengine quote SOL USDC 5000
  orderengine submit SOL USDC 10 --watch
  orderengine submit SOL USDC 10 --wait --json
  orderengine submit SOL USDC 10 --limit-out 1500 --expires 1h
  orderengine submit SOL USDC 10 --stop 140
  orderengine submit SOL USDC 10 --twap 10x30s
  orderengine snipe NEWTOKEN --with 5 USDC --max-price 0.01 --expires 1h
  orderengine orders --open
  orderengine orders
  orderengine get ORDER_ID
  orderengine airdrop SOL 10
  orderengine balances

Calls go to OrderService at --address and carry the API key in
ORDERENGINE_API_KEY, else the one in the key file (ORDERENGINE_API_KEY_FILE,
default var/api-key, which make run writes). TLS follows the TLS_* settings.
Every command takes --json: the result as JSON, for scripts (a stream of
events as one JSON object a line)."""


def _on_demand(name: str, module: str = "orders") -> Callable[[argparse.Namespace], int]:
    """The command ``name`` of orderengine.cli.``module``, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(
            import_module(f"orderengine.cli.{module}"), name
        )
        return command(args)

    return run


def _swap_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("input_token", help="the token sold, e.g. SOL")
    command.add_argument("output_token", help="the token bought, e.g. USDC")
    command.add_argument("amount", help="of the token sold, in whole tokens, e.g. 10 or 0.25")
    command.add_argument(
        "--slippage-bps",
        type=int,
        default=0,
        help="most the output may fall below the quote; default 50",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="orderengine",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    top.add_argument(
        "--address",
        default=ClientSettings().order_service_address,
        help="OrderService address (default: $ORDER_SERVICE_ADDRESS or 127.0.0.1:50051)",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON, for scripts")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = sub.add_parser(
        "submit", parents=[common], help="submit a market, limit, stop or TWAP order"
    )
    _swap_arguments(submit)
    submit.add_argument("--client-order-id", help="resubmitting with it returns the first order")
    submit.add_argument(
        "--priority-fee", default="", help="SOL paid on top of the network fee, e.g. 0.0001"
    )
    follow = submit.add_mutually_exclusive_group()
    follow.add_argument(
        "--watch", action="store_true", help="print the order's events until it ends"
    )
    follow.add_argument(
        "--wait",
        action="store_true",
        help="show its statuses as they pass, then the order as it ended (exit 1 unless CONFIRMED)",
    )
    waiting.add_options(submit)
    submit.set_defaults(run=_on_demand("cmd_submit"))

    snipe = waiting.add_snipe(sub, common)
    snipe.set_defaults(run=_on_demand("cmd_snipe"))

    quote = sub.add_parser(
        "quote", parents=[common], help="what each venue and the route would give now"
    )
    _swap_arguments(quote)
    quote.set_defaults(run=_on_demand("cmd_quote"))

    watch = sub.add_parser(
        "watch", parents=[common], help="print an order's events as they happen, until it ends"
    )
    watch.add_argument("order_id")
    watch.add_argument("--after", type=int, default=0, help="only events after this sequence")
    watch.set_defaults(run=_on_demand("cmd_watch"))

    orders = sub.add_parser("orders", parents=[common], help="list your orders, newest first")
    orders.add_argument("--page-size", type=int, default=20)
    orders.add_argument("--page-token", default="")
    orders.add_argument("--open", action="store_true", help="only orders waiting (OPEN)")
    orders.set_defaults(run=_on_demand("cmd_orders"))

    get = sub.add_parser("get", parents=[common], help="show one order")
    get.add_argument("order_id")
    get.set_defaults(run=_on_demand("cmd_get"))

    cancel = sub.add_parser("cancel", parents=[common], help="cancel a PENDING or OPEN order")
    cancel.add_argument("order_id")
    cancel.set_defaults(run=_on_demand("cmd_cancel"))

    balances = sub.add_parser(
        "balances", parents=[common], help="what your wallet holds of each token"
    )
    balances.add_argument("tokens", nargs="*", help="only these tokens (default: every one)")
    balances.set_defaults(run=_on_demand("cmd_balances", "wallet"))

    airdrop = sub.add_parser(
        "airdrop", parents=[common], help="fund your wallet from the chain's faucet"
    )
    airdrop.add_argument("token", help="e.g. SOL")
    airdrop.add_argument("amount", help="in whole tokens, e.g. 10 or 0.25")
    airdrop.add_argument(
        "--request-id", help="sending it again with the same id airdrops nothing more"
    )
    airdrop.set_defaults(run=_on_demand("cmd_airdrop", "wallet"))

    for plugin in entry_points(group=PLUGINS):
        try:
            plugin.load()(sub, common)
        except Exception as exc:  # a broken install must not take the other commands
            print(f"orderengine: no {plugin.name!r} command ({exc})", file=sys.stderr)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    import grpc  # not before: --help and --version need none of it

    try:
        code = args.run(args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        code = 2
    except (CommandError, NoApiKey, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # its reader went away (| head): no traceback, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141
    sys.exit(code)
