"""The requests the client sends, built once for its blocking and its
asyncio face. Amounts travel as decimal strings: a float is refused, as it
cannot carry an amount exactly."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TypedDict, Unpack

from orderengine.v1 import order_pb2, order_service_pb2

Amount = str | int | Decimal
# A waiting order's type (docs/api.md, "Order types"); none: a market order.
OrderType = order_pb2.LimitOrder | order_pb2.StopOrder | order_pb2.TwapOrder | order_pb2.SniperOrder
_ORDER_TYPE_FIELDS = {
    order_pb2.LimitOrder: "limit",
    order_pb2.StopOrder: "stop",
    order_pb2.SniperOrder: "sniper",
    order_pb2.TwapOrder: "twap",
}

# What slippage_bps 0 (unset) means: the contract's default, which the
# engine applies and the CLI shows.
DEFAULT_SLIPPAGE_BPS = 50


def amount_text(field: str, amount: Amount) -> str:
    """``amount`` as the decimal string the wire carries; TypeError naming
    ``field`` for anything else (the server checks the string itself)."""
    if isinstance(amount, str):
        return amount
    if isinstance(amount, Decimal):
        return format(amount, "f")
    if isinstance(amount, int) and not isinstance(amount, bool):
        return str(amount)
    if isinstance(amount, float):
        raise TypeError(
            f"{field}: a float cannot carry an amount exactly; pass a decimal string "
            f"or a Decimal, e.g. '{amount!r}'"
        )
    raise TypeError(
        f"{field}: expected a decimal string, an int or a Decimal, got {type(amount).__name__}"
    )


def slippage(slippage_bps: int) -> int:
    """0 is the engine's default (50 bps); the server checks the range it takes."""
    if isinstance(slippage_bps, bool) or not isinstance(slippage_bps, int):
        raise TypeError(f"slippage_bps: expected an int, got {type(slippage_bps).__name__}")
    if not 0 <= slippage_bps < 2**32:
        raise ValueError(f"slippage_bps: must be 0 (the default, 50) or more, got {slippage_bps}")
    return slippage_bps


class SubmitOptions(TypedDict, total=False):
    """What a submit may say besides its swap, each optional.

    slippage_bps: the most the output may fall below the quote (0: 50).
    client_order_id: a resubmission with it returns the first order.
    priority_fee: SOL paid on top of the network fee.
    order_type: a LimitOrder, StopOrder or TwapOrder (none: a market order).
    expire_time: when a waiting order expires (none: good till cancelled)."""

    slippage_bps: int
    client_order_id: str
    priority_fee: Amount
    order_type: OrderType | None
    expire_time: datetime | None


def submit_request(
    input_token: str, output_token: str, amount: Amount, **options: Unpack[SubmitOptions]
) -> order_service_pb2.SubmitOrderRequest:
    request = order_service_pb2.SubmitOrderRequest(
        input_token=input_token,
        output_token=output_token,
        amount=amount_text("amount", amount),
        slippage_bps=slippage(options.get("slippage_bps", 0)),
        client_order_id=options.get("client_order_id", ""),
        priority_fee=amount_text("priority_fee", options.get("priority_fee", "")),
    )
    order_type = options.get("order_type")
    expire_time = options.get("expire_time")
    if order_type is not None:
        field = _ORDER_TYPE_FIELDS.get(type(order_type))
        if field is None:
            raise TypeError(
                "order_type: expected a LimitOrder, StopOrder or TwapOrder, "
                f"got {type(order_type).__name__}"
            )
        getattr(request, field).CopyFrom(order_type)
    if expire_time is not None:
        request.expire_time.FromDatetime(expire_time)
    return request


def quote_request(
    input_token: str, output_token: str, amount: Amount, slippage_bps: int
) -> order_service_pb2.QuoteOrderRequest:
    return order_service_pb2.QuoteOrderRequest(
        input_token=input_token,
        output_token=output_token,
        amount=amount_text("amount", amount),
        slippage_bps=slippage(slippage_bps),
    )


def airdrop_request(
    token: str, amount: Amount, request_id: str
) -> order_service_pb2.RequestAirdropRequest:
    return order_service_pb2.RequestAirdropRequest(
        token=token, amount=amount_text("amount", amount), request_id=request_id
    )
