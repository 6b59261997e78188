"""The market model: routes over pools of both kinds, the router's choice,
pools.toml and pool state in Redis."""

from __future__ import annotations

import asyncio
import tomllib
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import WatchError

from orderengine.amounts import MAX_BASE_UNITS, format_amount, parse_amount
from orderengine.market import pools as pools_module
from orderengine.market.base import OutOfLiquidityError
from orderengine.market.cpmm import FEE_DENOMINATOR, CpmmPool, Reserves
from orderengine.market.dlmm import ONE, DlmmPool, DlmmState, price_from_id
from orderengine.market.pools import (
    DATA_FILE,
    Pool,
    PoolState,
    Venue,
    all_pools,
    balances,
    load_pools,
    pools_for,
    quote,
)
from orderengine.market.routes import (
    AmountOverflowError,
    Leg,
    PoolOutOfLiquidityError,
    RouteError,
    ZeroAmountOutError,
    apply_route,
    min_amount_out,
    plan_from_proto,
    route_to_proto,
)
from orderengine.market.state import (
    decode,
    encode,
    land_route,
    pool_key,
    read_pools,
    read_reserves,
    seed,
    write_reserves,
)
from orderengine.swaps import parse_swap
from orderengine.tokens import TOKENS, token
from orderengine.v1 import market_pb2
from router_service.routing import NoRouteError
from tests.helpers import best_route

SOL = 10**9  # base units per whole token
USDC = 10**6
JUP = 10**6
NOW = 1_000_000


def initial_states() -> dict[str, PoolState]:
    return {p.id: p.initial_state() for p in all_pools().values()}


def quote_out(pool_id: str, input_token: str, amount_in: int) -> int:
    """What the pool gives for the swap as pools.toml starts it (0 if it cannot)."""
    pool = all_pools()[pool_id]
    try:
        return quote(pool, pool.initial_state(), input_token, amount_in, NOW).amount_out
    except OutOfLiquidityError:
        return 0


def cpmm_of(pool_id: str) -> CpmmPool:
    pool = all_pools()[pool_id]
    assert isinstance(pool, CpmmPool)
    return pool


# -- routes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool_id", "input_token", "output_token", "amount_in"),
    [
        ("raydium-sol-usdc", "SOL", "USDC", 10 * SOL),  # token_a in
        ("raydium-sol-usdc", "USDC", "SOL", 1_400 * USDC),  # token_b in
        ("meteora-sol-usdc", "SOL", "USDC", 100 * SOL),  # across bins
        ("meteora-sol-usdc", "USDC", "SOL", 1_400 * USDC),
        ("meteora-bonk-sol", "SOL", "BONK", 3 * SOL),
    ],
)
def test_a_leg_conserves_tokens_in_its_pool(
    pool_id: str, input_token: str, output_token: str, amount_in: int
) -> None:
    before = initial_states()
    snapshot = dict(before)
    fill = apply_route(
        [Leg(pool_id, input_token, output_token)], input_token, output_token, amount_in, before, NOW
    )

    pool = all_pools()[pool_id]
    (leg,) = fill.fills
    assert leg.amount_in == amount_in and fill.amount_out == leg.amount_out > 0
    held_a, held_b = balances(pool, before[pool_id])
    after_a, after_b = balances(pool, fill.reserves[pool_id])
    if input_token == pool.token_a:
        assert (after_a - held_a, after_b - held_b) == (amount_in, -fill.amount_out)
    else:
        assert (after_a - held_a, after_b - held_b) == (-fill.amount_out, amount_in)
    assert before == snapshot  # the states passed in are not changed
    assert set(fill.reserves) == {pool_id}  # only touched pools are reported


def test_a_route_prices_each_leg_through_the_pools_own_math() -> None:
    fill = apply_route(
        [Leg("meteora-sol-usdc", "SOL", "USDC")], "SOL", "USDC", 100 * SOL, initial_states(), NOW
    )
    pool = all_pools()["meteora-sol-usdc"]
    direct = quote(pool, pool.initial_state(), "SOL", 100 * SOL, NOW)
    assert (fill.amount_out, fill.fills[0].fee) == (direct.amount_out, direct.fee)
    assert fill.reserves["meteora-sol-usdc"] == direct.state


