"""Other traders: the background flow is seedable, moves prices within a band
of their reference, and lands through the same transaction as the chain, so
tokens are conserved."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict
from fractions import Fraction
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from orderengine.local.traders import Flow, FlowTrade, mid_price, run_flow
from orderengine.market.pools import PoolState, all_pools, balances, quote
from orderengine.market.state import FLOW_A, pool_key, read_reserves, write_reserves
from tests.conftest import ROOT
from tests.helpers import conservation_errors

START = 1_700_000_000


def simulate(seed: int, steps: int) -> tuple[list[tuple[str, str, int]], dict[str, PoolState]]:
    """The flow on an in-memory market: its swaps and the states it leaves."""
    flow = Flow(seed)
    states = {p.id: p.initial_state() for p in all_pools().values()}
    swaps = []
    for i in range(steps):
        pool = flow.choose_pool()
        swap = flow.choose_swap(pool, states[pool.id])
        states[pool.id] = quote(
            pool, states[pool.id], swap.input_token, swap.amount_in, START + i
        ).state
        swaps.append((swap.pool_id, swap.input_token, swap.amount_in))
    return swaps, states


def test_the_same_seed_makes_the_same_flow_and_another_seed_another() -> None:
    assert simulate(11, 300) == simulate(11, 300)
    assert simulate(11, 300)[0] != simulate(12, 300)[0]


def test_prices_move_but_stay_within_a_band_of_their_reference() -> None:
    flow = Flow(5)
    states = {p.id: p.initial_state() for p in all_pools().values()}
    moved: set[str] = set()
    for i in range(4_000):
        pool = flow.choose_pool()
        swap = flow.choose_swap(pool, states[pool.id])
        states[pool.id] = quote(
            pool, states[pool.id], swap.input_token, swap.amount_in, START + 3 * i
        ).state
        deviation = mid_price(pool, states[pool.id]) / flow.reference[pool.id] - 1
        assert abs(deviation) < Fraction(5, 100), (pool.id, float(deviation))
        if deviation:
            moved.add(pool.id)
    assert moved == set(all_pools())  # every pool's price moved at some point


def test_a_price_pushed_away_is_pulled_back() -> None:
    pool = all_pools()["raydium-sol-usdc"]
    # Someone sold 5_000 SOL: the price is about 4% below its reference.
    state = quote(pool, pool.initial_state(), "SOL", 5_000 * 10**9, START).state
    flow = Flow(3, pools=[pool])
    start = mid_price(pool, state) / flow.reference[pool.id] - 1
    assert start < Fraction(-3, 100)
    for i in range(400):
        swap = flow.choose_swap(pool, state)
        state = quote(pool, state, swap.input_token, swap.amount_in, START + i).state
    assert abs(mid_price(pool, state) / flow.reference[pool.id] - 1) < abs(start) / 2


# -- on the shared market in Redis ------------------------------------------------


async def run_on_redis(redis_url: str, seed: int, count: int) -> list[FlowTrade]:
    """Runs the flow in Redis as the process would, on a clock of one second a swap."""
    client = Redis.from_url(redis_url)
    trades: list[FlowTrade] = []
    ticks = iter(range(START, START + count))
    try:
        await run_flow(
            client,
            Flow(seed),
            rate=10_000,
            stopping=asyncio.Event(),
            count=count,
            clock=lambda: next(ticks),
            on_trade=trades.append,
        )
    finally:
        await client.aclose()
    return trades


def market(redis: SyncRedis) -> dict[Any, Any]:
    return {key: redis.hgetall(key) for key in sorted(redis.scan_iter("market:pool:*"))}


def test_a_seeded_flow_lands_the_same_swaps_on_a_fresh_market(
    redis: SyncRedis, redis_url: str
) -> None:
    first = asyncio.run(run_on_redis(redis_url, 21, 120))
    after_first = market(redis)
    redis.flushdb()  # a flushed Redis starts the market again from pools.toml
    second = asyncio.run(run_on_redis(redis_url, 21, 120))

    assert first == second and len(first) == 120
    assert market(redis) == after_first


def test_flow_swaps_conserve_tokens_in_every_pool(redis: SyncRedis, redis_url: str) -> None:
    trades = asyncio.run(run_on_redis(redis_url, 8, 300))

    moved: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for trade in trades:
        pool = all_pools()[trade.swap.pool_id]
        sells_a = trade.swap.input_token == pool.token_a
        delta = moved[pool.id]
        delta[0] += trade.swap.amount_in if sells_a else -trade.amount_out
        delta[1] += -trade.amount_out if sells_a else trade.swap.amount_in

    async def read_all() -> dict[str, PoolState]:
        client = Redis.from_url(redis_url)
        try:
            return await read_reserves(client, list(all_pools()))
        finally:
            await client.aclose()

    states = asyncio.run(read_all())
    for pool in all_pools().values():
        start_a, start_b = balances(pool, pool.initial_state())
        delta_a, delta_b = moved[pool.id]
        assert balances(pool, states[pool.id]) == (start_a + delta_a, start_b + delta_b), pool.id
        raw = redis.hgetall(f"market:pool:{pool.id}")
        assert (int(raw[b"a"]), int(raw[b"b"])) == balances(pool, states[pool.id])
    assert len(moved) == len(all_pools())

    async def check() -> list[str]:
        client = Redis.from_url(redis_url)
        try:
            return await conservation_errors(client)
        finally:
            await client.aclose()

    # The ledger the chaos suite checks agrees with the trades.
    assert asyncio.run(check()) == []
    redis.hincrby(pool_key("raydium-sol-usdc"), FLOW_A, 1)  # one SOL unit out of nowhere
    assert asyncio.run(check()) == [
        f"raydium-sol-usdc: holds {balances(all_pools()['raydium-sol-usdc'], states['raydium-sol-usdc'])[0]}"
        f" SOL, expected {balances(all_pools()['raydium-sol-usdc'], all_pools()['raydium-sol-usdc'].initial_state())[0]}"
        f" + {moved['raydium-sol-usdc'][0] + 1}"
    ]


def test_the_flow_trades_on_what_is_in_redis(redis: SyncRedis, redis_url: str) -> None:
    """A pool pushed far from its reference in Redis (by orders, say) is
    traded back toward it."""
    pool = all_pools()["raydium-jup-sol"]
    pushed = quote(pool, pool.initial_state(), "JUP", 500_000 * 10**6, START).state

    async def push() -> None:
        client = Redis.from_url(redis_url)
        try:
            async with client.pipeline(transaction=True) as pipe:
                write_reserves(pipe, {pool.id: pushed}, {pool.id: pool.initial_state()}, {})
                await pipe.execute()
        finally:
            await client.aclose()

    asyncio.run(push())
    trades = asyncio.run(run_on_redis(redis_url, 4, 300))

    on_pool = [t.swap for t in trades if t.swap.pool_id == pool.id]
    bought_back = sum(s.input_token == "SOL" for s in on_pool)
    assert bought_back > len(on_pool) * 0.7  # the price is low: mostly buys of JUP


# -- the process --------------------------------------------------------------------


def test_the_flow_runs_as_a_process(redis: SyncRedis, redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "CHAIN_REDIS_URL": redis_url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orderengine.local.traders",
            "--seed",
            "1",
            "--rate",
            "500",
            "--count",
            "25",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "flow: 25 swaps landed" in done.stdout
    assert redis.keys("market:pool:*")


@pytest.mark.parametrize("rate", ["0", "-1"])
def test_the_flow_needs_a_positive_rate(rate: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orderengine.local.traders", "--rate", rate],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--rate" in done.stderr
