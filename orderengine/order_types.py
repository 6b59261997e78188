"""Order types: market (swap now) and the waiting ones, limit, stop and twap, as a
SubmitOrder request asks for them (checked field by field) and as an Order
shows them. What each waits for is docs/api.md's "Order types"; the price a
stop is compared to is docs/market.md's "The price of a pair"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.amounts import AmountError, format_amount, parse_amount
from orderengine.errors import FieldError
from orderengine.swaps import SwapRequest
from orderengine.tokens import token
from orderengine.v1 import order_pb2, order_service_pb2

# ASCII digits only, as amounts: a price is a plain positive decimal.
_PRICE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
MAX_PRICE_CHARS = 40
# Prices are exact decimals with at most this many places: a trigger price
# is compared exactly, never as a float.
MAX_PRICE_DECIMALS = 18
# An expire_time further out than this is surely a mistake (a timestamp in
# milliseconds read as seconds).
MAX_EXPIRY = timedelta(days=366)


# TWAP: slices, and the time between two.
MAX_SLICES = 1_000
MIN_INTERVAL = timedelta(milliseconds=100)
MAX_INTERVAL = timedelta(days=1)


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    TWAP = "twap"
    SNIPER = "sniper"

    @property
    def priced(self) -> bool:
        """Whether it waits for a price (and sits in the price index)."""
        return self in (OrderType.LIMIT, OrderType.STOP)


@dataclass(frozen=True)
class OrderTerms:
    """What an order waits for: the columns beside the swap."""

    order_type: OrderType = OrderType.MARKET
    # Limit: base units of the output token it must give at least.
    min_amount_out: int | None = None
    # Stop: output tokens per input token at or below which it fires.
    # Sniper: the most input tokens one output token may cost (None: any).
    trigger_price: str | None = None
    expire_at: datetime | None = None
    twap_slices: int | None = None
    twap_interval_ms: int | None = None


MARKET = OrderTerms()


class OrderRecord(Protocol):
    """What the functions below read of an order: the store's StoredOrder
    has it (this module stands below the store, so it names the fields, not
    the class)."""

    @property
    def order_id(self) -> str: ...
    @property
    def input_token(self) -> str: ...
    @property
    def output_token(self) -> str: ...
    @property
    def amount_in(self) -> int: ...
    @property
    def order_type(self) -> str: ...
    @property
    def min_amount_out(self) -> int | None: ...
    @property
    def trigger_price(self) -> str | None: ...
    @property
    def expire_at(self) -> datetime | None: ...
    @property
    def twap_slices(self) -> int | None: ...
    @property
    def twap_interval_ms(self) -> int | None: ...


def stored_terms(row: OrderRecord) -> OrderTerms:
    """A stored order's terms, in the shape a new order holds them."""
    return OrderTerms(
        OrderType(row.order_type),
        row.min_amount_out,
        row.trigger_price,
        row.expire_at,
        row.twap_slices,
        row.twap_interval_ms,
    )


def parse_price(text: str, field: str) -> str:
    """The price as a normalized decimal string; FieldError naming ``field``."""
    raw = text.strip()
    if not raw:
        raise FieldError(field, 'is required, a decimal string such as "140" or "0.25"')
    if len(raw) > MAX_PRICE_CHARS or not _PRICE.match(raw):
        raise FieldError(field, f"must be a positive decimal number like '140', got {text[:48]!r}")
    whole, _, frac = raw.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > MAX_PRICE_DECIMALS:
        raise FieldError(field, f"has {len(frac)} decimal places; at most {MAX_PRICE_DECIMALS}")
    normalized = (whole.lstrip("0") or "0") + (f".{frac}" if frac else "")
    if Fraction(normalized) <= 0:
        raise FieldError(field, "must be greater than zero")
    return normalized


def terms_of(
    request: order_service_pb2.SubmitOrderRequest, swap: SwapRequest, now: datetime
) -> OrderTerms:
    """The order type a request asks for, checked; FieldError naming the
    first bad field (``limit.min_amount_out``, ``expire_time`` ...)."""
    kind = request.WhichOneof("order_type")
    expire_at: datetime | None = None
    if request.HasField("expire_time"):
        if kind == "twap":
            raise FieldError("expire_time", "a TWAP order ends when its slices are done")
        if kind in (None, "market"):
            raise FieldError("expire_time", "only a waiting order (limit, stop, sniper) expires")
        expire_at = request.expire_time.ToDatetime(tzinfo=UTC)
        if expire_at <= now:
            raise FieldError(
                "expire_time", f"must be in the future, got {expire_at.isoformat()} (it is past)"
            )
        if expire_at > now + MAX_EXPIRY:
            raise FieldError("expire_time", f"must be within {MAX_EXPIRY.days} days")
    if kind in (None, "market"):
        return OrderTerms()
    if kind == "limit":
        try:
            minimum = parse_amount(request.limit.min_amount_out, token(swap.output_token).decimals)
        except AmountError as exc:
            raise FieldError("limit.min_amount_out", str(exc)) from None
        return OrderTerms(OrderType.LIMIT, min_amount_out=minimum, expire_at=expire_at)
    if kind == "stop":
        price = parse_price(request.stop.trigger_price, "stop.trigger_price")
        return OrderTerms(OrderType.STOP, trigger_price=price, expire_at=expire_at)
    if kind == "twap":
        return _twap(request.twap, swap)
    if kind == "sniper":
        bound = (
            parse_price(request.sniper.max_price, "sniper.max_price")
            if request.sniper.max_price.strip()
            else None
        )
        return OrderTerms(OrderType.SNIPER, trigger_price=bound, expire_at=expire_at)
    raise FieldError(kind, f"{kind} orders are not supported by this engine yet")


