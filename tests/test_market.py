"""The market model: CPMM math, routes over pools, the router's choice and pool state in Redis."""

from __future__ import annotations

import asyncio
import random
import tomllib
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import WatchError

from orderengine.amounts import format_amount
from orderengine.market import pools as pools_module
from orderengine.market.cpmm import SwapResult, swap_exact_in
from orderengine.market.pools import FEE_DENOMINATOR, Pool, Venue, all_pools, pools_for
from orderengine.market.routes import (
    Leg,
    Reserves,
    RouteError,
    apply_route,
    min_amount_out,
    plan_from_proto,
    route_to_proto,
)
from orderengine.market.state import pool_key, read_reserves, seed, write_reserves
from orderengine.swaps import parse_swap
from orderengine.tokens import TOKENS
from orderengine.v1 import market_pb2
from router_service.routing import NoRouteError, best_route

SOL = 10**9  # base units per whole token
USDC = 10**6
JUP = 10**6


def initial_reserves() -> dict[str, Reserves]:
    return {p.id: Reserves(p.initial_a, p.initial_b) for p in all_pools().values()}


# -- CPMM ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fee_rate", "expected"),
    [
        # reserves 1_000_000 in / 2_000_000 out, k = 2_000_000_000_000, amount_in 10_000:
        # fee = ceil(10_000 * 100 / 1e6) = 1; net = 9_999; 2e12 / 1_009_999 = 1_980_199.98..
        # -> ceil 1_980_200; out = 2_000_000 - 1_980_200 = 19_800
        (100, SwapResult(amount_out=19_800, fee=1)),
        # fee = ceil(10_000 * 2_500 / 1e6) = 25; net = 9_975; 2e12 / 1_009_975 = 1_980_247.03..
        # -> ceil 1_980_248; out = 2_000_000 - 1_980_248 = 19_752
        (2_500, SwapResult(amount_out=19_752, fee=25)),
        # fee = ceil(10_000 * 10_000 / 1e6) = 100; net = 9_900; 2e12 / 1_009_900 = 1_980_394.09..
        # -> ceil 1_980_395; out = 2_000_000 - 1_980_395 = 19_605
        (10_000, SwapResult(amount_out=19_605, fee=100)),
    ],
)
def test_swap_exact_in_matches_hand_computed_numbers(fee_rate: int, expected: SwapResult) -> None:
    assert swap_exact_in(1_000_000, 2_000_000, 10_000, fee_rate) == expected


def test_swap_in_the_other_direction() -> None:
    # reserves 2_000_000 in / 1_000_000 out, amount 10_000, fee 2_500: fee 25, net 9_975;
    # 2e12 / 2_009_975 = 995_037.25.. -> ceil 995_038; out = 1_000_000 - 995_038 = 4_962
    assert swap_exact_in(2_000_000, 1_000_000, 10_000, 2_500) == SwapResult(4_962, 25)


def test_the_fee_rounds_up() -> None:
    # 10_001 * 2_500 / 1e6 = 25.0025 -> fee 26; net is 9_975 as for 10_000, so the same output
    assert swap_exact_in(1_000_000, 2_000_000, 10_001, 2_500) == SwapResult(19_752, 26)


def test_a_dust_swap_pays_the_fee_and_gets_nothing() -> None:
    # fee = ceil(1 * 2_500 / 1e6) = 1, net 0 -> out 0
    assert swap_exact_in(1_000_000, 2_000_000, 1, 2_500) == SwapResult(0, 1)


@pytest.mark.parametrize(("reserve_in", "reserve_out", "amount_in"),
                         [(1_000, 1_000, 0), (1_000, 1_000, -5), (0, 1_000, 10), (1_000, 0, 10)])
def test_nothing_to_swap_gives_nothing(reserve_in: int, reserve_out: int, amount_in: int) -> None:
    assert swap_exact_in(reserve_in, reserve_out, amount_in, 2_500) == SwapResult(0, 0)


def test_k_never_falls_and_output_never_drains_the_pool() -> None:
    rng = random.Random(42)
    for _ in range(3_000):
        reserve_in = rng.randint(1, 10 ** rng.randint(1, 18))
        reserve_out = rng.randint(1, 10 ** rng.randint(1, 18))
        amount_in = rng.randint(1, 10 ** rng.randint(1, 18))
        fee_rate = rng.choice([0, 50, 100, 2_000, 2_500, 10_000])
        result = swap_exact_in(reserve_in, reserve_out, amount_in, fee_rate)
        case = (reserve_in, reserve_out, amount_in, fee_rate, result)
        assert 0 <= result.amount_out < reserve_out, case
        assert result.fee * FEE_DENOMINATOR >= amount_in * fee_rate, case  # fee rounds up
        assert (reserve_in + amount_in) * (reserve_out - result.amount_out) >= (
            reserve_in * reserve_out), case


