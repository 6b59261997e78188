"""The CLI's waiting orders: ``submit ... --limit-out 1500 --expires 1h``,
``--stop 140``, ``--twap 10x30s``, ``snipe NEWTOKEN --with 5 USDC``, and how an order's type reads in a listing.
The generated code is imported when a command runs: --help needs none of it."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        "--twap",
        metavar="NxEVERY",
        help="TWAP: the amount in N equal market swaps, one every EVERY (10x30s, 4x1m)",
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


def add_snipe(commands: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``snipe NEWTOKEN --with 5 USDC [--max-price P] [--expires 1h]``."""
    snipe = commands.add_parser(
        "snipe",
        parents=[common],
        help="buy a token as soon as a pool for it has liquidity (a launch)",
    )
    snipe.add_argument("output_token", help="the token to buy, launched or not yet, e.g. NEWTOKEN")
    snipe.add_argument(
        "--with",
        dest="paying",
        nargs=2,
        required=True,
        metavar=("AMOUNT", "TOKEN"),
        help="what to pay, in whole tokens of a token there is, e.g. --with 5 USDC",
    )
    snipe.add_argument(
        "--max-price",
        metavar="PRICE",
        help="only while one token bought costs at most PRICE of the token paid",
    )
    snipe.add_argument(
        "--expires",
        metavar="WHEN",
        help="it expires after a duration (30s, 15m, 1h) or at an ISO time; "
        "without it, it waits until cancelled",
    )
    snipe.add_argument(
        "--slippage-bps", type=int, default=0, help="most the output may fall below the quote"
    )
    snipe.add_argument("--client-order-id", help="resubmitting with it returns the first order")
    snipe.set_defaults(snipe=True, priority_fee="", watch=False, wait=False)
    return snipe


def sniper_swap(args: argparse.Namespace) -> argparse.Namespace:
    """``snipe``'s arguments as ``submit``'s: --with AMOUNT TOKEN is the input."""
    args.amount, args.input_token = args.paying
    return args


def duration(text: str) -> timedelta | None:
    """30s, 15m, 1h, 2d, 1h30m; None for anything else."""
    raw = text.strip()
    if not _DURATION.match(raw):
        return None
    return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(raw)))


def twap_terms(text: str) -> order_pb2.TwapOrder:
    """``--twap 10x30s``: 10 slices, one every 30 seconds."""
    from orderengine.v1 import order_pb2

    count, _, every = text.strip().partition("x")
    interval = duration(every)
    if not count.isdigit() or interval is None:
        raise ValueError(f"--twap: {text!r} is not SLICESxINTERVAL, e.g. 10x30s")
    terms = order_pb2.TwapOrder(slices=int(count))
    terms.interval.FromTimedelta(interval)
    return terms


def expiry(text: str, now: datetime) -> datetime:
    """``--expires``: a duration from now, or an ISO 8601 time (UTC if no zone)."""
    raw = text.strip()
    later = duration(raw)
    if later is not None:
        return now + later
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--expires: {text!r} is neither a duration (30s, 15m, 1h, 2d) nor an ISO time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def submit_terms(args: argparse.Namespace, now: datetime | None = None) -> dict[str, Any]:
    """The client's submit arguments for the order type and its expiry."""
    from orderengine.v1 import order_pb2

    terms: dict[str, Any] = {}
    if getattr(args, "limit_out", None):
        terms["order_type"] = order_pb2.LimitOrder(min_amount_out=args.limit_out)
    elif getattr(args, "stop", None):
        terms["order_type"] = order_pb2.StopOrder(trigger_price=args.stop)
    elif getattr(args, "twap", None):
        terms["order_type"] = twap_terms(args.twap)
    elif getattr(args, "snipe", False):
        terms["order_type"] = order_pb2.SniperOrder(max_price=args.max_price or "")
    if getattr(args, "expires", None):
        terms["expire_time"] = expiry(args.expires, now or datetime.now(UTC))
    return terms


def terms_text(order: order_pb2.Order) -> str:
    """The order type as a listing shows it: "" for a market order."""
    kind = order.WhichOneof("order_type")
    if kind == "limit":
        text = f"limit: at least {order.limit.min_amount_out} {order.output_token}"
    elif kind == "stop":
        text = f"stop at {order.stop.trigger_price} {order.output_token}/{order.input_token}"
    elif kind == "sniper":
        text = f"sniper: buys once {order.output_token} has a pool"
        if order.sniper.max_price:
            text += f", at most {order.sniper.max_price} {order.input_token} each"
    elif kind == "twap":
        every = order.twap.interval.ToTimedelta().total_seconds()
        text = f"twap: {order.twap.slices} slices every {every:g}s"
        if order.amount_out:
            text += f", {order.amount_out} {order.output_token} filled"
    else:
        return ""
    if order.HasField("expire_time"):
        ends = order.expire_time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
        text += f", expires {ends}Z"
    return text
