"""Choosing a route: quote each venue by its best single path, then take
whatever gives the most out of all of them: the best single path (one
pool, or two through an intermediate token, on any venues), or a split of
the input across several paths.

Whatever is chosen is priced in the end by ``apply_route`` on the states
read, the very function the chain lands with: the route's amount_out is
what landing it on those states gives, to the base unit."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from orderengine.amounts import format_amount
from orderengine.market.base import OutOfLiquidityError
from orderengine.market.pools import Pool, PoolState, Venue, all_pools, quote
from orderengine.market.routes import Leg, RouteError, RouteFill, apply_route, route_to_proto
from orderengine.reasons import Reason
from orderengine.swaps import SwapRequest
from orderengine.tokens import token
from orderengine.v1 import market_pb2
from router_service.impact import PriceImpact, Spots
from router_service.legs import legs_for
from router_service.paths import (
    Hop,
    Path,
    PathFill,
    fill_paths,
    find_paths,
    pool_ids_of,
    surely_takes,
)
from router_service.split import DEFAULT_CHUNKS, alone_is_best, greedy_split
from router_service.transaction import (
    ROUTE_UNITS_PER_LEG,
    Transaction,
    shapes,
    transaction_of,
)


class NoRouteError(LookupError):
    """No pool or pair of pools trades the pair in this size."""

    code: ClassVar[Reason] = Reason.NO_ROUTE


def candidate_paths(request: SwapRequest) -> tuple[Path, ...]:
    """Every one- and two-pool path from the input token to the output token."""
    pools = all_pools()
    # The pools never change in a process (all_pools is cached): find the
    # paths of a pair once, not twice a quote.
    key = (id(pools), request.input_token, request.output_token)
    if key not in _PATHS:
        _PATHS[key] = tuple(find_paths(request.input_token, request.output_token, pools.values()))
    return _PATHS[key]


_PATHS: dict[tuple[int, str, str], tuple[Path, ...]] = {}


def candidate_pools(request: SwapRequest) -> list[Pool]:
    """Every pool a route for the request may use: the states to read."""
    pools = all_pools()
    return [pools[pid] for pid in pool_ids_of(candidate_paths(request))]


@dataclass(frozen=True)
class Routed:
    """A request, routed: each venue's quote, and the route with its fill."""

    quotes: list[market_pb2.VenueQuote]
    legs: list[Leg]
    fill: RouteFill
    route: market_pb2.Route
    # Every path's fill for the whole amount, best first (those that can take it).
    singles: list[PathFill]
    # The transaction that carries the route.
    transaction: Transaction
    # The route's price impact (router_service.impact).
    price_impact: PriceImpact


def route_swap(
    request: SwapRequest,
    reserves: Mapping[str, PoolState],
    now: int | None = None,
    chunks: int = DEFAULT_CHUNKS,
    paths: Sequence[Path] | None = None,
) -> Routed:
    """Routes the request on the pools as ``reserves`` holds them, at unix
    time ``now`` (the wall clock when None), over ``paths`` (every one- and
    two-pool path when None). Raises NoRouteError when no path can take the
    amount, or no route one transaction can carry."""
    at = int(time.time()) if now is None else now
    src, dst, amount = request.input_token, request.output_token, request.amount_in
    paths = candidate_paths(request) if paths is None else paths
    singles = _singles(paths, reserves, amount, at)
    if not singles:
        raise NoRouteError(f"no pool or pair of pools trades {src} for {dst} in this size")
    legs, fill = _best(request, paths, singles, reserves, at, chunks)
    transaction = transaction_of(fill, src, dst, _pools_of(paths), reserves)
    if not transaction.fits:
        legs, fill, transaction = _trimmed(request, paths, reserves, at, chunks, fill, transaction)
    route = route_to_proto(fill, src, dst, amount, request.slippage_bps)
    spots = Spots(reserves)
    impact = PriceImpact(amount, fill.amount_out, spots.route(fill, src, dst, _pools_of(paths)))
    route.price_impact_pct = impact.percent()
    return Routed(
        venue_quotes(request, paths, singles, spots),
        legs,
        fill,
        route,
        singles,
        transaction,
        impact,
    )


