"""The pools' formulas written out by hand, for the market-flow tests to
check the flow against (never the code's own pricing), and a market in
memory for long simulations of the flow."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

from orderengine.local.flow_market import Prices, Trade
from orderengine.market.cpmm import CpmmPool, Reserves
from orderengine.market.dlmm import DlmmPool, DlmmState
from orderengine.market.pools import Pool, PoolState, all_pools
from orderengine.tokens import token

START = 1_700_000_000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@functools.cache
def bin_price(bin_id: int, bin_step: int) -> Fraction:
    """Y base units per X base unit in bin ``bin_id``: (1 + step/10⁴)^id
    (thousands of digits: kept once worked out)."""
    return (1 + Fraction(bin_step, 10_000)) ** bin_id


def dlmm_fee(pool: DlmmPool, state: DlmmState, bin_id: int, now: int) -> Fraction:
    """The fee rate (of 1) a swap at ``now`` pays in ``bin_id``: the base
    fee plus the variable fee on the volatility accumulator, Meteora's way
    (references reset after filter_period, decay to 0 after decay_period)."""
    p = pool.params
    index_reference, volatility_reference = state.index_reference, state.volatility_reference
    elapsed = now - state.last_update
    if elapsed >= p.filter_period:
        index_reference = state.active_id
        volatility_reference = (
            state.volatility_accumulator * p.reduction_factor // 10_000
            if elapsed < p.decay_period
            else 0
        )
    volatility = min(
        volatility_reference + abs(index_reference - bin_id) * 10_000,
        p.max_volatility_accumulator,
    )
    base = p.base_factor * p.bin_step * 10 * 10**p.base_fee_power_factor
    variable = ceil_div(p.variable_fee_control * (volatility * p.bin_step) ** 2, 10**11)
    return Fraction(min(base + variable, 10**8), 10**9)


def next_bin(state: DlmmState, sells_x: bool) -> int | None:
    """The bin the next swap trades in: from the active one, the first that
    holds the token paid out."""
    step = -1 if sells_x else 1
    bin_id = state.active_id
    while state.min_id <= bin_id <= state.max_id:
        held = state.bins[bin_id - state.min_id]
        if (held.y if sells_x else held.x) > 0:
            return bin_id
        bin_id += step
    return None


def marginal_rate(pool: Pool, state: PoolState, input_token: str, now: int) -> Fraction:
    """Output base units per input base unit that the next tiny swap gets,
    its fee taken: (1 - fee)·y/x for a constant-product pool, the next
    bin's price after its fee for a DLMM pool."""
    sells_a = input_token == pool.token_a
    if isinstance(pool, CpmmPool):
        assert isinstance(state, Reserves)
        held_in, held_out = reserves(state, sells_a)
        kept_in, kept_out = cpmm_kept(pool, sells_a)
        return kept_in * kept_out * Fraction(held_out, held_in)
    assert isinstance(pool, DlmmPool) and isinstance(state, DlmmState)
    bin_id = next_bin(state, sells_a)
    if bin_id is None:
        return Fraction(0)
    price = bin_price(bin_id, pool.params.bin_step)
    kept = 1 - dlmm_fee(pool, state, bin_id, now)
    return kept * price if sells_a else kept / price


def best_arbitrage(
    pool: Pool,
    state: PoolState,
    input_token: str,
    value_in: Fraction,
    value_out: Fraction,
    now: int,
) -> Fraction:
    """What the best trade paying ``input_token`` into the pool makes when
    the rest of the world values a base unit of its input at ``value_in``
    and of its output at ``value_out``. A constant-product pool pays
    k·x·y / (x + k·d)² for the last unit of d in, k what the fee leaves, so
    the best d is (sqrt(k·x·y·value_out / value_in) - x) / k; a DLMM pool
    is worth emptying bin after bin while a bin's price, its fee taken,
    beats the world's."""
    sells_a = input_token == pool.token_a
    made = Fraction(0)
    if isinstance(pool, CpmmPool):
        assert isinstance(state, Reserves)
        x, y = reserves(state, sells_a)
        kept_in, kept_out = cpmm_kept(pool, sells_a)
        both = kept_in * kept_out
        if both * y * value_out <= x * value_in:
            return made
        best = (Fraction(math.isqrt(int(both * x * y * value_out / value_in))) - x) / kept_in
        bought = kept_out * y * kept_in * best / (x + kept_in * best)
        return bought * value_out - best * value_in
    assert isinstance(pool, DlmmPool) and isinstance(state, DlmmState)
    step = -1 if sells_a else 1
    bin_id = state.active_id
    while state.min_id <= bin_id <= state.max_id:
        held = state.bins[bin_id - state.min_id]
        out = held.y if sells_a else held.x
        if out:
            price = bin_price(bin_id, pool.params.bin_step)
            rate = (price if sells_a else 1 / price) * (1 - dlmm_fee(pool, state, bin_id, now))
            if rate * value_out <= value_in:
                break
            made += out * value_out - out / rate * value_in
        bin_id += step
    return made


