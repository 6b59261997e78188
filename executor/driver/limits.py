"""A limit order's minimum, where the driver meets it: a route that gives
less sends the order back to OPEN before anything is sent; a route that
gives enough is sent with its floor raised to the minimum, so the chain
refuses a landing below it (SLIPPAGE_EXCEEDED, and back to OPEN)."""

from __future__ import annotations

from orderengine.amounts import AmountError, format_amount, parse_amount
from orderengine.store.models import StoredOrder
from orderengine.tokens import token
from orderengine.v1 import market_pb2


def limit_short(row: StoredOrder, route: market_pb2.Route) -> str:
    """Why the route falls short of the order's minimum; empty when it does not."""
    if row.min_amount_out is None:
        return ""
    decimals = token(row.output_token).decimals
    out = _units(route.amount_out, decimals)
    if out >= row.min_amount_out:
        return ""
    return (
        f"the route gives {format_amount(out, decimals)} {row.output_token}, below the "
        f"limit's minimum {format_amount(row.min_amount_out, decimals)}; the order waits again"
    )


def hold_to_limit(row: StoredOrder, route: market_pb2.Route) -> None:
    """Raises the route's floor to the order's minimum, where slippage set it lower."""
    if row.min_amount_out is None:
        return
    decimals = token(row.output_token).decimals
    floor = _units(route.min_amount_out, decimals)
    if floor < row.min_amount_out:
        route.min_amount_out = format_amount(row.min_amount_out, decimals)


def _units(amount: str, decimals: int) -> int:
    """A route's amount in base units; nothing (0, or none) is 0."""
    try:
        return parse_amount(amount, decimals)
    except AmountError:
        return 0