# -- routes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool_id", "input_token", "output_token", "amount_in"),
    [
        ("raydium-sol-usdc", "SOL", "USDC", 10 * SOL),  # token_a in
        ("raydium-sol-usdc", "USDC", "SOL", 1_400 * USDC),  # token_b in
        ("meteora-bonk-sol", "SOL", "BONK", 3 * SOL),
    ],
)
def test_a_leg_conserves_tokens_in_its_pool(pool_id: str, input_token: str, output_token: str,
                                            amount_in: int) -> None:
    before = initial_reserves()
    snapshot = dict(before)
    fill = apply_route([Leg(pool_id, input_token, output_token)], input_token, output_token,
                       amount_in, before)

    pool = all_pools()[pool_id]
    after = fill.reserves[pool_id]
    (leg,) = fill.fills
    assert leg.amount_in == amount_in and fill.amount_out == leg.amount_out > 0
    delta_a, delta_b = after.a - before[pool_id].a, after.b - before[pool_id].b
    if input_token == pool.token_a:
        assert (delta_a, delta_b) == (amount_in, -fill.amount_out)
    else:
        assert (delta_a, delta_b) == (-fill.amount_out, amount_in)
    assert before == snapshot  # the reserves passed in are not changed
    assert set(fill.reserves) == {pool_id}  # only touched pools are reported


def test_a_two_leg_route_feeds_the_first_legs_output_into_the_second() -> None:
    reserves = initial_reserves()
    jup_sol, sol_usdc = all_pools()["raydium-jup-sol"], all_pools()["raydium-sol-usdc"]
    amount_in = 1_000 * JUP
    legs = [Leg("raydium-jup-sol", "JUP", "SOL"), Leg("raydium-sol-usdc", "SOL", "USDC")]

    fill = apply_route(legs, "JUP", "USDC", amount_in, reserves)

    sol_out = swap_exact_in(jup_sol.initial_a, jup_sol.initial_b, amount_in,
                            jup_sol.fee_rate).amount_out
    usdc_out = swap_exact_in(sol_usdc.initial_a, sol_usdc.initial_b, sol_out,
                             sol_usdc.fee_rate).amount_out
    first, second = fill.fills
    assert (first.amount_in, first.amount_out) == (amount_in, sol_out)
    assert (second.amount_in, second.amount_out) == (sol_out, usdc_out)
    assert fill.amount_out == usdc_out > 0
    assert fill.reserves == {
        "raydium-jup-sol": Reserves(jup_sol.initial_a + amount_in, jup_sol.initial_b - sol_out),
        "raydium-sol-usdc": Reserves(sol_usdc.initial_a + sol_out,
                                     sol_usdc.initial_b - usdc_out),
    }


def test_split_legs_spend_their_share_and_the_last_takes_the_rest() -> None:
    reserves = initial_reserves()
    amount_in = 10 * SOL + 1  # 60% is 6_000_000_000.6: the odd unit goes to the last leg
    legs = [Leg("raydium-sol-usdc", "SOL", "USDC", share_bps=6_000),
            Leg("meteora-sol-usdc", "SOL", "USDC", share_bps=10_000)]

    fill = apply_route(legs, "SOL", "USDC", amount_in, reserves)

    first, second = fill.fills
    assert first.amount_in == 6 * SOL
    assert second.amount_in == 4 * SOL + 1
    assert fill.amount_out == first.amount_out + second.amount_out
    for leg_fill in fill.fills:
        pool = all_pools()[leg_fill.leg.pool_id]
        assert leg_fill.amount_out == swap_exact_in(
            pool.initial_a, pool.initial_b, leg_fill.amount_in, pool.fee_rate).amount_out


def test_the_last_leg_on_a_token_spends_all_that_is_left_whatever_its_share() -> None:
    legs = [Leg("raydium-sol-usdc", "SOL", "USDC", share_bps=6_000),
            Leg("meteora-sol-usdc", "SOL", "USDC", share_bps=5_000)]

    fill = apply_route(legs, "SOL", "USDC", 10 * SOL, initial_reserves())

    assert [f.amount_in for f in fill.fills] == [6 * SOL, 4 * SOL]  # no SOL left behind