def swap_by_hand(pool: Pool, state: PoolState, input_token: str, amount_in: int, now: int) -> int:
    """What ``amount_in`` of ``input_token`` gets from the pool: x·y = k
    after Raydium's fee, or Meteora's bins walked from the active one, each
    emptied for ceil(out / price) plus its fee on top (ceil(in·f / (1 - f)))
    until the rest, less ceil(rest·f), fits in one."""
    sells_a = input_token == pool.token_a
    if isinstance(pool, CpmmPool):
        assert isinstance(state, Reserves)
        held_in, held_out = reserves(state, sells_a)
        if pool.creator_fee_rate and pool.creator_fee_on.on_input(sells_a):
            rate = pool.fee_rate + pool.creator_fee_rate
            return cpmm_swap(held_in, held_out, amount_in, rate)
        swapped = cpmm_swap(held_in, held_out, amount_in, pool.fee_rate)
        return swapped - ceil_div(swapped * pool.creator_fee_rate, 1_000_000)
    assert isinstance(pool, DlmmPool) and isinstance(state, DlmmState)
    left, got = amount_in, 0
    bin_id = state.active_id
    while left > 0:
        assert state.min_id <= bin_id <= state.max_id, "the bins cannot fill it"
        held = state.bins[bin_id - state.min_id]
        out = held.y if sells_a else held.x
        if out:
            price = bin_price(bin_id, pool.params.bin_step)
            fee = dlmm_fee(pool, state, bin_id, now)
            empties = math.ceil(out / price if sells_a else out * price)
            on_top = math.ceil(empties * fee / (1 - fee))
            if left > empties + on_top:
                got += out
                left -= empties + on_top
            else:
                net = left - math.ceil(left * fee)
                got += min(math.floor(net * price if sells_a else net / price), out)
                left = 0
        bin_id += -1 if sells_a else 1
    return got


def mid(pool: Pool, state: PoolState) -> Fraction:
    """token_b base units per token_a base unit: y/x, or the active bin's price."""
    if isinstance(state, Reserves):
        return Fraction(state.reserve_b, state.reserve_a)
    assert isinstance(pool, DlmmPool)
    return bin_price(state.active_id, pool.params.bin_step)


def reserves(state: Reserves, sells_a: bool) -> tuple[int, int]:
    """A Raydium pool's trading reserves, in and out: each vault less the
    protocol, fund and creator fees it holds apart."""
    a = state.a - state.protocol_fee_a - state.fund_fee_a - state.creator_fee_a
    b = state.b - state.protocol_fee_b - state.fund_fee_b - state.creator_fee_b
    return (a, b) if sells_a else (b, a)


def cpmm_kept(pool: CpmmPool, sells_a: bool) -> tuple[Fraction, Fraction]:
    """What Raydium's fees leave of a unit in and of a unit the curve pays
    out: the trade fee and a creator fee on the input come off the input, a
    creator fee on the output off the output."""
    trade = Fraction(pool.fee_rate, 1_000_000)
    creator = Fraction(pool.creator_fee_rate, 1_000_000)
    if pool.creator_fee_on.on_input(sells_a):
        return 1 - trade - creator, Fraction(1)
    return 1 - trade, 1 - creator


def cpmm_swap(held_in: int, held_out: int, amount_in: int, fee_rate: int) -> int:
    """Raydium's curve: the fee ceil(in·rate/10⁶) off the input, then
    floor(net·y / (x + net))."""
    net = amount_in - ceil_div(amount_in * fee_rate, 1_000_000)
    return net * held_out // (held_in + net)


def unit_value(usd: Fraction, symbol: str) -> Fraction:
    """USD per base unit of a token worth ``usd`` a whole one."""
    return usd / 10 ** token(symbol).decimals


class MemoryMarket:
    """The pools in a dict, moved by the flow's trades (priced with
    apply_route, the chain's math)."""

    def __init__(self, states: dict[str, PoolState] | None = None) -> None:
        self.states = states or {p.id: p.initial_state() for p in all_pools().values()}
        self.prices: dict[str, float] = {}

    async def transact(self, pool_ids: Sequence[str], trade: Trade, reference: Prices) -> None:
        self.states.update(trade({pool_id: self.states[pool_id] for pool_id in pool_ids}))
        self.prices = dict(reference)

    async def reference(self) -> dict[str, float]:
        return dict(self.prices)