def test_a_two_leg_route_feeds_the_first_legs_output_into_the_second() -> None:
    states = initial_states()
    amount_in = 1_000 * JUP
    legs = [Leg("meteora-jup-sol", "JUP", "SOL"), Leg("raydium-sol-usdc", "SOL", "USDC")]

    fill = apply_route(legs, "JUP", "USDC", amount_in, states, NOW)

    jup_sol, sol_usdc = all_pools()["meteora-jup-sol"], all_pools()["raydium-sol-usdc"]
    first_swap = quote(jup_sol, states[jup_sol.id], "JUP", amount_in, NOW)
    second_swap = quote(sol_usdc, states[sol_usdc.id], "SOL", first_swap.amount_out, NOW)
    first, second = fill.fills
    assert (first.amount_in, first.amount_out) == (amount_in, first_swap.amount_out)
    assert (second.amount_in, second.amount_out) == (first_swap.amount_out, second_swap.amount_out)
    assert fill.amount_out == second_swap.amount_out > 0
    assert fill.reserves == {jup_sol.id: first_swap.state, sol_usdc.id: second_swap.state}


def test_split_legs_spend_their_share_and_the_last_takes_the_rest() -> None:
    amount_in = 10 * SOL + 1  # 60% is 6_000_000_000.6: the odd unit goes to the last leg
    legs = [
        Leg("raydium-sol-usdc", "SOL", "USDC", share_bps=6_000),
        Leg("meteora-sol-usdc", "SOL", "USDC", share_bps=10_000),
    ]

    fill = apply_route(legs, "SOL", "USDC", amount_in, initial_states(), NOW)

    first, second = fill.fills
    assert first.amount_in == 6 * SOL
    assert second.amount_in == 4 * SOL + 1
    assert fill.amount_out == first.amount_out + second.amount_out
    for leg_fill in fill.fills:
        assert leg_fill.amount_out == quote_out(leg_fill.leg.pool_id, "SOL", leg_fill.amount_in)


def test_the_last_leg_on_a_token_spends_all_that_is_left_whatever_its_share() -> None:
    legs = [
        Leg("raydium-sol-usdc", "SOL", "USDC", share_bps=6_000),
        Leg("meteora-sol-usdc", "SOL", "USDC", share_bps=5_000),
    ]

    fill = apply_route(legs, "SOL", "USDC", 10 * SOL, initial_states(), NOW)

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
    with pytest.raises(RouteError, match=message) as raised:
        apply_route([leg], "SOL", "USDC", SOL, initial_states(), NOW)
    assert raised.value.code == "ROUTE_INVALID"


def test_a_leg_larger_than_its_dlmm_pool_is_refused_with_its_own_code() -> None:
    with pytest.raises(PoolOutOfLiquidityError, match="meteora-sol-usdc cannot fill") as raised:
        apply_route(
            [Leg("meteora-sol-usdc", "SOL", "USDC")],
            "SOL",
            "USDC",
            100_000 * SOL,
            initial_states(),
            NOW,
        )
    assert raised.value.code == "POOL_OUT_OF_LIQUIDITY"


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
def test_min_amount_out_rounds_the_floor_down(
    amount_out: int, slippage_bps: int, floor: int
) -> None:
    assert min_amount_out(amount_out, slippage_bps) == floor