@pytest.mark.parametrize(
    ("leg", "message"),
    [
        (Leg("raydium-sol-usdt", "SOL", "USDC"), "does not trade SOL/USDC"),
        (Leg("no-such-pool", "SOL", "USDC"), "does not trade"),
        (Leg("raydium-usdc-usdt", "USDT", "USDC"), "nothing of USDT left"),
    ],
)
def test_a_leg_the_route_cannot_take_is_a_route_error(leg: Leg, message: str) -> None:
    with pytest.raises(RouteError, match=message):
        apply_route([leg], "SOL", "USDC", SOL, initial_reserves())


@pytest.mark.parametrize(
    ("amount_out", "slippage_bps", "floor"),
    [
        (1_000, 50, 995),
        (999, 50, 994),  # 999 * 9_950 / 10_000 = 994.005 -> rounds down
        (19_999, 1, 19_997),  # 19_997.0001 -> 19_997
        (1, 50, 0),
        (12_345, 0, 12_345),
        (10_000, 5_000, 5_000),
    ],
)
def test_min_amount_out_rounds_the_floor_down(amount_out: int, slippage_bps: int,
                                              floor: int) -> None:
    assert min_amount_out(amount_out, slippage_bps) == floor


def test_a_route_survives_the_wire_as_a_plan() -> None:
    legs = [Leg("raydium-jup-sol", "JUP", "SOL"), Leg("raydium-sol-usdc", "SOL", "USDC")]
    fill = apply_route(legs, "JUP", "USDC", 1_000 * JUP, initial_reserves())
    wire = route_to_proto(fill, "JUP", "USDC", 1_000 * JUP, 100)

    assert wire.amount_in == "1000"
    assert wire.amount_out == format_amount(fill.amount_out, 6)
    assert wire.min_amount_out == format_amount(fill.amount_out * 9_900 // 10_000, 6)
    plan = plan_from_proto(market_pb2.Route.FromString(wire.SerializeToString()))
    assert plan.legs == legs
    assert (plan.input_token, plan.output_token) == ("JUP", "USDC")
    assert plan.amount_in == 1_000 * JUP
    assert plan.min_amount_out == min_amount_out(fill.amount_out, 100)


def wire_route(**overrides: Any) -> market_pb2.Route:
    fields: dict[str, Any] = {
        "input_token": "SOL", "output_token": "USDC", "amount_in": "1", "min_amount_out": "139",
        "legs": [wire_leg()],
    }
    fields.update(overrides)
    return market_pb2.Route(**fields)


def wire_leg(pool_id: str = "raydium-sol-usdc", share_bps: int = 10_000) -> market_pb2.RouteLeg:
    return market_pb2.RouteLeg(pool_id=pool_id, input_token="SOL", output_token="USDC",
                               share_bps=share_bps)


def test_a_route_without_a_floor_has_floor_zero() -> None:
    assert plan_from_proto(wire_route(min_amount_out="")).min_amount_out == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount_in": ""}, "route.amount_in"),
        ({"amount_in": "0"}, "route.amount_in"),
        ({"amount_in": "abc"}, "route.amount_in"),
        ({"amount_in": "1.0000000001"}, "route.amount_in"),  # SOL has 9 decimals
        ({"legs": []}, "route.legs"),
        ({"legs": [wire_leg(share_bps=0)]}, "route.legs[0].share_bps"),
        ({"legs": [wire_leg(), wire_leg(share_bps=10_001)]}, "route.legs[1].share_bps"),
        ({"min_amount_out": "-1"}, "route.min_amount_out"),
        ({"min_amount_out": "1.0000001"}, "route.min_amount_out"),  # USDC has 6 decimals
    ],
)
def test_a_bad_route_off_the_wire_names_its_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(RouteError) as raised:
        plan_from_proto(wire_route(**overrides))
    assert str(raised.value).split()[0].removesuffix(":") == field


@pytest.mark.parametrize("overrides", [{"input_token": "DOGE"}, {"output_token": "DOGE"}])
def test_an_unknown_token_in_a_route_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(RouteError, match="unknown token 'DOGE'"):
        plan_from_proto(wire_route(**overrides))


def test_a_route_over_an_unknown_pool_is_refused() -> None:
    with pytest.raises(RouteError):
        plan_from_proto(wire_route(legs=[wire_leg(pool_id="no-such-pool")]))


# -- the router ---------------------------------------------------------------


