"""Price impact: how far what a swap gives falls short of its spot price.

    impact = 1 - amount_out / (amount_in * spot)

The spot rate is output base units per input base unit for an infinitesimal
swap, before fees, so the fees count as impact as well as the price the
swap moves. For one path it is the product of its pools' spot prices. For
a route it is what an infinitesimal input would get split across the legs
as the route splits it: each leg's pool at its spot price, each leg taking
the share of its token that it takes in the route. A route on one path has
that path's impact."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

from orderengine.market.pools import Pool, PoolState, spot_price
from orderengine.market.routes import RouteFill


def price_impact(amount_in: int, amount_out: int, spot: Fraction) -> Fraction:
    return 1 - Fraction(amount_out) / (amount_in * spot)


def percent(impact: Fraction) -> str:
    """In percent to four places, as the wire carries it: "2.1968"."""
    scaled = impact * 100
    exact = Decimal(scaled.numerator) / Decimal(scaled.denominator)
    return f"{exact.quantize(Decimal('0.0001')):f}"


def route_spot(
    fill: RouteFill,
    input_token: str,
    output_token: str,
    pools: Mapping[str, Pool],
    states: Mapping[str, PoolState],
) -> Fraction:
    """The route's spot rate: its legs at their pools' spot prices (on
    ``states``, the pools as the route found them), no fees, each leg
    swapping the share of its token it swaps in the route. The legs that
    spend a token come after every leg that buys it."""
    spent: dict[str, int] = {}
    for leg_fill in fill.fills:
        token_in = leg_fill.leg.input_token
        spent[token_in] = spent.get(token_in, 0) + leg_fill.amount_in
    held = {input_token: Fraction(1)}
    for leg_fill in fill.fills:
        leg = leg_fill.leg
        share = Fraction(leg_fill.amount_in, spent[leg.input_token])
        rate = spot_price(pools[leg.pool_id], states[leg.pool_id], leg.input_token)
        held[leg.output_token] = held.get(leg.output_token, Fraction(0)) + (
            held[leg.input_token] * share * rate
        )
    return held[output_token]