def _best(
    request: SwapRequest,
    paths: Sequence[Path],
    singles: Sequence[PathFill],
    reserves: Mapping[str, PoolState],
    now: int,
    chunks: int,
) -> tuple[list[Leg], RouteFill]:
    """The route that gives the most over ``paths``: the best single path
    (``singles[0]``) or a split."""
    best = singles[0]
    if len(paths) > 1 and not alone_is_best(best, paths, reserves, now, chunks):
        split = _split(request, paths, reserves, now, chunks, better_than=best.amount_out)
        if split is not None:
            return split
    # The best path's own legs: apply_route swaps them exactly as fill_paths priced them.
    legs = _path_legs(best.path)
    src, dst = request.input_token, request.output_token
    return legs, apply_route(legs, src, dst, request.amount_in, dict(reserves), now)


def _trimmed(
    request: SwapRequest,
    paths: Sequence[Path],
    reserves: Mapping[str, PoolState],
    now: int,
    chunks: int,
    fill: RouteFill,
    transaction: Transaction,
) -> tuple[list[Leg], RouteFill, Transaction]:
    """A route one transaction can carry, from one that no transaction can:
    the pool whose leg gives the least per compute unit is left out and the
    request routed again over the paths that remain, until the route fits.
    NoRouteError when no path remains."""
    src, dst, amount = request.input_token, request.output_token, request.amount_in
    while True:
        dropped = _least_per_unit(fill, src, dst, _pools_of(paths), reserves)
        paths = [p for p in paths if dropped not in p.pool_ids]
        singles = _singles(paths, reserves, amount, now)
        if not singles:
            raise NoRouteError(
                f"no route for {src} to {dst} in this size fits one transaction: "
                f"{transaction.refusal}"
            )
        legs, fill = _best(request, paths, singles, reserves, now, chunks)
        transaction = transaction_of(fill, src, dst, _pools_of(paths), reserves)
        if transaction.fits:
            return legs, fill, transaction


def _least_per_unit(
    fill: RouteFill,
    input_token: str,
    output_token: str,
    pools: Mapping[str, Pool],
    reserves: Mapping[str, PoolState],
) -> str:
    """The pool whose leg adds the least output per compute unit it costs.
    An intermediate token is worth what the legs that spend it get for it
    (they pay out the output token: a path has two pools at most)."""
    worth = {output_token: Fraction(1)}
    for token_ in {f.leg.input_token for f in fill.fills} - {input_token}:
        spending = [f for f in fill.fills if f.leg.input_token == token_]
        worth[token_] = Fraction(
            sum(f.amount_out for f in spending), sum(f.amount_in for f in spending)
        )
    units = {
        shape.pool.id: shape.compute_units + ROUTE_UNITS_PER_LEG
        for shape in shapes(fill, pools, reserves)
    }
    least = min(
        fill.fills,
        key=lambda f: f.amount_out * worth[f.leg.output_token] / units[f.leg.pool_id],
    )
    return least.leg.pool_id


