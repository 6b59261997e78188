"""Arbitrageurs: they keep the pools in line with each other and with the
reference prices, as searchers do on mainnet within a slot or two.

Two kinds of trade, both a path of pools priced with the pools' own math
(``apply_route``, what the chain lands) and valued at the reference prices:

- **Against the reference** (one pool): where a pool pays more for a token
  than the rest of the world, sell it there (and buy it back elsewhere, off
  this chain), until the pool's price after its fee meets the reference.
- **Loops** (two or three pools, back to the first token): where a round
  trip gives back more than it takes, run it, atomically, with no outside
  inventory at all.

A path is worth trading when its marginal rate, the pools' prices after
their fees, beats the reference. Its size is where that stops being true:
for one constant-product pool in closed form, for one DLMM pool by walking
its bins (every bin whose price after its fee beats the reference is
emptied), for a loop by bisection (the output of a path is concave in its
input). It is traded only when its profit clears ``MIN_PROFIT_USD``, what a
transaction and its priority fee cost. The flow sizes and lands a slot's
trades on one reading of the pools, so each lands on the states it was
sized on."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orderengine.amounts import MAX_BASE_UNITS
from orderengine.local.reference import ReferenceWalk
from orderengine.market.cpmm import FEE_DENOMINATOR, CpmmPool, Reserves
from orderengine.market.dlmm import (
    FEE_PRECISION,
    ONE,
    DlmmPool,
    DlmmState,
    _max_amount_in,
    fee_on_top,
    price_from_id,
    update_references,
    volatility_at,
)
from orderengine.market.pools import Pool, PoolState, all_pools
from orderengine.market.routes import Leg, RouteError, RouteFill, apply_route

# The first size a path is tried at, in USD; the bisection goes from there.
FIRST_TRY_USD = 100.0
# Below this an arbitrage does not pay for its transaction.
MIN_PROFIT_USD = 0.01
# Loops of at most this many pools.
LONGEST_LOOP = 3
# The bisection stops when its bracket is this fraction of the size.
SIZE_PRECISION = 1 / 1024
# Tokens a loop starts (and ends, and profits) in, in this order of preference.
_HOME = ("USDC", "USDT", "SOL")


class AlongLegs:
    """A trade along ``legs``: it pays the first leg's input token and gets
    the last leg's output token."""

    legs: tuple[Leg, ...]

    @property
    def input_token(self) -> str:
        return self.legs[0].input_token

    @property
    def output_token(self) -> str:
        return self.legs[-1].output_token


@dataclass(frozen=True)
class Arbitrage(AlongLegs):
    legs: tuple[Leg, ...]
    amount_in: int
    # What the path pays on the states it was sized on.
    amount_out: int
    # At the reference prices, before the network fee.
    profit_usd: float


def _home_rank(symbol: str) -> tuple[int, str]:
    return (_HOME.index(symbol) if symbol in _HOME else len(_HOME), symbol)


def find_loops(pools: Iterable[Pool], longest: int = LONGEST_LOOP) -> list[tuple[Leg, ...]]:
    """Every loop of 2 to ``longest`` distinct pools through distinct tokens,
    once in each direction, starting at its most "home" token."""
    by_token: dict[str, list[Pool]] = {}
    for pool in sorted(pools, key=lambda p: p.id):
        by_token.setdefault(pool.token_a, []).append(pool)
        by_token.setdefault(pool.token_b, []).append(pool)
    loops: list[tuple[Leg, ...]] = []

    def extend(start: str, tokens: list[str], legs: list[Leg]) -> None:
        here = tokens[-1]
        for pool in by_token[here]:
            if any(leg.pool_id == pool.id for leg in legs):
                continue
            there = pool.token_b if here == pool.token_a else pool.token_a
            leg = Leg(pool.id, here, there)
            if there == start and legs:
                loops.append((*legs, leg))
            elif (
                there not in tokens
                and _home_rank(there) > _home_rank(start)
                and len(legs) + 2 <= longest
            ):
                extend(start, [*tokens, there], [*legs, leg])

    for start in sorted(by_token, key=_home_rank):
        extend(start, [start], [])
    return loops


