"""Arbitrageurs: the loop the initial pools hold is worth what the pools'
formulas say, and it is closed within a few slots; pools follow their
reference when it moves. Every figure is computed here from the programs'
formulas (tests/market_by_hand.py), on a market in memory landed with the
chain's math."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from fractions import Fraction
from itertools import product

import pytest

from orderengine.local.arbitrage import Arbitrageur, cpmm_arbitrage_size, find_loops
from orderengine.local.reference import Reference, ReferenceWalk, load_references
from orderengine.local.traders import FlowTrade, MarketFlow, run_flow
from orderengine.market.cpmm import CpmmPool, Reserves
from orderengine.market.dlmm import DlmmPool, DlmmState
from orderengine.market.pools import Pool, all_pools
from orderengine.tokens import token
from tests.market_by_hand import (
    START,
    MemoryMarket,
    best_arbitrage,
    bin_price,
    cpmm_swap,
    dlmm_fee,
    marginal_rate,
    mid,
    swap_by_hand,
    unit_value,
)

SLOT = 0.4
# The pools.toml reference prices, USD a whole token.
USD = {
    "USDC": Fraction(1),
    "USDT": Fraction(1),
    "SOL": Fraction(140),
    "JUP": Fraction("0.81"),
    "BONK": Fraction("0.0000197"),
    "RAY": Fraction("1.99"),
}
# What an arbitrage below MIN_PROFIT_USD may leave: a fraction of a basis point.
LEFT_OVER = Fraction(1, 10_000)


def simulate(
    flow: MarketFlow, market: MemoryMarket, slots: int, first: int = 0
) -> tuple[list[FlowTrade], int]:
    """``slots`` slots of the flow on ``market``, the clock a slot a step;
    the trades and the unix time the next slot would run at."""
    trades: list[FlowTrade] = []
    clock = iter(START + (first + k) * SLOT for k in range(slots))
    asyncio.run(
        run_flow(
            market,
            flow,
            asyncio.Event(),
            slots=slots,
            clock=lambda: next(clock),
            on_trade=trades.append,
            paced=False,
        )
    )
    return trades, int(START + (first + slots) * SLOT)


def still(prices: dict[str, Fraction]) -> dict[str, Reference]:
    """References that do not walk, at these prices."""
    return {symbol: Reference(float(usd), 0.0) for symbol, usd in prices.items()}


# -- the loop -----------------------------------------------------------------------

# USDC -> SOL on Meteora -> USDT on Meteora -> USDC on Raydium.
LOOP = (("meteora-sol-usdc", "USDC"), ("meteora-sol-usdt", "SOL"), ("raydium-usdc-usdt", "USDT"))


def test_the_initial_pools_hold_a_loop_worth_31_6_bps_at_1000_usdc() -> None:
    pools = all_pools()
    sol_usdc, sol_usdt = pools["meteora-sol-usdc"], pools["meteora-sol-usdt"]
    assert isinstance(sol_usdc, DlmmPool) and isinstance(sol_usdt, DlmmPool)
    first, second = sol_usdc.initial_state(), sol_usdt.initial_state()
    usdc_in = 1_000 * 10**6

    # USDC for SOL in Meteora's active bin (price 1.001^id), 0.1% off the input:
    # a new pool has no volatility, so only the base fee.
    fee = dlmm_fee(sol_usdc, first, first.active_id, START)
    assert fee == Fraction(10_000 * 10 * 10, 10**9)
    sol = math.floor((usdc_in - math.ceil(usdc_in * fee)) / bin_price(first.active_id, 10))
    assert sol <= first.bin(first.active_id).x  # the active bin holds it

    # SOL for USDT in the other pool's active bin (1.0005^id), 0.1% again.
    fee = dlmm_fee(sol_usdt, second, second.active_id, START)
    assert fee == Fraction(20_000 * 5 * 10, 10**9)
    usdt = math.floor((sol - math.ceil(sol * fee)) * bin_price(second.active_id, 5))
    assert usdt <= second.bin(second.active_id).y

    # USDT for USDC on Raydium: 20,004,000 USDT against 20,000,000 USDC, 0.01%.
    usdc_out = cpmm_swap(20_004_000 * 10**6, 20_000_000 * 10**6, usdt, 100)

    gain_bps = (Fraction(usdc_out, usdc_in) - 1) * 10_000
    assert round(float(gain_bps), 1) == 31.6


def loops_of_sol_usdc_usdt() -> list[list[tuple[str, str]]]:
    """Every loop over the six pools of SOL, USDC and USDT, as (pool, token
    paid in) per leg, written out: both ways round the triangle with any
    pool of each pair, and in on one pool of a pair, out on the other."""
    sol_usdc = ["raydium-sol-usdc", "meteora-sol-usdc"]
    sol_usdt = ["raydium-sol-usdt", "meteora-sol-usdt"]
    usdc_usdt = ["raydium-usdc-usdt", "meteora-usdc-usdt"]
    loops = []
    for a, b, c in product(sol_usdc, sol_usdt, usdc_usdt):
        loops.append([(a, "USDC"), (b, "SOL"), (c, "USDT")])
        loops.append([(c, "USDC"), (b, "USDT"), (a, "SOL")])
    for (p, q), x, y in (
        (sol_usdc, "SOL", "USDC"),
        (sol_usdt, "SOL", "USDT"),
        (usdc_usdt, "USDC", "USDT"),
    ):
        loops.append([(p, x), (q, y)])
        loops.append([(q, x), (p, y)])
    return loops


def loop_bps(market: MemoryMarket, loop: list[tuple[str, str]], now: int) -> Fraction:
    """What 1,000 of the loop's first token sent round it gain, in basis points."""
    pools = all_pools()
    amount = start = 1_000 * 10 ** token(loop[0][1]).decimals
    for pool_id, paid in loop:
        amount = swap_by_hand(pools[pool_id], market.states[pool_id], paid, amount, now)
    return (Fraction(amount, start) - 1) * 10_000