def test_a_route_survives_the_wire_as_a_plan() -> None:
    legs = [Leg("raydium-jup-sol", "JUP", "SOL"), Leg("meteora-sol-usdc", "SOL", "USDC")]
    fill = apply_route(legs, "JUP", "USDC", 1_000 * JUP, initial_states(), NOW)
    wire = route_to_proto(fill, "JUP", "USDC", 1_000 * JUP, 100)

    assert wire.amount_in == "1000"
    assert wire.amount_out == format_amount(fill.amount_out, 6)
    assert wire.min_amount_out == format_amount(fill.amount_out * 9_900 // 10_000, 6)
    assert [leg.venue for leg in wire.legs] == [Venue.RAYDIUM.proto, Venue.METEORA.proto]
    plan = plan_from_proto(market_pb2.Route.FromString(wire.SerializeToString()))
    assert plan.legs == legs
    assert (plan.input_token, plan.output_token) == ("JUP", "USDC")
    assert plan.amount_in == 1_000 * JUP
    assert plan.min_amount_out == min_amount_out(fill.amount_out, 100)


def wire_route(**overrides: Any) -> market_pb2.Route:
    fields: dict[str, Any] = {
        "input_token": "SOL",
        "output_token": "USDC",
        "amount_in": "1",
        "min_amount_out": "139",
        "legs": [wire_leg()],
    }
    fields.update(overrides)
    return market_pb2.Route(**fields)


def wire_leg(pool_id: str = "raydium-sol-usdc", share_bps: int = 10_000) -> market_pb2.RouteLeg:
    return market_pb2.RouteLeg(
        pool_id=pool_id, input_token="SOL", output_token="USDC", share_bps=share_bps
    )


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


@pytest.mark.parametrize(
    ("input_token", "output_token", "amount", "winner", "loser"),
    [
        # SOL/USDC: Meteora sells SOL cheaper (139.6 vs 140 USDC, 0.1% vs 0.25% fee) ...
        ("USDC", "SOL", "2500", "meteora-sol-usdc", "raydium-sol-usdc"),
        # ... but its bins are thin: a large purchase walks them up and Raydium wins.
        ("USDC", "SOL", "200000", "raydium-sol-usdc", "meteora-sol-usdc"),
        # Selling SOL, Raydium's higher price wins from the first unit.
        ("SOL", "USDC", "10", "raydium-sol-usdc", "meteora-sol-usdc"),
        # SOL/USDT the other way round: Meteora pays more for SOL ...
        ("SOL", "USDT", "10", "meteora-sol-usdt", "raydium-sol-usdt"),
        # ... until a sale runs through its bins.
        ("SOL", "USDT", "5000", "raydium-sol-usdt", "meteora-sol-usdt"),
        ("USDT", "SOL", "1000", "raydium-sol-usdt", "meteora-sol-usdt"),
        # BONK: Meteora's 0.5% beats Raydium's 1% tier for small sales, not for large buys.
        ("BONK", "SOL", "100000000", "meteora-bonk-sol", "raydium-bonk-sol"),
        ("SOL", "BONK", "1000", "raydium-bonk-sol", "meteora-bonk-sol"),
        # JUP: small sales to Meteora, large ones to Raydium.
        ("JUP", "SOL", "1000", "meteora-jup-sol", "raydium-jup-sol"),
        ("JUP", "SOL", "100000", "raydium-jup-sol", "meteora-jup-sol"),
    ],
)
def test_the_venue_that_gives_more_wins(
    input_token: str, output_token: str, amount: str, winner: str, loser: str
) -> None:
    request = parse_swap(input_token, output_token, amount, 0)
    best = quote_out(winner, input_token, request.amount_in)
    assert best > quote_out(loser, input_token, request.amount_in)

    quotes, route = best_route(request, initial_states())

    decimals = token(output_token).decimals
    assert quotes[0].pool_id == winner
    assert quotes[0].amount_out == format_amount(best, decimals)
    # The route may split, or go through another token, but never gives less
    # (tests/test_routing.py); its floor is its own amount less the slippage.
    routed = parse_amount(route.amount_out, decimals)
    assert routed >= best
    assert route.min_amount_out == format_amount(min_amount_out(routed, 50), decimals)


def test_quotes_are_one_per_venue_best_first() -> None:
    request = parse_swap("USDC", "SOL", "25000", 0)
    quotes, _ = best_route(request, initial_states())

    assert sorted(q.venue for q in quotes) == sorted(v.proto for v in Venue)
    outs = [Decimal(q.amount_out) for q in quotes]
    assert outs == sorted(outs, reverse=True)
    for q in quotes:
        assert q.amount_in == "25000"
        assert q.amount_out == format_amount(quote_out(q.pool_id, "USDC", request.amount_in), 9)


def test_a_pool_that_cannot_fill_the_size_is_left_out() -> None:
    request = parse_swap("SOL", "USDC", "20000", 0)
    assert quote_out("meteora-sol-usdc", "SOL", request.amount_in) == 0  # out of bins

    quotes, route = best_route(request, initial_states())

    assert [q.pool_id for q in quotes] == ["raydium-sol-usdc"]
    # A route may still give that pool a part it can fill (tests/test_routing.py).
    assert Decimal(route.amount_out) >= Decimal(quotes[0].amount_out)


def test_each_venue_is_quoted_by_its_best_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    real = all_pools()
    shallow = replace(
        cpmm_of("raydium-sol-usdc"),
        id="raydium-sol-usdc-shallow",
        initial_a=1_000 * SOL,
        initial_b=140_000 * USDC,
    )
    more_pools: dict[str, Pool] = {**real, shallow.id: shallow}
    monkeypatch.setattr(pools_module, "all_pools", lambda: more_pools)
    monkeypatch.setattr("orderengine.market.routes.all_pools", lambda: more_pools)
    states = {**initial_states(), shallow.id: shallow.initial_state()}
    assert len(pools_for("SOL", "USDC")) == 3

    quotes, _ = best_route(parse_swap("SOL", "USDC", "100", 0), states)

    assert sorted(q.pool_id for q in quotes) == ["meteora-sol-usdc", "raydium-sol-usdc"]


@pytest.mark.parametrize("pool_id", ["raydium-sol-usdc", "meteora-sol-usdc"])
def test_price_impact_grows_with_size(pool_id: str) -> None:
    def impact(amount: str) -> Decimal:
        quotes, _ = best_route(parse_swap("USDC", "SOL", amount, 0), initial_states())
        return Decimal({q.pool_id: q for q in quotes}[pool_id].price_impact_pct)

    # Within Meteora's active bin the price is flat: only its 0.1% fee shows.
    assert Decimal(0) < impact("10") <= impact("1000") < impact("100000")
    if pool_id.startswith("meteora"):
        assert impact("10") == impact("1000") == Decimal("0.1000")


@pytest.mark.parametrize(("input_token", "output_token"), [("JUP", "BONK"), ("RAY", "USDC")])
def test_no_route_when_no_path_gives_anything(input_token: str, output_token: str) -> None:
    # No pool trades the pair: routes go through SOL (tests/test_routing.py),
    # and one base unit pays the first pool's fee and passes nothing on.
    assert pools_for(input_token, output_token) == []
    with pytest.raises(NoRouteError):
        best_route(parse_swap(input_token, output_token, "0.000001", 0), initial_states())


# -- pools.toml ---------------------------------------------------------------


def raw_pools() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = tomllib.loads(DATA_FILE.read_text())["pool"]
    return entries


def test_pool_ids_are_unique() -> None:
    ids = [entry["id"] for entry in raw_pools()]
    assert len(ids) == len(set(ids)) == len(all_pools())


def test_every_pool_trades_two_known_distinct_tokens_with_sane_numbers() -> None:
    for pool in all_pools().values():
        assert pool.token_a in TOKENS and pool.token_b in TOKENS, pool.id
        assert pool.token_a != pool.token_b, pool.id
        assert all(held > 0 for held in balances(pool, pool.initial_state())), pool.id
        if isinstance(pool, CpmmPool):
            assert pool.venue is Venue.RAYDIUM
            assert 0 < pool.fee_rate < FEE_DENOMINATOR, pool.id
        else:
            assert pool.venue is Venue.METEORA
            assert 0 < pool.params.base_fee_rate() < pool.params.total_fee_rate(10**6), pool.id
            assert pool.params.filter_period < pool.params.decay_period, pool.id


def test_raydiums_fee_tiers_are_all_used() -> None:
    tiers = {p.fee_rate for p in all_pools().values() if isinstance(p, CpmmPool)}
    assert {100, 2_500, 10_000} <= tiers


def test_every_pair_is_listed_on_both_venues() -> None:
    venues: dict[frozenset[str], set[Venue]] = defaultdict(set)
    for pool in all_pools().values():
        venues[frozenset({pool.token_a, pool.token_b})].add(pool.venue)
    assert len(venues) >= 5
    for pair, found in venues.items():
        assert found == set(Venue), sorted(pair)


def test_reserves_are_whole_tokens_in_the_file_and_base_units_in_the_pool() -> None:
    pool = cpmm_of("raydium-sol-usdc")
    assert (pool.initial_a, pool.initial_b) == (250_000 * SOL, 35_000_000 * USDC)


@pytest.mark.parametrize(
    "entry", [e for e in raw_pools() if e["kind"] == "dlmm"], ids=lambda e: e["id"]
)
def test_a_dlmm_pool_starts_at_the_price_in_the_file(entry: dict[str, Any]) -> None:
    pool = all_pools()[entry["id"]]
    assert isinstance(pool, DlmmPool)
    a, b = token(pool.token_a), token(pool.token_b)
    wanted = Fraction(entry["price"]) * 10**b.decimals / 10**a.decimals
    active = Fraction(price_from_id(pool.initial.active_id, pool.params.bin_step), ONE)
    # The nearest bin: within half a step of the price.
    assert abs(active / wanted - 1) <= Fraction(pool.params.bin_step, 2 * 10_000)
    state = pool.initial
    assert state.max_id - state.min_id == 2 * entry["bins_each_side"]
    assert all(bin_.x == 0 for i, bin_ in state.items() if i < state.active_id)
    assert all(bin_.y == 0 for i, bin_ in state.items() if i > state.active_id)


CPMM_ENTRY = (
    '[[pool]]\nid="x"\nvenue="raydium"\nkind="cpmm"\ntoken_a="SOL"\ntoken_b="USDC"\n'
    'reserve_a="1"\nreserve_b="1"\nfee_rate=2500\nprotocol_fee_rate=120000\nfund_fee_rate=40000\n'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[pool]]\nid="x"\nvenue="raydium"\nkind="clmm"\ntoken_a="SOL"\ntoken_b="USDC"',
            "unknown kind",
        ),
        (
            '[[pool]]\nid="x"\nvenue="meteora"\nkind="dlmm"\ntoken_a="SOL"\ntoken_b="USDC"\n'
            'price="139.6"\nbin_step=10',
            "pool 'x' has no base_factor",
        ),
        (
            "[dlmm_defaults]\nbase_fee_power_factor=0\nfilter_period=30\ndecay_period=600\n"
            'reduction_factor=5000\n[[pool]]\nid="x"\nvenue="meteora"\nkind="dlmm"\n'
            'token_a="SOL"\ntoken_b="USDC"\nprice=139.6\nbin_step=10\nbase_factor=10000\n'
            "variable_fee_control=0\nmax_volatility_accumulator=0\nbins_each_side=1\n"
            'liquidity_per_bin="1"',
            "price must be a string",
        ),
        (CPMM_ENTRY * 2, "appears twice"),
        (
            CPMM_ENTRY.replace("protocol_fee_rate=120000\n", ""),
            "pool 'x' has no protocol_fee_rate",
        ),
        (CPMM_ENTRY + 'creator_fee_on="token_c"', "creator_fee_on must be one of both, token_a"),
        (CPMM_ENTRY + "creator_fee_rate=997500", "fee_rate \\+ creator_fee_rate must be below"),
        (CPMM_ENTRY.replace("=40000", "=880001"), "protocol_fee_rate \\+ fund_fee_rate exceed"),
        (CPMM_ENTRY.replace("=2500", "=-1"), "fee_rate must be 0..1000000, got -1"),
    ],
)
def test_a_bad_pools_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_pools(text)