class Arbitrageur:
    """Finds the most worthwhile arbitrage on the pools as they are; the
    reference prices are ``walk``'s."""

    def __init__(
        self,
        walk: ReferenceWalk,
        pools: Iterable[Pool] | None = None,
        min_profit_usd: float = MIN_PROFIT_USD,
        against_reference: bool = True,
        loops: bool = True,
    ) -> None:
        self.walk = walk
        self.pools = {p.id: p for p in (all_pools().values() if pools is None else pools)}
        self.min_profit_usd = min_profit_usd
        self.paths: list[tuple[Leg, ...]] = []
        if against_reference:
            for pool in sorted(self.pools.values(), key=lambda p: p.id):
                self.paths.append((Leg(pool.id, pool.token_a, pool.token_b),))
                self.paths.append((Leg(pool.id, pool.token_b, pool.token_a),))
        if loops:
            self.paths += find_loops(self.pools.values())

    def find(self, states: Mapping[str, PoolState], now: int) -> Arbitrage | None:
        """The arbitrage whose marginal rate beats the reference most among
        those that clear MIN_PROFIT_USD; None when no path pays."""
        rates = {
            (pool.id, src): marginal_rate(pool, states[pool.id], src, now)
            for pool in self.pools.values()
            for src in (pool.token_a, pool.token_b)
        }
        candidates = []
        for legs in self.paths:
            gain = self.walk.rate(legs[-1].output_token, legs[0].input_token)
            for leg in legs:
                gain *= rates[leg.pool_id, leg.input_token]
            if gain > 1:
                candidates.append((gain, legs))
        candidates.sort(key=lambda c: -c[0])
        for _, legs in candidates:
            found = self.size(legs, states, now)
            if found is not None and found.profit_usd >= self.min_profit_usd:
                return found
        return None

    def size(
        self, legs: tuple[Leg, ...], states: Mapping[str, PoolState], now: int
    ) -> Arbitrage | None:
        """The trade down ``legs`` after which their marginal rate no longer
        beats the reference, priced on ``states``; None when none pays."""
        src, dst = legs[0].input_token, legs[-1].output_token
        value_in, value_out = self.walk.unit_value(src), self.walk.unit_value(dst)
        fair = value_in / value_out  # output base units a unit in is worth
        gain = path_rate(self.pools, legs, states, now) / fair
        if gain <= 1:
            return None
        pools = self.pools
        current = dict(states)

        def fill(amount: int) -> RouteFill | None:
            try:
                return apply_route(list(legs), src, dst, amount, current, now)
            except RouteError:
                return None

        def still_pays(amount: int) -> bool:
            done = fill(amount)
            return done is not None and path_rate(pools, legs, done.reserves, now) > fair

        pool = pools[legs[0].pool_id]
        state = current[pool.id]
        if len(legs) == 1 and isinstance(pool, CpmmPool) and isinstance(state, Reserves):
            amount = cpmm_arbitrage_size(pool, state, src, fair)
        elif len(legs) == 1 and isinstance(pool, DlmmPool) and isinstance(state, DlmmState):
            amount = dlmm_arbitrage_size(pool, state, src, fair, now)
        else:
            lo, hi = 0, max(1, round(FIRST_TRY_USD / value_in))
            while still_pays(hi):
                lo, hi = hi, hi * 4
                if hi >= MAX_BASE_UNITS:
                    hi = MAX_BASE_UNITS
                    break
            # No trade below hi makes more than its size times the path's
            # first edge (its rate only falls): not worth the search.
            if hi * (value_in * gain - value_in) < self.min_profit_usd:
                return None
            while hi - lo > max(1, int(hi * SIZE_PRECISION)):
                mid = (lo + hi) // 2
                if still_pays(mid):
                    lo = mid
                else:
                    hi = mid
            # hi: just past where the path stops paying, so the gap is closed.
            amount = hi if fill(hi) is not None else lo
        if amount <= 0:
            return None
        done = fill(amount)
        if done is None:
            return None
        profit = done.amount_out * value_out - amount * value_in
        return Arbitrage(legs, amount, done.amount_out, profit)


def path_rate(
    pools: Mapping[str, Pool], legs: tuple[Leg, ...], states: Mapping[str, PoolState], now: int
) -> float:
    """The marginal rate down the legs: each pool's, multiplied."""
    rate = 1.0
    for leg in legs:
        rate *= marginal_rate(pools[leg.pool_id], states[leg.pool_id], leg.input_token, now)
    return rate


