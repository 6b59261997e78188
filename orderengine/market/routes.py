"""A route is legs over pools; applying it to the pools' states gives what
each leg swaps and what comes out. The router applies it to quote, the chain
to land: one piece of math for both, so a quote tells the truth."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from orderengine.amounts import MAX_BASE_UNITS, fits, format_amount, parse_amount
from orderengine.market.base import OutOfLiquidityError
from orderengine.market.pools import PoolState, all_pools, quote
from orderengine.market.pools import balances as pool_balances
from orderengine.reasons import Reason
from orderengine.tokens import token
from orderengine.v1 import market_pb2

FULL_SHARE = 10_000


@dataclass(frozen=True)
class Leg:
    pool_id: str
    input_token: str
    output_token: str
    # The share of the input token held at this point that the leg swaps.
    share_bps: int = FULL_SHARE


@dataclass(frozen=True)
class LegFill:
    leg: Leg
    amount_in: int
    amount_out: int
    fee: int


@dataclass(frozen=True)
class RouteFill:
    amount_out: int
    fills: tuple[LegFill, ...]
    # The touched pools' states after the route (reserves for a CPMM pool,
    # bins and volatility for a DLMM pool): what landing writes back.
    reserves: dict[str, PoolState]


class RouteError(ValueError):
    """The route cannot be executed; ``code`` is the chain's error code."""

    code: ClassVar[Reason] = Reason.ROUTE_INVALID


class PoolOutOfLiquidityError(RouteError):
    """A leg is larger than its pool can fill (a DLMM pool ran out of bins)."""

    code = Reason.POOL_OUT_OF_LIQUIDITY


class AmountOverflowError(RouteError):
    """A leg would take an amount or a pool's holding past MAX_BASE_UNITS.
    The programs use checked arithmetic and revert rather than wrap; no new
    quote makes such a swap fit, so it is not retried."""

    code = Reason.AMOUNT_OVERFLOW


class ZeroAmountOutError(RouteError):
    """A leg would pay nothing out: the programs refuse a swap whose output
    rounds down to zero rather than take the input for nothing."""

    code = Reason.ZERO_AMOUNT_OUT


def apply_route(
    legs: list[Leg],
    input_token: str,
    output_token: str,
    amount_in: int,
    reserves: dict[str, PoolState],
    now: int | None = None,
) -> RouteFill:
    """Runs the legs in order against the pools' states in ``reserves`` (not
    changed) at unix time ``now`` (seconds; the wall clock when None)."""
    at = int(time.time()) if now is None else now
    pools = all_pools()
    balances = {input_token: amount_in}
    current = dict(reserves)
    fills: list[LegFill] = []
    for i, leg in enumerate(legs):
        pool = pools.get(leg.pool_id)
        if pool is None or not pool.trades(leg.input_token, leg.output_token):
            raise RouteError(
                f"legs[{i}]: pool {leg.pool_id!r} does not trade "
                f"{leg.input_token}/{leg.output_token}"
            )
        held = balances.get(leg.input_token, 0)
        later = any(other.input_token == leg.input_token for other in legs[i + 1 :])
        spend = held * leg.share_bps // FULL_SHARE if later else held
        if spend <= 0:
            raise RouteError(f"legs[{i}]: nothing of {leg.input_token} left to swap")
        try:
            swap = quote(pool, current[pool.id], leg.input_token, spend, at)
        except OutOfLiquidityError as exc:
            raise PoolOutOfLiquidityError(
                f"legs[{i}]: pool {pool.id} cannot fill {spend} base units of "
                f"{leg.input_token}: {exc}"
            ) from None
        holdings = pool_balances(pool, swap.state)
        if not all(fits(held_now) for held_now in holdings):
            raise AmountOverflowError(
                f"legs[{i}]: pool {pool.id} would hold more than {MAX_BASE_UNITS} base "
                f"units of a token, the most a token account holds"
            )
        if swap.amount_out <= 0:
            raise ZeroAmountOutError(
                f"legs[{i}]: pool {pool.id} pays no {leg.output_token} "
                f"for {spend} base units of {leg.input_token}"
            )
        current[pool.id] = swap.state
        balances[leg.input_token] = held - spend
        balances[leg.output_token] = balances.get(leg.output_token, 0) + swap.amount_out
        if not fits(balances[leg.output_token]):
            raise AmountOverflowError(
                f"legs[{i}]: the route would pay out more than "
                f"{format_amount(MAX_BASE_UNITS, token(leg.output_token).decimals)} "
                f"{leg.output_token}, the largest amount a token account holds"
            )
        fills.append(LegFill(leg, spend, swap.amount_out, swap.fee))
    touched = {f.leg.pool_id: current[f.leg.pool_id] for f in fills}
    return RouteFill(balances.get(output_token, 0), tuple(fills), touched)