# -- pool state in Redis ------------------------------------------------------


async def _read(redis_url: str, pool_ids: list[str]) -> dict[str, PoolState]:
    client = Redis.from_url(redis_url)
    try:
        return await read_reserves(client, pool_ids)
    finally:
        await client.aclose()


async def _write(redis_url: str, states: dict[str, PoolState]) -> None:
    client = Redis.from_url(redis_url)
    try:
        async with client.pipeline(transaction=True) as pipe:
            write_reserves(
                pipe,
                states,
                {pool_id: all_pools()[pool_id].initial_state() for pool_id in states},
                {},
            )
            await pipe.execute()
    finally:
        await client.aclose()


def moved_dlmm_state() -> DlmmState:
    pool = all_pools()["meteora-sol-usdc"]
    assert isinstance(pool, DlmmPool)
    swap = quote(pool, pool.initial_state(), "SOL", 300 * SOL, NOW)
    assert isinstance(swap.state, DlmmState) and swap.state.active_id != pool.initial.active_id
    return swap.state


def test_missing_pools_are_seeded_from_pools_toml(redis: SyncRedis, redis_url: str) -> None:
    assert not redis.exists(pool_key("raydium-sol-usdc"))

    got = asyncio.run(
        _read(redis_url, ["raydium-sol-usdc", "meteora-bonk-sol", "raydium-sol-usdc"])
    )

    assert got == {
        "raydium-sol-usdc": Reserves(250_000 * SOL, 35_000_000 * USDC),
        "meteora-bonk-sol": all_pools()["meteora-bonk-sol"].initial_state(),
    }
    # A CPMM pool's hash: its vaults, and the fees in them counted apart (none yet).
    assert redis.hgetall(pool_key("raydium-sol-usdc")) == {
        b"kind": b"cpmm",
        b"a": b"250000000000000",
        b"b": b"35000000000000",
        **{
            f"{share}_fee_{t}".encode(): b"0"
            for share in ("protocol", "fund", "creator")
            for t in "ab"
        },
    }
    # A DLMM pool's hash holds its vault totals beside its bins.
    fields = redis.hgetall(pool_key("meteora-bonk-sol"))
    pool = all_pools()["meteora-bonk-sol"]
    assert (int(fields[b"a"]), int(fields[b"b"])) == balances(pool, pool.initial_state())
    assert fields[b"kind"] == b"dlmm/2"
    assert len(fields[b"bins"].split()) == 1 + 2 * 61  # the lowest bin id, then x y per bin


