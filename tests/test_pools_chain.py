"""Quotes tell the truth on every pool: a route priced on the market in Redis
lands on the chain for exactly what it was quoted, and moves the pool exactly
as the quote said. A pool that moved, or cannot fill, fails the swap and is
left alone."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from redis import Redis

from orderengine.market.dlmm import DlmmState
from orderengine.market.pools import PoolState, all_pools
from orderengine.market.routes import Leg, RouteFill, apply_route, route_to_proto
from orderengine.market.state import decode, encode, pool_key
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2, market_pb2, quote_service_pb2
from tests.conftest import OWNER, Services
from tests.helpers import eventually, one_pool_route

Commitment = execution_service_pb2.Commitment


def state_in(redis: Redis, pool_id: str) -> PoolState:
    state = decode(all_pools()[pool_id], redis.hgetall(pool_key(pool_id)))
    assert state is not None, f"pool {pool_id} is not in Redis"
    return state


def same_but_the_clock(landed: PoolState, quoted: PoolState) -> bool:
    """The pool as landed is the pool as quoted, but for a DLMM pool's
    last-swap time, which is the landing's (a second may pass)."""
    if isinstance(landed, DlmmState) and isinstance(quoted, DlmmState):
        return landed.last_update >= quoted.last_update and landed == replace(
            quoted, last_update=landed.last_update
        )
    return landed == quoted


def seeded(redis: Redis, pool_id: str) -> PoolState:
    """The pool as Redis holds it, seeding it as a reader would."""
    pool = all_pools()[pool_id]
    if not redis.exists(pool_key(pool_id)):
        redis.hset(pool_key(pool_id), mapping=encode(pool, pool.initial_state()))  # type: ignore[arg-type]
    return state_in(redis, pool_id)


def priced(
    redis: Redis, pool_id: str, input_token: str, amount_in: int, slippage_bps: int = 50
) -> tuple[RouteFill, market_pb2.Route]:
    pool = all_pools()[pool_id]
    output_token = pool.token_b if input_token == pool.token_a else pool.token_a
    fill = apply_route(
        [Leg(pool_id, input_token, output_token)],
        input_token,
        output_token,
        amount_in,
        {pool_id: seeded(redis, pool_id)},
        int(time.time()),
    )
    return fill, route_to_proto(fill, input_token, output_token, amount_in, slippage_bps)


def land(services: Services, route: market_pb2.Route) -> execution_service_pb2.SignatureStatus:
    chain = services.chain()
    reply = chain.SubmitSwap(
        execution_service_pb2.SubmitSwapRequest(
            attempt_key=f"{uuid.uuid4()}:1", route=route, owner=OWNER
        ),
        timeout=10,
    )

    def done() -> execution_service_pb2.SignatureStatus | None:
        (status,) = chain.GetSignatureStatuses(
            execution_service_pb2.GetSignatureStatusesRequest(signatures=[reply.signature]),
            timeout=10,
        ).statuses
        return status if status.commitment != Commitment.COMMITMENT_PENDING else None

    return eventually(done, timeout=10)


def test_every_pool_lands_what_it_quoted_both_ways(services: Services, redis: Redis) -> None:
    for pool in all_pools().values():
        for input_token in (pool.token_a, pool.token_b):
            # About a hundred dollars' worth, so that DLMM swaps stay near the price.
            amount = {"SOL": 1, "USDC": 140, "USDT": 140, "JUP": 170, "BONK": 7_000_000, "RAY": 70}[
                input_token
            ] * 10 ** token(input_token).decimals
            fill, route = priced(redis, pool.id, input_token, amount)

            status = land(services, route)

            assert status.error_code == "", (pool.id, status.error)
            assert status.amount_out == route.amount_out, pool.id
            assert same_but_the_clock(state_in(redis, pool.id), fill.reserves[pool.id]), pool.id


def test_a_dlmm_swap_across_bins_lands_as_quoted(services: Services, redis: Redis) -> None:
    fill, route = priced(redis, "meteora-sol-usdc", "USDC", 100_000 * 10**6)
    before = seeded(redis, "meteora-sol-usdc")
    after = fill.reserves["meteora-sol-usdc"]
    assert isinstance(before, DlmmState) and isinstance(after, DlmmState)
    assert after.active_id - before.active_id > 10  # the purchase walked up the bins

    status = land(services, route)

    assert (status.error_code, status.amount_out) == ("", route.amount_out)
    assert same_but_the_clock(state_in(redis, "meteora-sol-usdc"), after)


def test_quote_service_and_chain_agree_on_a_dlmm_route(services: Services, redis: Redis) -> None:
    reply = services.quotes().GetQuote(
        quote_service_pb2.GetQuoteRequest(
            input_token="USDC", output_token="SOL", amount="2500", slippage_bps=50
        ),
        timeout=10,
    )
    assert [leg.pool_id for leg in reply.route.legs] == ["meteora-sol-usdc"]

    status = land(services, reply.route)

    assert (status.error_code, status.amount_out) == ("", reply.route.amount_out)


def test_a_dlmm_pool_that_moved_fails_the_swap_on_slippage(
    services: Services, redis: Redis
) -> None:
    _, route = priced(redis, "meteora-sol-usdc", "USDC", 2_500 * 10**6)
    # Someone buys 300 SOL first: the bins walk up, SOL costs more.
    _, ahead = priced(redis, "meteora-sol-usdc", "USDC", 42_000 * 10**6, slippage_bps=5_000)
    assert land(services, ahead).error_code == ""
    moved = redis.hgetall(pool_key("meteora-sol-usdc"))

    status = land(services, route)

    assert status.error_code == "SLIPPAGE_EXCEEDED"
    assert route.min_amount_out in status.error
    assert redis.hgetall(pool_key("meteora-sol-usdc")) == moved


def test_a_swap_larger_than_the_bins_fails_and_leaves_the_pool_alone(
    services: Services, redis: Redis
) -> None:
    seeded(redis, "meteora-sol-usdc")
    before = redis.hgetall(pool_key("meteora-sol-usdc"))
    route = one_pool_route("meteora-sol-usdc", "SOL", "USDC", "100000")

    status = land(services, route)

    assert status.error_code == "POOL_OUT_OF_LIQUIDITY"
    assert "meteora-sol-usdc cannot fill" in status.error
    assert redis.hgetall(pool_key("meteora-sol-usdc")) == before