def _twap(twap: order_pb2.TwapOrder, swap: SwapRequest) -> OrderTerms:
    if not 2 <= twap.slices <= MAX_SLICES:
        raise FieldError("twap.slices", f"must be 2 to {MAX_SLICES}, got {twap.slices}")
    if swap.amount_in < twap.slices:
        raise FieldError("twap.slices", "must be at most the amount in base units")
    interval = twap.interval.ToTimedelta()
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise FieldError(
            "twap.interval",
            f"must be {MIN_INTERVAL.total_seconds():g}s to {MAX_INTERVAL.days} day, "
            f"got {interval.total_seconds():g}s",
        )
    return OrderTerms(
        OrderType.TWAP,
        twap_slices=twap.slices,
        twap_interval_ms=int(interval.total_seconds() * 1000),
    )


def slice_amounts(amount_in: int, slices: int) -> list[int]:
    """Each slice's input: equal parts, the last one taking the remainder."""
    each = amount_in // slices
    return [each] * (slices - 1) + [amount_in - each * (slices - 1)]


def limit_price(row: OrderRecord) -> Fraction:
    """A limit order's price: output tokens per input token it asks at least."""
    if row.min_amount_out is None:
        raise ValueError(f"order {row.order_id} is not a limit order")
    out = Fraction(row.min_amount_out, 10 ** token(row.output_token).decimals)
    return out / Fraction(row.amount_in, 10 ** token(row.input_token).decimals)


def trigger_of(row: OrderRecord) -> Fraction:
    """The price the order's trigger is at: a limit's price, a stop's trigger."""
    if row.order_type == OrderType.LIMIT:
        return limit_price(row)
    if row.order_type == OrderType.STOP and row.trigger_price is not None:
        return Fraction(row.trigger_price)
    raise ValueError(f"order {row.order_id} ({row.order_type}) has no trigger price")


def sniper_affords(row: OrderRecord, amount_out: int) -> bool:
    """Whether a sniper's swap giving ``amount_out`` base units keeps within
    its bound: its amount over what it gets, in whole tokens, is at most
    max_price (input tokens per output token). Nothing out affords nothing."""
    if amount_out <= 0:
        return False
    if row.trigger_price is None:
        return True
    paid = Fraction(row.amount_in, 10 ** token(row.input_token).decimals)
    got = Fraction(amount_out, 10 ** token(row.output_token).decimals)
    return paid / got <= Fraction(row.trigger_price)


def fires_at(row: OrderRecord, price: Fraction) -> bool:
    """Whether the pair at ``price`` meets the order's trigger: a limit at
    its price or better (above), a stop at its trigger or below; a price
    exactly at the trigger fires both."""
    if row.order_type == OrderType.LIMIT:
        return price >= trigger_of(row)
    return price <= trigger_of(row)


def add_terms(row: OrderRecord, order: order_pb2.Order) -> None:
    """Sets the Order's order type and expire_time from the stored row."""
    if row.order_type == OrderType.LIMIT and row.min_amount_out is not None:
        order.limit.min_amount_out = format_amount(
            row.min_amount_out, token(row.output_token).decimals
        )
    elif row.order_type == OrderType.STOP:
        order.stop.trigger_price = row.trigger_price or ""
    elif row.order_type == OrderType.SNIPER:
        order.sniper.SetInParent()  # any price: an empty max_price, still a sniper
        order.sniper.max_price = row.trigger_price or ""
    elif row.order_type == OrderType.TWAP:
        order.twap.slices = row.twap_slices or 0
        order.twap.interval.FromMilliseconds(row.twap_interval_ms or 0)
    # A market order shows no order type, as before there were others.
    if row.expire_at is not None:
        moment = row.expire_at if row.expire_at.tzinfo else row.expire_at.replace(tzinfo=UTC)
        stamp = Timestamp()
        stamp.FromDatetime(moment)
        order.expire_time.CopyFrom(stamp)