def test_states_read_back_what_was_written(redis: SyncRedis, redis_url: str) -> None:
    written: dict[str, PoolState] = {
        "raydium-sol-usdc": Reserves(250_001 * SOL, 34_999_860 * USDC),
        "raydium-jup-sol": Reserves(1, 2),
        # Every fee counted apart, each its own number.
        "raydium-bonk-sol": Reserves(100, 200, 1, 2, 3, 4, 5, 6),
        "meteora-sol-usdc": moved_dlmm_state(),
    }
    asyncio.run(_write(redis_url, written))

    got = asyncio.run(
        _read(
            redis_url,
            [*written, "meteora-jup-sol"],
        )
    )

    assert got == {**written, "meteora-jup-sol": all_pools()["meteora-jup-sol"].initial_state()}


def test_a_cpmm_hash_an_older_engine_wrote_counts_no_fees_apart(
    redis: SyncRedis, redis_url: str
) -> None:
    # Before fees were counted apart a CPMM hash held its vaults alone: read as
    # they are, with nothing apart, rather than seeded anew over the market.
    redis.hset(pool_key("raydium-sol-usdc"), mapping={"kind": "cpmm", "a": "7", "b": "9"})
    assert asyncio.run(_read(redis_url, ["raydium-sol-usdc"])) == {
        "raydium-sol-usdc": Reserves(7, 9, 0, 0, 0, 0, 0, 0)
    }