def min_amount_out(amount_out: int, slippage_bps: int) -> int:
    return amount_out * (FULL_SHARE - slippage_bps) // FULL_SHARE


def route_to_proto(
    fill: RouteFill,
    input_token: str,
    output_token: str,
    amount_in: int,
    slippage_bps: int,
) -> market_pb2.Route:
    pools = all_pools()
    return market_pb2.Route(
        legs=[
            market_pb2.RouteLeg(
                venue=pools[f.leg.pool_id].venue.proto,
                pool_id=f.leg.pool_id,
                input_token=f.leg.input_token,
                output_token=f.leg.output_token,
                amount_in=format_amount(f.amount_in, token(f.leg.input_token).decimals),
                amount_out=format_amount(f.amount_out, token(f.leg.output_token).decimals),
                fee=format_amount(f.fee, token(f.leg.input_token).decimals),
                share_bps=f.leg.share_bps,
            )
            for f in fill.fills
        ],
        input_token=input_token,
        output_token=output_token,
        amount_in=format_amount(amount_in, token(input_token).decimals),
        amount_out=format_amount(fill.amount_out, token(output_token).decimals),
        min_amount_out=format_amount(
            min_amount_out(fill.amount_out, slippage_bps), token(output_token).decimals
        ),
    )


@dataclass(frozen=True)
class RoutePlan:
    """What the chain needs of a route: the legs, the input and the floor."""

    legs: list[Leg]
    input_token: str
    output_token: str
    amount_in: int
    min_amount_out: int


def plan_from_proto(route: market_pb2.Route) -> RoutePlan:
    """Parses a route off the wire; RouteError names the field that is wrong."""
    try:
        src = token(route.input_token)
    except ValueError as exc:
        raise RouteError(f"route.input_token: {exc}") from None
    try:
        dst = token(route.output_token)
    except ValueError as exc:
        raise RouteError(f"route.output_token: {exc}") from None
    if not route.legs:
        raise RouteError("route.legs: a route needs at least one leg")
    try:
        amount_in = parse_amount(route.amount_in, src.decimals)
    except ValueError as exc:
        raise RouteError(f"route.amount_in {exc}") from None
    try:
        floor = parse_amount(route.min_amount_out, dst.decimals) if route.min_amount_out else 0
    except ValueError as exc:
        raise RouteError(f"route.min_amount_out {exc}") from None
    pools = all_pools()
    legs = []
    for i, leg in enumerate(route.legs):
        pool = pools.get(leg.pool_id)
        if pool is None:
            raise RouteError(f"route.legs[{i}].pool_id: no pool {leg.pool_id[:64]!r}")
        if not pool.trades(leg.input_token, leg.output_token):
            raise RouteError(
                f"route.legs[{i}]: pool {pool.id} does not trade "
                f"{leg.input_token[:16]}/{leg.output_token[:16]}"
            )
        if not 0 < leg.share_bps <= FULL_SHARE:
            raise RouteError(f"route.legs[{i}].share_bps must be 1..10000")
        legs.append(Leg(leg.pool_id, leg.input_token, leg.output_token, leg.share_bps))
    return RoutePlan(legs, src.symbol, dst.symbol, amount_in, floor)