def _split(
    request: SwapRequest,
    paths: Sequence[Path],
    reserves: Mapping[str, PoolState],
    now: int,
    chunks: int,
    better_than: int,
) -> tuple[list[Leg], RouteFill] | None:
    """The split route, priced by apply_route, when it gives more than ``better_than``."""
    split = greedy_split(paths, reserves, request.amount_in, now, chunks)
    if split is None or split.paths_used < 2:
        return None
    src, dst, amount = request.input_token, request.output_token, request.amount_in

    def takes(hop: Hop, amount: int) -> bool:
        # Each pool is on one leg: the route finds it as read.
        state = reserves[hop.pool.id]
        if surely_takes(hop, state, amount):
            return True
        try:
            quote(hop.pool, state, hop.input_token, amount, now)
        except OutOfLiquidityError:
            return False
        return True

    legs = legs_for(paths, split.pool_inputs, src, {src: amount}, takes)
    hops = {h.pool.id: h for p in paths for h in p.hops}
    onward = [leg for leg in legs if leg.input_token != src]
    try:
        firsts = [leg for leg in legs if leg.input_token == src]
        # A pool that sells an intermediate token on and may be near its
        # capacity needs its share of what the route will hold exactly:
        # what the first legs buy, swapped whole (each a basis point off
        # the split at most, and rounding otherwise than its pieces).
        if any(
            not surely_takes(
                hops[leg.pool_id], reserves[leg.pool_id], split.pool_inputs[leg.pool_id] * 2
            )
            for leg in onward
        ):
            held = {src: amount}
            for bought in apply_route(firsts, src, dst, amount, dict(reserves), now).fills:
                token_out = bought.leg.output_token
                held[token_out] = held.get(token_out, 0) + bought.amount_out
            legs = legs_for(paths, split.pool_inputs, src, held, takes)
        fill = apply_route(legs, src, dst, amount, dict(reserves), now)
    except RouteError:
        return None  # a pool cannot take its share whole
    return (legs, fill) if fill.amount_out > better_than else None


def _pools_of(paths: Sequence[Path]) -> dict[str, Pool]:
    return {h.pool.id: h.pool for p in paths for h in p.hops}


def _path_legs(path: Path) -> list[Leg]:
    return [Leg(h.pool.id, h.input_token, h.output_token) for h in path.hops]


def _singles(
    paths: Sequence[Path], reserves: Mapping[str, PoolState], amount: int, now: int
) -> list[PathFill]:
    """Each path's fill for the whole amount, best first; a path that
    cannot take it, or gives nothing, is left out. Ties go to the path
    listed first (direct before two-hop)."""
    fills = [f for f in fill_paths(paths, reserves, amount, now) if f.amount_out > 0]
    return sorted(fills, key=lambda f: f.amount_out, reverse=True)


def venue_quotes(
    request: SwapRequest,
    paths: Sequence[Path],
    singles: Sequence[PathFill],
    spots: Spots,
) -> list[market_pb2.VenueQuote]:
    """One quote per venue, best first: its best direct pool for the whole
    amount or, where the venue has no pool for the pair, its best two-hop
    path with both pools on it."""
    quotes: dict[Venue, PathFill] = {}
    has_direct = {p.venue for p in paths if len(p.hops) == 1}
    for fill in singles:  # best first: the first a venue may take is its best
        venue = fill.path.venue
        if venue is None or venue in quotes:
            continue
        if (len(fill.path.hops) == 1) == (venue in has_direct):
            quotes[venue] = fill
    return [_venue_quote(request, f, spots) for f in quotes.values()]


def _venue_quote(request: SwapRequest, fill: PathFill, spots: Spots) -> market_pb2.VenueQuote:
    src, dst = token(request.input_token), token(request.output_token)
    venue = fill.path.venue
    assert venue is not None
    return market_pb2.VenueQuote(
        venue=venue.proto,
        pool_id=fill.path.name,
        amount_in=format_amount(fill.amount_in, src.decimals),
        amount_out=format_amount(fill.amount_out, dst.decimals),
        fee=format_amount(fee_in_input(fill), src.decimals),
        price_impact_pct=PriceImpact(
            fill.amount_in, fill.amount_out, spots.path(fill.path)
        ).percent(),
    )


def fee_in_input(fill: PathFill) -> int:
    """Every hop's fee, in the input token: a later hop's fee is valued at
    the rate the hops before it gave (rounded down)."""
    total = Fraction(0)
    rate = Fraction(1)  # input units per unit of the token this hop spends
    for swap in fill.swaps:
        total += swap.fee * rate
        if swap.amount_out == 0:
            break
        rate *= Fraction(swap.amount_in, swap.amount_out)
    return int(total)