def quote_out(pool_id: str, input_token: str, amount_in: int) -> int:
    pool = all_pools()[pool_id]
    a_in = input_token == pool.token_a
    reserve_in, reserve_out = (
        (pool.initial_a, pool.initial_b) if a_in else (pool.initial_b, pool.initial_a))
    return swap_exact_in(reserve_in, reserve_out, amount_in, pool.fee_rate).amount_out


@pytest.mark.parametrize(
    ("amount", "winner", "loser"),
    [
        # Meteora's price is a little better (140.2 vs 140 USDC/SOL, 0.20% vs 0.25% fee) ...
        ("1", "meteora-sol-usdc", "raydium-sol-usdc"),
        # ... but its pool is a sixth as deep, so a large swap does better on Raydium.
        ("5000", "raydium-sol-usdc", "meteora-sol-usdc"),
    ],
)
def test_the_venue_that_gives_more_wins(amount: str, winner: str, loser: str) -> None:
    request = parse_swap("SOL", "USDC", amount, 0)
    assert quote_out(winner, "SOL", request.amount_in) > quote_out(loser, "SOL",
                                                                   request.amount_in)

    quotes, route = best_route(request, initial_reserves())

    assert [leg.pool_id for leg in route.legs] == [winner]
    assert route.amount_out == format_amount(quote_out(winner, "SOL", request.amount_in), 6)
    assert route.amount_out == quotes[0].amount_out
    assert quotes[0].pool_id == winner
    assert route.min_amount_out == format_amount(
        min_amount_out(quote_out(winner, "SOL", request.amount_in), 50), 6)


def test_quotes_are_one_per_venue_best_first() -> None:
    request = parse_swap("USDC", "SOL", "25000", 0)
    quotes, _ = best_route(request, initial_reserves())

    assert sorted(q.venue for q in quotes) == sorted(v.proto for v in Venue)
    outs = [Decimal(q.amount_out) for q in quotes]
    assert outs == sorted(outs, reverse=True)
    for q in quotes:
        assert q.amount_in == "25000"
        assert q.amount_out == format_amount(quote_out(q.pool_id, "USDC", request.amount_in), 9)


def test_each_venue_is_quoted_by_its_best_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    real = all_pools()
    shallow = replace(real["raydium-sol-usdc"], id="raydium-sol-usdc-shallow",
                      initial_a=1_000 * SOL, initial_b=140_000 * USDC)
    more_pools: dict[str, Pool] = {**real, shallow.id: shallow}
    monkeypatch.setattr(pools_module, "all_pools", lambda: more_pools)
    monkeypatch.setattr("orderengine.market.routes.all_pools", lambda: more_pools)
    reserves = {**initial_reserves(), shallow.id: Reserves(shallow.initial_a, shallow.initial_b)}
    assert len(pools_for("SOL", "USDC")) == 3

    quotes, _ = best_route(parse_swap("SOL", "USDC", "100", 0), reserves)

    assert sorted(q.pool_id for q in quotes) == ["meteora-sol-usdc", "raydium-sol-usdc"]


def test_price_impact_grows_with_size() -> None:
    def impact(amount: str) -> Decimal:
        quotes, _ = best_route(parse_swap("SOL", "USDC", amount, 0), initial_reserves())
        by_pool = {q.pool_id: q for q in quotes}
        return Decimal(by_pool["raydium-sol-usdc"].price_impact_pct)

    assert Decimal(0) < impact("1") < impact("100") < impact("10000")


@pytest.mark.parametrize(("input_token", "output_token"), [("JUP", "BONK"), ("RAY", "USDC")])
def test_no_route_when_no_pool_trades_the_pair(input_token: str, output_token: str) -> None:
    assert pools_for(input_token, output_token) == []
    with pytest.raises(NoRouteError):
        best_route(parse_swap(input_token, output_token, "1", 0), initial_reserves())


# -- pools.toml ---------------------------------------------------------------


def raw_pools() -> list[dict[str, Any]]:
    path = Path(pools_module.__file__).with_name("pools.toml")
    entries: list[dict[str, Any]] = tomllib.loads(path.read_text())["pool"]
    return entries


def test_pool_ids_are_unique() -> None:
    ids = [entry["id"] for entry in raw_pools()]
    assert len(ids) == len(set(ids)) == len(all_pools())


def test_every_pool_trades_two_known_distinct_tokens_with_sane_numbers() -> None:
    for pool in all_pools().values():
        assert pool.token_a in TOKENS and pool.token_b in TOKENS, pool.id
        assert pool.token_a != pool.token_b, pool.id
        assert pool.initial_a > 0 and pool.initial_b > 0, pool.id
        assert 0 < pool.fee_rate < FEE_DENOMINATOR, pool.id