@pytest.mark.parametrize(
    "arbitrageur",
    [
        pytest.param(Arbitrageur, id="against-the-reference-and-in-loops"),
        pytest.param(
            lambda walk, pools: Arbitrageur(walk, pools, against_reference=False),
            id="in-loops-only",
        ),
    ],
)
def test_arbitrageurs_close_the_loop_within_a_few_slots(
    arbitrageur: Callable[..., Arbitrageur],
) -> None:
    market = MemoryMarket()
    assert round(float(loop_bps(market, list(LOOP), START)), 1) == 31.6
    flow = MarketFlow(1, rate=0.0, slot_seconds=SLOT, arbitrageur=arbitrageur)

    trades, now = simulate(flow, market, 3)

    assert trades
    # Round any loop of the six pools, 1,000 now come back as less.
    for loop in loops_of_sol_usdc_usdt():
        assert loop_bps(market, loop, now) < 0, (loop, float(loop_bps(market, loop, now)))
    # Each loop landed gave back more than it took.
    for trade in trades:
        if trade.input_token == trade.output_token:
            assert trade.amount_out > trade.amount_in


def test_the_loops_are_every_cycle_of_two_or_three_pools() -> None:
    loops = find_loops(all_pools().values())
    # Six pairs of two pools: two loops each; SOL/USDC/USDT: 2·2·2 pool
    # choices, both ways round. No other three tokens all trade pairwise.
    assert len(loops) == 6 * 2 + 8 * 2
    written = {tuple(loop) for loop in loops_of_sol_usdc_usdt()}
    found = {tuple((leg.pool_id, leg.input_token) for leg in loop) for loop in loops}
    rotations = {loop[k:] + loop[:k] for loop in found for k in range(len(loop))}
    assert written <= rotations


# -- sizing ---------------------------------------------------------------------------


