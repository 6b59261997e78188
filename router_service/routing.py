"""Choosing a route: price the whole input on every pool that trades the
pair, quote each venue by its best pool, and take the best output."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orderengine.amounts import format_amount
from orderengine.market.pools import Pool, PoolState, pools_for, spot_price
from orderengine.market.routes import (
    Leg,
    PoolOutOfLiquidityError,
    RouteFill,
    apply_route,
    route_to_proto,
)
from orderengine.swaps import SwapRequest
from orderengine.tokens import token
from orderengine.v1 import market_pb2


class NoRouteError(LookupError):
    pass


@dataclass(frozen=True)
class Priced:
    pool: Pool
    fill: RouteFill
    reserves: PoolState


def candidate_pools(request: SwapRequest) -> list[Pool]:
    return pools_for(request.input_token, request.output_token)


def price_impact_pct(pool: Pool, reserves: PoolState, input_token: str, fill: RouteFill) -> str:
    """How far the fill's price falls short of the pool's spot price, in %."""
    spot = spot_price(pool, reserves, input_token)  # out per in, exact
    amount_in = fill.fills[0].amount_in
    # executed = out / in
    executed_over_spot = (Decimal(fill.amount_out * spot.denominator)
                          / Decimal(amount_in * spot.numerator))
    impact = (1 - executed_over_spot) * 100
    return f"{impact.quantize(Decimal('0.0001')):f}"


def best_route(
    request: SwapRequest, reserves: dict[str, PoolState]
) -> tuple[list[market_pb2.VenueQuote], market_pb2.Route]:
    """Each venue's quote (best first) and the route to take."""
    priced = []
    for pool in candidate_pools(request):
        leg = Leg(pool.id, request.input_token, request.output_token)
        try:
            fill = apply_route([leg], request.input_token, request.output_token,
                               request.amount_in, reserves)
        except PoolOutOfLiquidityError:
            continue  # more than the pool holds: it has no quote in this size
        if fill.amount_out > 0:
            priced.append(Priced(pool, fill, reserves[pool.id]))
    if not priced:
        raise NoRouteError(
            f"no pool trades {request.input_token} for {request.output_token} in this size"
        )
    priced.sort(key=lambda p: p.fill.amount_out, reverse=True)
    best_per_venue: dict[str, Priced] = {}
    for p in priced:
        best_per_venue.setdefault(p.pool.venue, p)
    src, dst = token(request.input_token), token(request.output_token)
    quotes = [
        market_pb2.VenueQuote(
            venue=p.pool.venue.proto,
            pool_id=p.pool.id,
            amount_in=format_amount(request.amount_in, src.decimals),
            amount_out=format_amount(p.fill.amount_out, dst.decimals),
            fee=format_amount(p.fill.fills[0].fee, src.decimals),
            price_impact_pct=price_impact_pct(p.pool, p.reserves, request.input_token, p.fill),
        )
        for p in best_per_venue.values()
    ]
    best = priced[0]
    route = route_to_proto(best.fill, request.input_token, request.output_token,
                           request.amount_in, request.slippage_bps)
    return quotes, route
