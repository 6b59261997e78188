"""The pools' swaps as the router runs them (their steps inlined) against
the same swaps written step by step.

The DLMM swap as the router runs it (its steps inlined) against the same
swap written step by step from Meteora's functions (update_references,
volatility_at, total_fee_rate, _max_amount_in, fee_on_top, fee_included,
_amount_out): on generated pools, every amount, fee and field of the state
after, to the base unit, and the vault balances the swap carries over. The
CPMM pool's quote against cpmm.swap_exact_in."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderengine.market.base import OutOfLiquidityError, Swap, Venue
from orderengine.market.cpmm import FEE_DENOMINATOR, CpmmPool, CreatorFeeOn, Reserves
from orderengine.market.cpmm import swap_exact_in as cpmm_swap
from orderengine.market.dlmm import (
    MAX_FEE_RATE,
    Bin,
    DlmmParams,
    DlmmState,
    _amount_out,
    _max_amount_in,
    fee_included,
    fee_on_top,
    price_from_id,
    swap_exact_in,
    update_references,
    volatility_at,
)

PURE = settings(max_examples=400, derandomize=True, database=None, deadline=None)


def reference_swap(
    params: DlmmParams, state: DlmmState, swap_for_y: bool, amount_in: int, now: int
) -> Swap[DlmmState]:
    """The swap one Meteora function at a time, as it was written first."""
    state = update_references(params, state, now)
    bins = list(state.bins)
    active = state.active_id
    left, fills = amount_in, []
    volatility = state.volatility_accumulator
    while True:
        volatility = volatility_at(params, state, active)
        k = active - state.min_id
        bin_ = bins[k]
        reserve_out = bin_.y if swap_for_y else bin_.x
        if reserve_out > 0:
            price = price_from_id(active, params.bin_step)
            rate = params.total_fee_rate(volatility)
            max_in = _max_amount_in(bin_, price, swap_for_y)
            max_fee = fee_on_top(max_in, rate)
            if left > max_in + max_fee:
                taken, out, fee = max_in + max_fee, reserve_out, max_fee
            else:
                fee = fee_included(left, rate)
                out = min(_amount_out(left - fee, price, swap_for_y), reserve_out)
                taken = left
            bins[k] = bin_.filled(taken - fee, out, swap_for_y)
            fills.append((taken, out, fee))
            left -= taken
        if left == 0:
            break
        active += -1 if swap_for_y else 1
        if not state.min_id <= active <= state.max_id:
            raise OutOfLiquidityError("out of bins")
    total_out, total_fee = sum(out for _, out, _ in fills), sum(fee for _, _, fee in fills)
    fee_x, fee_y = state.fees_with(total_fee, swap_for_y)
    after = replace(
        state,
        active_id=active,
        bins=tuple(bins),
        volatility_accumulator=volatility,
        last_update=now,
        fee_x=fee_x,
        fee_y=fee_y,
    )
    return Swap(amount_in, total_out, total_fee, after)


params_st = st.builds(
    DlmmParams,
    bin_step=st.sampled_from([1, 5, 10, 25, 80, 100, 250]),
    base_factor=st.integers(0, 20_000),
    base_fee_power_factor=st.integers(0, 2),
    variable_fee_control=st.integers(0, 200_000),
    max_volatility_accumulator=st.integers(0, 500_000),
    filter_period=st.integers(0, 60),
    decay_period=st.integers(0, 1200),
    reduction_factor=st.integers(0, 10_000),
)
amounts = st.integers(0, 10**15)


@st.composite
def states(draw: st.DrawFn) -> DlmmState:
    bins = tuple(Bin(draw(amounts), draw(amounts)) for _ in range(draw(st.integers(1, 12))))
    min_id = draw(st.integers(-2_000, 2_000))
    return DlmmState(
        active_id=min_id + draw(st.integers(0, len(bins) - 1)),
        min_id=min_id,
        bins=bins,
        volatility_accumulator=draw(st.integers(0, 500_000)),
        volatility_reference=draw(st.integers(0, 500_000)),
        index_reference=min_id + draw(st.integers(-5, len(bins) + 5)),
        last_update=draw(st.integers(0, 2_000)),
        fee_x=draw(amounts),
        fee_y=draw(amounts),
    )


@PURE
@given(
    params=params_st,
    state=states(),
    swap_for_y=st.booleans(),
    amount_in=st.integers(1, 10**16),
    now=st.integers(0, 4_000),
    again=st.booleans(),
)
def test_the_inlined_swap_gives_what_meteoras_steps_give(
    params: DlmmParams, state: DlmmState, swap_for_y: bool, amount_in: int, now: int, again: bool
) -> None:
    try:
        expected = reference_swap(params, state, swap_for_y, amount_in, now)
    except (OutOfLiquidityError, OverflowError) as refused:
        # Out of bins, or a bin whose price Q64.64 cannot hold (ids far past
        # what a bin step allows): the inlined swap refuses it alike.
        with pytest.raises(type(refused)):
            swap_exact_in(params, state, swap_for_y, amount_in, now)
        return
    got = swap_exact_in(params, state, swap_for_y, amount_in, now)
    assert got == expected
    # The balances carried over are the bins summed again.
    fresh = replace(got.state)
    assert got.state.balances() == fresh.balances()
    if again:  # a swap on a swapped state: carried balances build on carried ones
        try:
            second = reference_swap(params, expected.state, not swap_for_y, amount_in, now + 1)
        except (OutOfLiquidityError, OverflowError) as refused:
            with pytest.raises(type(refused)):
                swap_exact_in(params, got.state, not swap_for_y, amount_in, now + 1)
            return
        got_second = swap_exact_in(params, got.state, not swap_for_y, amount_in, now + 1)
        assert got_second == second
        assert got_second.state.balances() == replace(got_second.state).balances()


def test_the_fee_rate_is_capped() -> None:
    params = DlmmParams(100, 10_000, 2, 10**9, 10**9, 0, 0, 0)
    assert params.total_fee_rate(10**9) == MAX_FEE_RATE
    state = DlmmState(0, 0, (Bin(10**12, 10**12),))
    swap = swap_exact_in(params, state, True, 10**6, 0)
    assert swap.fee == 10**5


@st.composite
def cpmm_pools(draw: st.DrawFn) -> CpmmPool:
    fee_rate = draw(st.integers(0, FEE_DENOMINATOR - 1))
    return CpmmPool(
        "p",
        Venue.RAYDIUM,
        "SOL",
        "USDC",
        1,
        1,
        fee_rate,
        protocol_fee_rate=draw(st.sampled_from([0, 120_000, 333_333, FEE_DENOMINATOR - 40_000])),
        fund_fee_rate=draw(st.sampled_from([0, 40_000])),
        creator_fee_rate=draw(st.integers(0, FEE_DENOMINATOR - 1 - fee_rate)),
        creator_fee_on=draw(st.sampled_from(list(CreatorFeeOn))),
    )


@PURE
@given(
    pool=cpmm_pools(),
    vaults=st.tuples(st.integers(0, 10**19), st.integers(0, 10**19)),
    accrued=st.lists(st.integers(0, 10**17), min_size=6, max_size=6),
    amount_in=st.integers(1, 10**19),
    sells_a=st.booleans(),
)
def test_the_inlined_cpmm_quote_gives_what_swap_exact_in_gives(
    pool: CpmmPool, vaults: tuple[int, int], accrued: list[int], amount_in: int, sells_a: bool
) -> None:
    """Every rate, every creator_fee_on, on vaults holding fees counted apart:
    the quote's amounts and the state after are swap_exact_in's, step by step,
    on the trading reserves."""
    state = Reserves(vaults[0] + sum(accrued[0::2]), vaults[1] + sum(accrued[1::2]), *accrued)
    assert (state.reserve_a, state.reserve_b) == vaults
    got = pool.quote(state, "SOL" if sells_a else "USDC", amount_in, 0)
    reserve_in, reserve_out = vaults if sells_a else vaults[::-1]
    on_input = pool.creator_fee_on.on_input(sells_a)
    expected = cpmm_swap(
        reserve_in,
        reserve_out,
        amount_in,
        pool.fee_rate,
        pool.protocol_fee_rate,
        pool.fund_fee_rate,
        pool.creator_fee_rate,
        on_input,
    )
    assert (got.amount_in, got.amount_out, got.fee) == (
        amount_in,
        expected.amount_out,
        expected.fee,
    )
    # The vaults take all of the input and pay out what the trader gets; the
    # fees counted apart grow by the swap's shares, each in its own token.
    p, f, c = expected.protocol_fee, expected.fund_fee, expected.creator_fee
    c_in, c_out = (c, 0) if on_input else (0, c)
    if sells_a:
        moved = (amount_in, -expected.amount_out, p, 0, f, 0, c_in, c_out)
    else:
        moved = (-expected.amount_out, amount_in, 0, p, 0, f, c_out, c_in)
    assert got.state == Reserves(*(x + d for x, d in zip(state, moved, strict=True)))