def marginal_rate(pool: Pool, state: PoolState, input_token: str, now: int) -> float:
    """Output base units per input base unit that the next tiny swap at
    ``now`` gets, its fee taken: a constant-product pool's reserve ratio, or
    the price of the next bin that holds the output, with the fee Meteora
    would charge there."""
    sells_a = pool.sells_a(input_token)
    if isinstance(pool, CpmmPool) and isinstance(state, Reserves):
        held_in, held_out = trading_reserves(state, sells_a)
        if held_in <= 0:
            return 0.0
        kept_in, kept_out = cpmm_kept(pool, sells_a)
        return kept_in * kept_out * held_out / held_in
    if isinstance(pool, DlmmPool) and isinstance(state, DlmmState):
        step = -1 if sells_a else 1
        bin_id = state.active_id
        while state.min_id <= bin_id <= state.max_id:
            held = state.bins[bin_id - state.min_id]
            if held.y if sells_a else held.x:
                break
            bin_id += step
        else:
            return 0.0  # every bin on that side is empty
        params = pool.params
        volatility = volatility_at(params, update_references(params, state, now), bin_id)
        kept = 1 - params.total_fee_rate(volatility) / FEE_PRECISION
        price = price_from_id(bin_id, params.bin_step) / ONE
        return kept * price if sells_a else kept / price
    raise TypeError(f"pool {pool.id}: a {type(state).__name__} is not its state")


def trading_reserves(state: Reserves, sells_a: bool) -> tuple[int, int]:
    """What the curve prices on, in and out: the vaults less the fees they
    hold apart."""
    if sells_a:
        return state.reserve_a, state.reserve_b
    return state.reserve_b, state.reserve_a


def cpmm_kept(pool: CpmmPool, sells_a: bool) -> tuple[float, float]:
    """What a constant-product pool's fees leave of a unit paid in, and of
    a unit its curve pays out: the trade fee comes off the input, the
    creator fee (where the pool sets one) off the input or the output."""
    trade = pool.fee_rate / FEE_DENOMINATOR
    creator = pool.creator_fee_rate / FEE_DENOMINATOR
    if pool.creator_fee_on.on_input(sells_a):
        return 1 - trade - creator, 1.0
    return 1 - trade, 1 - creator


def cpmm_arbitrage_size(pool: CpmmPool, state: Reserves, input_token: str, fair: float) -> int:
    """The input after which the pool's marginal rate, fees taken, is
    ``fair`` output base units per input base unit. With x and y the
    trading reserves in and out, and k and c what the fees leave of a unit
    in and of a unit out, the marginal rate after d in is
    c·k·x·y / (x + k·d)², so d = (sqrt(c·k·x·y / fair) - x) / k.
    0 when the pool already pays no more than ``fair``."""
    sells_a = pool.sells_a(input_token)
    x, y = trading_reserves(state, sells_a)
    kept_in, kept_out = cpmm_kept(pool, sells_a)
    if x <= 0 or y <= 0 or kept_in <= 0:
        return 0
    amount = (math.sqrt(kept_in * kept_out * x * y / fair) - x) / kept_in
    return max(0, min(int(amount), MAX_BASE_UNITS))


def dlmm_arbitrage_size(
    pool: DlmmPool, state: DlmmState, input_token: str, fair: float, now: int
) -> int:
    """The input that empties, from the active bin on, every bin whose price
    after its fee pays more than ``fair`` output base units per input base
    unit: each bin's output for what the program charges to empty it, its
    fee on top. Prices fall and fees rise bin after bin, so the first bin
    that does not pay ends the walk. 0 when the next bin does not pay."""
    swap_for_y = pool.sells_a(input_token)
    params = pool.params
    references = update_references(params, state, now)
    step = -1 if swap_for_y else 1
    amount = 0
    bin_id = state.active_id
    while state.min_id <= bin_id <= state.max_id:
        held = state.bins[bin_id - state.min_id]
        if held.y if swap_for_y else held.x:
            fee = params.total_fee_rate(volatility_at(params, references, bin_id))
            price = price_from_id(bin_id, params.bin_step)
            rate = (price / ONE if swap_for_y else ONE / price) * (1 - fee / FEE_PRECISION)
            if rate <= fair:
                break
            most = _max_amount_in(held, price, swap_for_y)
            amount += most + fee_on_top(most, fee)
        bin_id += step
    return min(amount, MAX_BASE_UNITS)
