"""Other traders on the chain's pools in Redis: the flow is seedable, lands
through the chain's transaction so that no token is created, trades back a
pool that orders pushed away, and runs as a process. Noise traders lean
toward the reference."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import defaultdict
from fractions import Fraction
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from orderengine.local import traders
from orderengine.local.flow_market import REFERENCE_KEY, RedisMarket
from orderengine.local.reference import Reference, load_references
from orderengine.local.traders import FlowTrade, MarketFlow, mid_price, run_flow
from orderengine.market.pools import Pool, PoolState, all_pools, balances, quote
from orderengine.market.routes import Leg
from orderengine.market.state import FLOW_A, encode, pool_key, read_reserves, write_reserves
from tests.conftest import ROOT
from tests.helpers import conservation_errors
from tests.market_by_hand import START, best_arbitrage, unit_value

SLOT = 0.4


def still_references() -> dict[str, Reference]:
    return {s: Reference(r.price, 0.0) for s, r in load_references().items()}


# -- noise traders ---------------------------------------------------------------------


def noise_only(seed: int, pool: Pool) -> MarketFlow:
    """Noise traders on ``pool`` alone, the references still, no arbitrageur."""
    return MarketFlow(
        seed,
        rate=2.5,
        slot_seconds=SLOT,
        pools=[pool],
        references=still_references(),
        arbitrageur=lambda walk, pools: None,
    )


def test_noise_traders_pull_a_price_pushed_away_back_toward_its_reference() -> None:
    pool = all_pools()["raydium-sol-usdc"]
    # Someone sold 5,000 SOL: the price is about 4% below its reference of 140.
    state = quote(pool, pool.initial_state(), "SOL", 5_000 * 10**9, START).state
    reference = 140 * 10**6 / 10**9
    start = mid_price(pool, state) / reference - 1
    assert start < -0.03
    flow = noise_only(3, pool)
    for i in range(400):
        swap = flow.noise.choose_swap(pool, state)
        state = quote(pool, state, swap.input_token, swap.amount_in, START + i).state
    assert abs(mid_price(pool, state) / reference - 1) < abs(start) / 2


def test_noise_traders_lean_toward_a_reference_that_moved() -> None:
    """The reference, not pools.toml's price: SOL's moved 3% up, so the
    noise traders buy more SOL than they sell."""
    pool = all_pools()["raydium-sol-usdc"]
    flow = noise_only(5, pool)
    flow.walk.prices["SOL"] = 144.2
    swaps = [flow.noise.choose_swap(pool, pool.initial_state()) for _ in range(1_000)]
    buys = sum(s.input_token == "USDC" for s in swaps)
    # 3% above: the chance of selling SOL is 50% - 300 bps·20 = 5%, its floor.
    assert 0.93 < buys / len(swaps) < 0.97


def test_the_flow_swaps_rate_a_second_on_average() -> None:
    flow = MarketFlow(0, rate=2.0, slot_seconds=SLOT)
    # 0.8 a slot: 4 every 5 slots, the fractions carried over.
    assert [flow.noise_swaps() for _ in range(10)] == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1]


# -- on the chain's pools in Redis ----------------------------------------------------


async def run_on_redis(
    redis_url: str, seed: int, slots: int, rate: float = 10.0
) -> list[FlowTrade]:
    """The flow as the process runs it, on a clock of a slot a step."""
    client = Redis.from_url(redis_url)
    trades: list[FlowTrade] = []
    clock = iter(START + k * SLOT for k in range(slots))
    try:
        await run_flow(
            RedisMarket(client),
            MarketFlow(seed, rate, SLOT),
            asyncio.Event(),
            slots=slots,
            clock=lambda: next(clock),
            on_trade=trades.append,
            paced=False,
        )
    finally:
        await client.aclose()
    return trades


def market(redis: SyncRedis) -> dict[Any, Any]:
    return {key: redis.hgetall(key) for key in sorted(redis.scan_iter("market:pool:*"))}


def test_a_seeded_flow_makes_the_same_market_again_and_another_seed_another(
    redis: SyncRedis, redis_url: str
) -> None:
    first = asyncio.run(run_on_redis(redis_url, 21, 25))
    after_first = market(redis)
    redis.flushdb()  # a flushed Redis starts the market again from pools.toml
    second = asyncio.run(run_on_redis(redis_url, 21, 25))
    assert first == second and market(redis) == after_first
    assert {t.trader for t in first} == {"noise", "arbitrage"}

    redis.flushdb()
    other = asyncio.run(run_on_redis(redis_url, 22, 25))
    assert other != first and market(redis) != after_first


async def read_all(redis_url: str) -> dict[str, PoolState]:
    client = Redis.from_url(redis_url)
    try:
        return await read_reserves(client, list(all_pools()))
    finally:
        await client.aclose()


async def ledger_errors(redis_url: str) -> list[str]:
    client = Redis.from_url(redis_url)
    try:
        return await conservation_errors(client)
    finally:
        await client.aclose()


def test_no_token_is_created_what_the_pools_gained_the_traders_paid(
    redis: SyncRedis, redis_url: str
) -> None:
    trades = asyncio.run(run_on_redis(redis_url, 8, 60))
    assert sum(t.trader == "arbitrage" for t in trades) > 5
    assert sum(t.trader == "noise" for t in trades) > 100

    # What the traders paid in and took out, by token, from their trades.
    paid: dict[str, int] = defaultdict(int)
    for trade in trades:
        paid[trade.input_token] += trade.amount_in
        paid[trade.output_token] -= trade.amount_out
        if trade.input_token == trade.output_token:  # a loop pays its arbitrageur
            assert trade.amount_out > trade.amount_in
    # What the pools hold now beyond what pools.toml gave them, by token.
    gained: dict[str, int] = defaultdict(int)
    states = asyncio.run(read_all(redis_url))
    for pool in all_pools().values():
        (a0, b0), (a1, b1) = balances(pool, pool.initial_state()), balances(pool, states[pool.id])
        gained[pool.token_a] += a1 - a0
        gained[pool.token_b] += b1 - b0
    assert dict(gained) == dict(paid)

    # The chain's flows ledger agrees, and would see a unit out of nowhere.
    assert asyncio.run(ledger_errors(redis_url)) == []
    redis.hincrby(pool_key("raydium-sol-usdc"), FLOW_A, 1)
    assert len(asyncio.run(ledger_errors(redis_url))) == 1


def test_arbitrageurs_trade_back_a_pool_that_orders_pushed_away(
    redis: SyncRedis, redis_url: str
) -> None:
    pool = all_pools()["raydium-jup-sol"]
    # An order sold 500,000 JUP into the pool: JUP is some 10% cheap there.
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
    usd = {"JUP": Fraction("0.81"), "SOL": Fraction(140)}
    worth = best_arbitrage(
        pool, pushed, "SOL", unit_value(usd["SOL"], "SOL"), unit_value(usd["JUP"], "JUP"), START
    )
    assert worth > 1_000  # dollars on the table

    trades = asyncio.run(run_on_redis(redis_url, 4, 1, rate=0.0))

    assert any(t.legs == (Leg(pool.id, "SOL", "JUP"),) for t in trades)
    state = asyncio.run(read_all(redis_url))[pool.id]
    left = best_arbitrage(
        pool, state, "SOL", unit_value(usd["SOL"], "SOL"), unit_value(usd["JUP"], "JUP"), START
    )
    assert left < Fraction(1, 10)


def test_a_slot_is_decided_again_when_an_order_landed_meanwhile(
    redis: SyncRedis, redis_url: str
) -> None:
    """The slot's trades land on the pools they were decided on, or not at
    all: an order that lands between the read and the write voids the
    write, and the slot is decided again on the pools the order left."""
    pool = all_pools()["raydium-sol-usdc"]
    order = quote(pool, pool.initial_state(), "SOL", 1_000 * 10**9, START)
    ordered = encode(pool, order.state)
    seen: list[PoolState] = []

    def trade(states: dict[str, PoolState]) -> dict[str, PoolState]:
        seen.append(states[pool.id])
        if len(seen) == 1:  # an order lands now, on another connection
            with SyncRedis.from_url(redis_url) as other:
                other.hset(pool_key(pool.id), mapping=ordered)
        noise = quote(pool, states[pool.id], "USDC", 10_000 * 10**6, START)
        return {**states, pool.id: noise.state}

    async def run() -> None:
        client = Redis.from_url(redis_url)
        try:
            await RedisMarket(client).transact([pool.id], trade, {"SOL": 140.0})
        finally:
            await client.aclose()

    asyncio.run(run())

    assert seen == [pool.initial_state(), order.state]
    after = quote(pool, order.state, "USDC", 10_000 * 10**6, START).state
    assert asyncio.run(read_all(redis_url))[pool.id] == after


def test_a_flow_that_starts_again_goes_on_from_the_prices_it_left(
    redis: SyncRedis, redis_url: str
) -> None:
    asyncio.run(run_on_redis(redis_url, 3, 10))
    raw = redis.hgetall(REFERENCE_KEY)
    stored = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
    assert set(stored) == set(load_references()) and stored["SOL"] != 140.0

    async def again() -> dict[str, float]:
        client = Redis.from_url(redis_url)
        # References that stand still: after a slot they are where it began.
        flow = MarketFlow(3, 0.0, SLOT, references=still_references())
        try:
            await run_flow(
                RedisMarket(client),
                flow,
                asyncio.Event(),
                slots=1,
                clock=lambda: START + 60,
                paced=False,
            )
        finally:
            await client.aclose()
        return flow.walk.prices

    assert asyncio.run(again()) == stored


# -- the process ------------------------------------------------------------------------


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
            "50",
            "--slot-seconds",
            "0.05",
            "--slots",
            "20",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    landed = re.search(
        r"flow: (\d+) swaps landed in 20 slots \((\d+) by noise traders, (\d+) by arbitrageurs\)",
        done.stdout,
    )
    assert landed, done.stdout
    total, noise, arbitrage = map(int, landed.groups())
    # 50 a second for 20 slots of 0.05 s: 50 noise swaps, more when a late
    # slot makes up for those it missed, a few fewer if one did not fit its pool.
    assert noise >= 45 and arbitrage > 0 and total == noise + arbitrage
    assert redis.keys("market:pool:*")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--rate", "0"), ("--rate", "-1"), ("--slot-seconds", "0"), ("--slots", "0")],
)
def test_the_flow_refuses_a_bad_setting_naming_it(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        traders.main([flag, value])
    assert exited.value.code == 2 and flag in capsys.readouterr().err