def test_a_dlmm_state_survives_its_hash_fields() -> None:
    pool = all_pools()["meteora-sol-usdc"]
    state = moved_dlmm_state()
    fields = encode(pool, state)
    assert decode(pool, {k.encode(): v.encode() for k, v in fields.items()}) == state
    # A hash of the wrong kind, or missing a field, is no state at all.
    assert decode(pool, {b"a": b"1", b"b": b"2"}) is None
    del fields["active_id"]
    assert decode(pool, dict(fields.items())) is None


def test_seeding_never_overwrites_state_a_swap_wrote(redis: SyncRedis, redis_url: str) -> None:
    # A replica that saw the pools missing seeds them only after swaps landed there.
    async def seed_late() -> None:
        client = Redis.from_url(redis_url)
        try:
            await seed(client, ["raydium-jup-sol", "meteora-sol-usdc"])
        finally:
            await client.aclose()

    written: dict[str, PoolState] = {
        "raydium-jup-sol": Reserves(1, 2),
        "meteora-sol-usdc": moved_dlmm_state(),
    }
    asyncio.run(_write(redis_url, written))
    asyncio.run(seed_late())

    assert asyncio.run(_read(redis_url, list(written))) == written


def test_a_hash_of_another_kind_is_replaced_by_the_pool_from_the_file(
    redis: SyncRedis, redis_url: str
) -> None:
    # What an older engine left for meteora-sol-usdc when it was a constant-product pool.
    redis.hset(pool_key("meteora-sol-usdc"), mapping={"a": "1", "b": "2"})

    got = asyncio.run(_read(redis_url, ["meteora-sol-usdc"]))

    assert got == {"meteora-sol-usdc": all_pools()["meteora-sol-usdc"].initial_state()}
    assert redis.hget(pool_key("meteora-sol-usdc"), "kind") == b"dlmm/2"


def test_a_dlmm_hash_in_an_older_encoding_is_replaced(redis: SyncRedis, redis_url: str) -> None:
    # A bin per field, as the first DLMM pools were kept.
    redis.hset(
        pool_key("meteora-sol-usdc"), mapping={"kind": "dlmm", "a": "1", "b": "2", "bin:0": "1 2"}
    )
    got = asyncio.run(_read(redis_url, ["meteora-sol-usdc"]))
    assert got == {"meteora-sol-usdc": all_pools()["meteora-sol-usdc"].initial_state()}
    assert redis.hget(pool_key("meteora-sol-usdc"), "bin:0") is None


def test_states_read_and_written_inside_a_watched_transaction(
    redis: SyncRedis, redis_url: str
) -> None:
    async def swap_one_unit() -> None:
        # As the chain lands a swap: optimistic, retried when a watched key moved
        # (seeding a missing pool moves it, too).
        client = Redis.from_url(redis_url)
        try:
            for _ in range(3):
                try:
                    async with client.pipeline(transaction=True) as pipe:
                        await pipe.watch(pool_key("raydium-sol-usdc"))
                        states, flows = await read_pools(pipe, ["raydium-sol-usdc"])
                        now = states["raydium-sol-usdc"]
                        assert isinstance(now, Reserves)
                        pipe.multi()
                        write_reserves(
                            pipe,
                            {"raydium-sol-usdc": Reserves(now.a + 1, now.b - 1)},
                            {"raydium-sol-usdc": now},
                            flows,
                        )
                        await pipe.execute()
                        return
                except WatchError:
                    continue
            raise AssertionError("the swap never landed")
        finally:
            await client.aclose()

    asyncio.run(swap_one_unit())
    asyncio.run(swap_one_unit())

    assert asyncio.run(_read(redis_url, ["raydium-sol-usdc"])) == {
        "raydium-sol-usdc": Reserves(250_000 * SOL + 2, 35_000_000 * USDC - 2)
    }