def test_every_pair_is_listed_on_both_venues() -> None:
    venues: dict[frozenset[str], set[Venue]] = defaultdict(set)
    for pool in all_pools().values():
        venues[frozenset({pool.token_a, pool.token_b})].add(pool.venue)
    assert venues
    for pair, found in venues.items():
        assert found == set(Venue), sorted(pair)


def test_reserves_are_whole_tokens_in_the_file_and_base_units_in_the_pool() -> None:
    pool = all_pools()["raydium-sol-usdc"]
    assert (pool.initial_a, pool.initial_b) == (250_000 * SOL, 35_000_000 * USDC)


# -- pool state in Redis ------------------------------------------------------


async def _read(redis_url: str, pool_ids: list[str]) -> dict[str, Reserves]:
    client = Redis.from_url(redis_url)
    try:
        return await read_reserves(client, pool_ids)
    finally:
        await client.aclose()


async def _write(redis_url: str, reserves: dict[str, Reserves]) -> None:
    client = Redis.from_url(redis_url)
    try:
        async with client.pipeline(transaction=True) as pipe:
            write_reserves(pipe, reserves)
            await pipe.execute()
    finally:
        await client.aclose()


def test_missing_pools_are_seeded_from_pools_toml(redis: SyncRedis, redis_url: str) -> None:
    assert not redis.exists(pool_key("raydium-sol-usdc"))

    got = asyncio.run(_read(redis_url, ["raydium-sol-usdc", "meteora-bonk-sol",
                                        "raydium-sol-usdc"]))

    assert got == {
        "raydium-sol-usdc": Reserves(250_000 * SOL, 35_000_000 * USDC),
        "meteora-bonk-sol": Reserves(40_000_000_000 * 10**5, 5_640 * SOL),
    }
    assert redis.hgetall(pool_key("raydium-sol-usdc")) == {
        b"a": b"250000000000000", b"b": b"35000000000000"}


def test_reserves_read_back_what_was_written(redis: SyncRedis, redis_url: str) -> None:
    written = {"raydium-sol-usdc": Reserves(250_001 * SOL, 34_999_860 * USDC),
               "raydium-jup-sol": Reserves(1, 2)}
    asyncio.run(_write(redis_url, written))

    got = asyncio.run(_read(redis_url, ["raydium-sol-usdc", "raydium-jup-sol",
                                        "meteora-sol-usdc"]))

    assert got == {**written, "meteora-sol-usdc": Reserves(40_000 * SOL, 5_608_000 * USDC)}


def test_seeding_never_overwrites_reserves_a_swap_wrote(redis: SyncRedis, redis_url: str) -> None:
    # A replica that saw the pool missing seeds it only after a swap landed there.
    async def seed_late() -> None:
        client = Redis.from_url(redis_url)
        try:
            await seed(client, ["raydium-jup-sol"])
        finally:
            await client.aclose()

    asyncio.run(_write(redis_url, {"raydium-jup-sol": Reserves(1, 2)}))
    asyncio.run(seed_late())

    assert asyncio.run(_read(redis_url, ["raydium-jup-sol"])) == {
        "raydium-jup-sol": Reserves(1, 2)}


def test_reserves_read_and_written_inside_a_watched_transaction(redis: SyncRedis,
                                                                redis_url: str) -> None:
    async def swap_one_unit() -> None:
        # As the chain lands a swap: optimistic, retried when a watched key moved
        # (seeding a missing pool moves it, too).
        client = Redis.from_url(redis_url)
        try:
            for _ in range(3):
                try:
                    async with client.pipeline(transaction=True) as pipe:
                        await pipe.watch(pool_key("meteora-sol-usdc"))
                        now = (await read_reserves(pipe, ["meteora-sol-usdc"]))["meteora-sol-usdc"]
                        pipe.multi()
                        write_reserves(pipe, {"meteora-sol-usdc": Reserves(now.a + 1, now.b - 1)})
                        await pipe.execute()
                        return
                except WatchError:
                    continue
            raise AssertionError("the swap never landed")
        finally:
            await client.aclose()

    asyncio.run(swap_one_unit())
    asyncio.run(swap_one_unit())

    assert asyncio.run(_read(redis_url, ["meteora-sol-usdc"])) == {
        "meteora-sol-usdc": Reserves(40_000 * SOL + 2, 5_608_000 * USDC - 2)}