def test_the_constant_product_arbitrage_is_the_size_that_pays_most() -> None:
    pool = all_pools()["raydium-sol-usdc"]
    assert isinstance(pool, CpmmPool)
    state = Reserves(250_000 * 10**9, 35_000_000 * 10**6)
    # The world pays 142.8 USDC a SOL, 2% above the pool's 140: buy SOL here.
    world = Fraction(1428, 10) * 10**6 / 10**9  # USDC base units a lamport

    size = cpmm_arbitrage_size(pool, state, "USDC", float(1 / world))

    def profit(usdc_in: int) -> Fraction:
        sol = cpmm_swap(state.b, state.a, usdc_in, 2_500)
        return sol * world - usdc_in

    assert profit(size) > 0
    for other in (size * 99 // 100, size * 101 // 100, size * 999 // 1000, size * 1001 // 1000):
        assert profit(size) >= profit(other)
    # Its last unit, fee taken, pays what the world does: k·x·y / (x + k·d)².
    kept = 1 - Fraction(2_500, 10**6)
    last_unit = kept * state.b * state.a / (state.b + kept * size) ** 2
    assert abs(last_unit * world - 1) < Fraction(1, 10**6)
    # A swap after it starts where the fee it left in the reserves (all but
    # the protocol's 12% and the fund's 4% of it) makes a unit pay a little
    # less: no more than the world, by about fee·d/x.
    fee = -(-size * 2_500 // 10**6)
    after = Reserves(
        state.a - cpmm_swap(state.b, state.a, size, 2_500),
        state.b + size,
        protocol_fee_b=fee * 120_000 // 10**6,
        fund_fee_b=fee * 40_000 // 10**6,
    )
    next_unit = marginal_rate(pool, after, "USDC", START) * world
    assert 1 - Fraction(1, 10**4) < next_unit <= 1


def test_no_arbitrage_is_found_where_no_pool_pays_more_than_the_reference() -> None:
    market = MemoryMarket()
    flow = MarketFlow(2, rate=0.0, slot_seconds=SLOT, references=still(USD))
    simulate(flow, market, 3)
    assert flow.arbitrageur is not None
    assert flow.arbitrageur.find(market.states, START + 60) is None


# -- following the reference -----------------------------------------------------------


def assert_no_arbitrage_left(market: MemoryMarket, usd: dict[str, Fraction], now: int) -> None:
    """No pool offers a trade, either way, that makes a cent at these
    prices (what a transaction costs, MIN_PROFIT_USD): the arbitrageurs
    took every one that did."""
    for pool in all_pools().values():
        for src, dst in ((pool.token_a, pool.token_b), (pool.token_b, pool.token_a)):
            made = best_arbitrage(
                pool,
                market.states[pool.id],
                src,
                unit_value(usd[src], src),
                unit_value(usd[dst], dst),
                now,
            )
            assert made < Fraction(1, 100), (pool.id, src, float(made))


def pools_of(symbol: str) -> list[Pool]:
    return [p for p in all_pools().values() if symbol in (p.token_a, p.token_b)]


def test_pools_follow_a_jump_in_the_reference_within_two_slots() -> None:
    market = MemoryMarket()
    flow = MarketFlow(4, rate=0.0, slot_seconds=SLOT, references=still(USD))
    _, now = simulate(flow, market, 3)
    assert_no_arbitrage_left(market, USD, now)
    before = {p.id: mid(p, market.states[p.id]) for p in pools_of("SOL")}

    flow.walk.prices["SOL"] = 144.2  # the world pays 3% more for SOL
    moved = {**USD, "SOL": Fraction("144.2")}
    _, now = simulate(flow, market, 2, first=3)

    assert_no_arbitrage_left(market, moved, now)
    for pool in pools_of("SOL"):
        state = market.states[pool.id]
        change = mid(pool, state) / before[pool.id]
        # Before and after, the price sat within the pool's fee band of its
        # reference (a DLMM pool's a bin wider): token_b per token_a, up 3%
        # where SOL is token_a, down 3% where it is token_b, give or take it.
        if isinstance(pool, DlmmPool):
            assert isinstance(state, DlmmState)
            band = dlmm_fee(pool, state, state.active_id, now) + Fraction(
                pool.params.bin_step, 10_000
            )
        else:
            assert isinstance(pool, CpmmPool)
            band = Fraction(pool.fee_rate + pool.creator_fee_rate, 10**6)
        least = Fraction(103, 100) * (1 - band) ** 2
        if pool.token_a == "SOL":
            assert change >= least, (pool.id, float(change))
        else:
            assert 1 / change >= least, (pool.id, float(change))


def test_pools_track_the_reference_as_it_walks() -> None:
    # Twelve times the configured volatility, so that two minutes move SOL
    # by a percent or more; stablecoins as they are.
    references = {
        symbol: Reference(r.price, r.volatility * (1 if symbol in ("USDC", "USDT") else 12))
        for symbol, r in load_references().items()
    }
    market = MemoryMarket()
    flow = MarketFlow(6, rate=0.0, slot_seconds=SLOT, references=references)
    sol = []
    for slot in range(300):
        _, now = simulate(flow, market, 1, first=slot)
        if slot < 2:
            continue  # the first slot trades the pools from pools.toml's prices
        usd = {s: Fraction(p) for s, p in flow.walk.prices.items()}
        assert_no_arbitrage_left(market, usd, now)
        sol.append(flow.walk.prices["SOL"])
    assert max(sol) / min(sol) > 1.01  # the reference did move
    # And the deep SOL/USDC pool followed it: within its 0.25% fee band.
    pool = all_pools()["raydium-sol-usdc"]
    reference = Fraction(sol[-1]) * 10**6 / 10**9
    assert (
        abs(mid(pool, market.states[pool.id]) / reference - 1) <= Fraction(25, 10_000) + LEFT_OVER
    )


def test_the_walk_is_the_seeds_whatever_the_traders_do() -> None:
    """The walk steps once a slot whatever the traders do: a flow's
    reference prices are those of its seed alone."""
    market = MemoryMarket()
    flow = MarketFlow(9, rate=5.0, slot_seconds=SLOT)
    simulate(flow, market, 20)
    alone = ReferenceWalk(9, SLOT)
    for _ in range(20):
        alone.step()
    assert alone.prices == flow.walk.prices