def test_concurrent_landings_each_see_the_last_and_conserve_tokens(
    redis: SyncRedis, redis_url: str
) -> None:
    """Forty swaps from eight clients at once on one DLMM pool: each lands on
    the state the one before it left, so the pool moves by exactly their sum."""
    pool = all_pools()["meteora-sol-usdc"]
    sizes = [(i % 7 + 1) * SOL if i % 2 else (i % 5 + 1) * 150 * USDC for i in range(40)]

    async def trade(client: Redis, i: int) -> tuple[str, int, int]:
        src, dst = ("SOL", "USDC") if i % 2 else ("USDC", "SOL")
        landed = await land_route(client, [Leg(pool.id, src, dst)], src, dst, sizes[i], NOW + i)
        assert landed is not None
        return src, sizes[i], landed.fill.amount_out

    async def run() -> list[tuple[str, int, int]]:
        clients = [Redis.from_url(redis_url) for _ in range(8)]
        try:
            return await asyncio.gather(*(trade(clients[i % 8], i) for i in range(40)))
        finally:
            for client in clients:
                await client.aclose()

    trades = asyncio.run(run())

    after = asyncio.run(_read(redis_url, [pool.id]))[pool.id]
    held_a, held_b = balances(pool, pool.initial_state())
    sol_in = sum(amount for src, amount, _ in trades if src == "SOL")
    sol_out = sum(out for src, _, out in trades if src == "USDC")
    usdc_in = sum(amount for src, amount, _ in trades if src == "USDC")
    usdc_out = sum(out for src, _, out in trades if src == "SOL")
    assert balances(pool, after) == (held_a + sol_in - sol_out, held_b + usdc_in - usdc_out)
    fields = redis.hgetall(pool_key(pool.id))
    assert (int(fields[b"a"]), int(fields[b"b"])) == balances(pool, after)


def test_a_thousand_sol_in_keeps_the_protocol_and_fund_fees_out_of_the_reserve(
    redis: SyncRedis, redis_url: str
) -> None:
    """1,000 SOL sold into raydium-sol-usdc, 100 at a time, landed as the chain
    lands them. Each swap's fee is ceil(100e9 * 2_500 / 1e6) = 0.25 SOL, of
    which floor(12%) = 0.03 SOL is the protocol's and floor(4%) = 0.01 SOL the
    fund's: 0.4 SOL after the ten, growing with volume. They stay in the vault
    but out of the reserve the curve prices on, and the pool's hash keeps them."""
    pool = cpmm_of("raydium-sol-usdc")
    outs: list[int] = []

    async def sell() -> None:
        client = Redis.from_url(redis_url)
        try:
            for i in range(10):
                leg = [Leg(pool.id, "SOL", "USDC")]
                landed = await land_route(client, leg, "SOL", "USDC", 100 * SOL, NOW + i)
                assert landed is not None
                outs.append(landed.fill.amount_out)
        finally:
            await client.aclose()

    asyncio.run(sell())

    fields = redis.hgetall(pool_key(pool.id))
    assert int(fields[b"a"]) == 251_000 * SOL  # the vault took every unit in
    assert int(fields[b"protocol_fee_a"]) == 10 * 30_000_000  # 0.3 SOL
    assert int(fields[b"fund_fee_a"]) == 10 * 10_000_000  # 0.1 SOL
    assert [fields[f] for f in (b"protocol_fee_b", b"fund_fee_b", b"creator_fee_a")] == [b"0"] * 3
    state = asyncio.run(_read(redis_url, [pool.id]))[pool.id]
    assert isinstance(state, Reserves)
    assert state.reserve_a == 251_000 * SOL - 400_000_000  # the vault less 0.4 SOL
    assert state.reserve_b == state.b == 35_000_000 * USDC - sum(outs)
    # The first swap: net 100e9 - 0.25e9 = 99.75e9, out floor(99.75e9 * 35e12 /
    # (250_000e9 + 99.75e9)) = floor(13_959_430_187.36) = 13_959.430187 USDC.
    assert outs[0] == 13_959_430_187
    # Each one is the program's formula on the reserves then: the reserve of SOL
    # grows by the input less the protocol's and the fund's shares.
    x, y = 250_000 * SOL, 35_000_000 * USDC
    net = 100 * SOL - 250_000_000
    for out in outs:
        assert out == net * y // (x + net)
        x, y = x + 100 * SOL - 40_000_000, y - out
    assert (x, y) == (state.reserve_a, state.reserve_b)
    # The next quote prices on the reserves: more USDC than the vault, 0.4 SOL
    # deeper in SOL, would give.
    net = 1_000 * SOL - 2_500_000_000
    then = quote(pool, state, "SOL", 1_000 * SOL, NOW).amount_out
    assert then == net * y // (x + net) > net * y // (x + 400_000_000 + net)


def test_a_landing_the_caller_refuses_writes_nothing(redis: SyncRedis, redis_url: str) -> None:
    async def land() -> object:
        client = Redis.from_url(redis_url)
        try:
            return await land_route(
                client,
                [Leg("meteora-sol-usdc", "SOL", "USDC")],
                "SOL",
                "USDC",
                10 * SOL,
                NOW,
                accept=lambda fill: False,
            )
        finally:
            await client.aclose()

    asyncio.run(_read(redis_url, ["meteora-sol-usdc"]))
    before = redis.hgetall(pool_key("meteora-sol-usdc"))
    assert asyncio.run(land()) is None
    assert redis.hgetall(pool_key("meteora-sol-usdc")) == before


def test_a_leg_that_would_overflow_a_pool_or_pay_nothing_reverts_with_its_code() -> None:
    """The programs' checked arithmetic: a holding past MAX_BASE_UNITS, or a
    swap that pays out nothing, reverts rather than wraps or takes the input."""
    pools = {p.id: p.initial_state() for p in all_pools().values()}
    leg = [Leg("raydium-sol-usdc", "SOL", "USDC")]
    room = MAX_BASE_UNITS - all_pools()["raydium-sol-usdc"].initial_state().a  # type: ignore[union-attr]
    assert apply_route(leg, "SOL", "USDC", room, pools).amount_out > 0  # up to the bound: fine
    with pytest.raises(AmountOverflowError, match="would hold more than") as overflow:
        apply_route(leg, "SOL", "USDC", room + 1, pools)
    assert overflow.value.code == "AMOUNT_OVERFLOW"
    with pytest.raises(ZeroAmountOutError, match="pays no USDC") as nothing:
        apply_route(leg, "SOL", "USDC", 1, pools)
    assert nothing.value.code == "ZERO_AMOUNT_OUT"


def test_a_dlmm_leg_that_would_overflow_a_pool_or_pay_nothing_reverts_with_its_code() -> None:
    """The same checks on a Meteora pool. meteora-sol-usdc's fee is 0.1% (1e6 in
    1e9) at rest; its active bin, the nearest to 139.6 USDC a SOL, pays 0.1396
    base units of USDC a lamport, give or take 0.05%."""
    pool = all_pools()["meteora-sol-usdc"]
    assert isinstance(pool, DlmmPool)
    pools = initial_states()
    sell = [Leg(pool.id, "SOL", "USDC")]
    # 1 lamport: fee ceil(1 * 1e6 / 1e9) = 1, nothing left to swap. 7 lamports: fee 1,
    # out floor(6 * 0.1396) = floor(0.84) = 0. 8: floor(7 * 0.1396) = floor(0.98) = 0.
    # 9: floor(8 * 0.1396) = floor(1.12) = 1.
    for lamports in (1, 7, 8):
        with pytest.raises(ZeroAmountOutError, match="pays no USDC") as nothing:
            apply_route(sell, "SOL", "USDC", lamports, pools, NOW)
        assert nothing.value.code == "ZERO_AMOUNT_OUT"
    assert apply_route(sell, "SOL", "USDC", 9, pools, NOW).amount_out == 1
    # 1 base unit of USDC buys nothing either way round: its fee is 1.
    with pytest.raises(ZeroAmountOutError, match="pays no SOL"):
        apply_route([Leg(pool.id, "USDC", "SOL")], "USDC", "SOL", 1, pools, NOW)
    # A SOL vault 1_000 lamports short of a u64 (fees waiting beside the bins): 1_000 more
    # fills it to the bound, 1_001 would pass it.
    vault_x = sum(b.x for b in pool.initial.bins)
    full = {**pools, pool.id: replace(pool.initial, fee_x=MAX_BASE_UNITS - 1_000 - vault_x)}
    assert apply_route(sell, "SOL", "USDC", 1_000, full, NOW).amount_out > 0
    with pytest.raises(AmountOverflowError, match="would hold more than") as overflow:
        apply_route(sell, "SOL", "USDC", 1_001, full, NOW)
    assert overflow.value.code == "AMOUNT_OVERFLOW"
