"""Meteora DLMM math, piece by piece: bin prices, fees, the volatility
accumulator, walking bins, and bins made from a few numbers."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest

from orderengine.market.base import OutOfLiquidityError
from orderengine.market.dlmm import (
    FEE_PRECISION,
    MAX_FEE_RATE,
    ONE,
    Bin,
    DlmmParams,
    DlmmState,
    Shape,
    bin_id_for_price,
    fee_included,
    fee_on_top,
    make_bins,
    price_from_id,
    swap_exact_in,
    update_references,
    volatility_at,
)

NOW = 1_000_000

PARAMS = DlmmParams(
    bin_step=100,
    base_factor=10_000,
    base_fee_power_factor=0,
    variable_fee_control=10_000,
    max_volatility_accumulator=350_000,
    filter_period=30,
    decay_period=600,
    reduction_factor=5_000,
)


# -- bin prices ----------------------------------------------------------------------


def test_bin_zero_is_price_one_exactly() -> None:
    assert price_from_id(0, 100) == ONE


@pytest.mark.parametrize(
    ("bin_id", "price"),
    [
        # (1 + 100/10_000) * 2^64 = 18_631_211_514_446_647_132.16: Meteora's base rounds down
        (1, 18_631_211_514_446_647_132),
        # 2^64 / 1.01 = 18_264_103_043_276_783_778.21..
        (-1, 18_264_103_043_276_783_778),
    ],
)
def test_neighbouring_bins_are_one_step_away(bin_id: int, price: int) -> None:
    assert price_from_id(bin_id, 100) == price


@pytest.mark.parametrize("bin_step", [1, 5, 10, 25, 100])
@pytest.mark.parametrize("bin_id", [-1_300, -658, -7, 3, 64, 1_300])
def test_bin_prices_are_powers_of_one_plus_the_step(bin_step: int, bin_id: int) -> None:
    exact = Fraction(10_000 + bin_step, 10_000) ** bin_id
    got = Fraction(price_from_id(bin_id, bin_step), ONE)
    # Q64.64 keeps 64 bits after the point and squaring loses a few: for prices between
    # 1e-6 and 1e6 (every pool's here) that is well under 1e-12. Far smaller prices lose
    # precision in Meteora's pow as they do here.
    assert abs(got / exact - 1) < Fraction(1, 10**12)


def test_prices_grow_with_the_bin_id() -> None:
    prices = [price_from_id(i, 10) for i in range(-2_100, -1_900)]
    assert prices == sorted(prices) and len(set(prices)) == len(prices)


@pytest.mark.parametrize(
    ("price", "bin_step"),
    [
        (Fraction("139.6") * 10**6 / 10**9, 10),  # USDC per SOL in base units
        (Fraction("0.000000141") * 10**9 / 10**5, 100),  # SOL per BONK
        (Fraction(1), 1),
        (Fraction(12345, 7), 25),
    ],
)
def test_the_bin_for_a_price_is_the_nearest(price: Fraction, bin_step: int) -> None:
    bin_id = bin_id_for_price(price, bin_step)
    distance = abs(Fraction(price_from_id(bin_id, bin_step), ONE) - price)
    for other in (bin_id - 1, bin_id + 1):
        assert distance <= abs(Fraction(price_from_id(other, bin_step), ONE) - price)


def test_a_price_must_be_positive() -> None:
    with pytest.raises(ValueError):
        bin_id_for_price(Fraction(0), 10)


# -- fees -------------------------------------------------------------------------------


def test_the_base_fee_is_base_factor_times_bin_step_in_1e9() -> None:
    assert PARAMS.base_fee_rate() == 10_000 * 100 * 10 == 10_000_000  # 1%
    # The power factor scales it: 0.1% -> 1%
    params = replace(PARAMS, base_factor=1_000, base_fee_power_factor=1)
    assert params.base_fee_rate() == 1_000 * 100 * 10 * 10 == 10_000_000


@pytest.mark.parametrize(
    ("volatility", "rate"),
    [
        (0, 0),
        # 10_000 * (10_000 * 100)^2 / 1e11 = 100_000 exactly
        (10_000, 100_000),
        # 10_000 * (1 * 100)^2 / 1e11 = 0.001 -> rounds up to 1
        (1, 1),
        # 10_000 * (45_000 * 100)^2 / 1e11 = 2_025_000
        (45_000, 2_025_000),
    ],
)
def test_the_variable_fee_grows_with_the_square_of_volatility(volatility: int, rate: int) -> None:
    assert PARAMS.variable_fee_rate(volatility) == rate


def test_the_total_fee_is_capped_at_ten_percent() -> None:
    assert PARAMS.total_fee_rate(45_000) == 10_000_000 + 2_025_000
    wild = replace(PARAMS, variable_fee_control=10**9)
    assert wild.total_fee_rate(350_000) == MAX_FEE_RATE == FEE_PRECISION // 10


def test_fees_round_up_both_ways() -> None:
    # 1% on top of 5_000: 5_000 * 1e7 / 9.9e8 = 50.50.. -> 51, so 5_051 - 1% of it >= 5_000
    assert fee_on_top(5_000, 10_000_000) == 51
    assert 5_051 - fee_included(5_051, 10_000_000) == 5_000
    # 1% inside 4_949: 49.49 -> 50
    assert fee_included(4_949, 10_000_000) == 50


# -- the volatility accumulator ---------------------------------------------------------


def state(**fields: int) -> DlmmState:
    return DlmmState(
        active_id=fields.pop("active_id", 0),
        min_id=-50,
        bins=tuple(Bin(0, 10**6) if i <= 0 else Bin(10**6, 0) for i in range(-50, 51)),
        **fields,
    )


@pytest.mark.parametrize(
    ("elapsed", "index", "reference"),
    [
        (10, 7, 4_000),  # within the filter period: the references stand
        (29, 7, 4_000),
        (30, 0, 45_000 * 5_000 // 10_000),  # decay window: reference = accumulator * R
        (599, 0, 22_500),
        (600, 0, 0),  # after the decay period: forgotten
        (10**6, 0, 0),
    ],
)
def test_references_hold_then_decay_then_reset(elapsed: int, index: int, reference: int) -> None:
    before = state(
        index_reference=7,
        volatility_reference=4_000,
        volatility_accumulator=45_000,
        last_update=NOW - elapsed,
    )
    after = update_references(PARAMS, before, NOW)
    assert (after.index_reference, after.volatility_reference) == (index, reference)


def test_the_accumulator_counts_bins_from_the_reference_and_is_capped() -> None:
    s = state(index_reference=3, volatility_reference=15_000)
    assert volatility_at(PARAMS, s, 0) == 15_000 + 3 * 10_000
    assert volatility_at(PARAMS, s, 3) == 15_000
    assert volatility_at(PARAMS, s, -40) == 350_000  # 15_000 + 43 * 10_000, capped


def test_a_swap_across_bins_raises_the_accumulator_and_the_next_swap_pays_for_it() -> None:
    quiet = state(last_update=NOW - 1_000)
    first = swap_exact_in(PARAMS, quiet, True, 5 * 10**6, NOW)  # crosses about five bins
    crossed = -first.state.active_id
    assert crossed >= 4
    assert first.state.volatility_accumulator == crossed * 10_000
    # One second later (within the filter period) the same small swap pays more than it
    # would have in the quiet pool.
    small_quiet = swap_exact_in(PARAMS, quiet, True, 10_000, NOW)
    small_after = swap_exact_in(PARAMS, first.state, True, 10_000, NOW + 1)
    assert small_after.fee > small_quiet.fee
    # Ten minutes on, the volatility is forgotten.
    small_later = swap_exact_in(PARAMS, first.state, True, 10_000, NOW + 601)
    assert small_later.fee == small_quiet.fee


# -- walking bins ---------------------------------------------------------------------


def test_selling_x_walks_down_and_selling_y_walks_up() -> None:
    s = state(last_update=NOW - 1_000)
    down = swap_exact_in(PARAMS, s, True, 3 * 10**6, NOW).state
    up = swap_exact_in(PARAMS, s, False, 3 * 10**6, NOW).state
    assert down.active_id < 0 < up.active_id
    assert all(down.bin(i).y == 0 for i in range(down.active_id + 1, 1))
    assert all(up.bin(i).x == 0 for i in range(0, up.active_id))


def test_empty_bins_are_walked_past() -> None:
    # Bin 0 and -1 hold no Y: the swap goes on to bin -2.
    s = DlmmState(active_id=0, min_id=-2, bins=(Bin(0, 10**6), Bin(0, 0), Bin(0, 0)))
    swap = swap_exact_in(replace(PARAMS, variable_fee_control=0), s, True, 10_000, NOW)
    assert swap.state.active_id == -2
    # fee 1% = 100; out floor(9_900 / 1.01^2) = floor(9_704.93..) = 9_704
    assert (swap.amount_out, swap.fee) == (9_704, 100)


def test_a_swap_that_empties_the_last_bin_exactly_stays_there() -> None:
    s = DlmmState(active_id=0, min_id=0, bins=(Bin(0, 5_000),))
    params = replace(PARAMS, variable_fee_control=0)
    # 5_000 + fee on top 51 = 5_051 empties it without needing another bin
    swap = swap_exact_in(params, s, True, 5_051, NOW)
    assert (swap.amount_out, swap.state.bin(0), swap.state.active_id) == (5_000, Bin(5_000, 0), 0)
    with pytest.raises(OutOfLiquidityError):
        swap_exact_in(params, s, True, 5_052, NOW)


# -- where Meteora's SDK 0.12 parts from the model (docs/market.md) ---------------------------
#
# The model follows the SDK before 0.12: in each bin, if what is left exceeds what empties the
# bin plus the fee on top, the bin is emptied and the rest goes on; otherwise the fee comes out
# of what is left and the rest fills. 0.12 takes the fee out of what is left first, then fills;
# it updates the volatility accumulator only in bins that hold the output token.


def test_a_swap_one_unit_past_a_bins_capacity_goes_on_to_the_next_bin() -> None:
    """Bin 0 (price 1) holds 1_089 Y; the fee is 1% (the last swap was long ago, so the
    references reset to bin 0 and the accumulator is 0 there). Emptying it takes 1_089 +
    ceil(1_089 * 1e7 / 9.9e8) = 1_089 + ceil(11.0) = 1_100.

    1_101 in, the model (pre-0.12): 1_101 > 1_100, so bin 0 is emptied for 1_100 (out 1_089,
    fee 11) and 1 unit goes on to bin -1. There the accumulator is 1 bin * 10_000 = 10_000,
    the fee 1e7 + ceil(10_000 * (10_000 * 100)^2 / 1e11) = 10_100_000, so the unit pays
    ceil(1 * 0.0101) = 1 and swaps 0, for floor(0 / 1.01) = 0. Out 1_089, fee 12, and the
    active bin is -1 with accumulator 10_000.

    SDK 0.12 instead: the fee first, ceil(1_101 * 1e7 / 1e9) = ceil(11.01) = 12; 1_101 - 12 =
    1_089 fills bin 0 exactly and nothing is left. Out 1_089, fee 12, active bin 0,
    accumulator 0; and with no bin -1 it fills where the model refuses."""
    two_bins = DlmmState(
        active_id=0, min_id=-1, bins=(Bin(0, 10**6), Bin(0, 1_089)), last_update=NOW - 1_000
    )
    up_to = swap_exact_in(PARAMS, two_bins, True, 1_100, NOW)  # both SDKs agree up to here
    assert (up_to.amount_out, up_to.fee, up_to.state.active_id) == (1_089, 11, 0)
    assert up_to.state.bin(0) == Bin(1_100 - 11, 0)

    past = swap_exact_in(PARAMS, two_bins, True, 1_101, NOW)
    assert (past.amount_out, past.fee) == (1_089, 12)
    after = past.state
    assert (after.active_id, after.volatility_accumulator) == (-1, 10_000)
    assert (after.bin(0), after.bin(-1), after.fee_x) == (Bin(1_089, 0), Bin(0, 10**6), 12)

    one_bin = replace(two_bins, min_id=0, bins=(Bin(0, 1_089),))
    assert swap_exact_in(PARAMS, one_bin, True, 1_100, NOW).amount_out == 1_089
    with pytest.raises(OutOfLiquidityError):
        swap_exact_in(PARAMS, one_bin, True, 1_101, NOW)


def test_bins_without_the_output_token_leave_no_mark_on_the_fee() -> None:
    """Where 0.12's other change shows nothing: bins 0 and -1 hold no Y, bin -2 does. The
    accumulator is a function of the bin alone (references fixed at the swap's start), so
    computing it in the empty bins too changes nothing: in bin -2 it is 2 * 10_000 = 20_000,
    the fee 1e7 + ceil(10_000 * (20_000 * 100)^2 / 1e11) = 10_400_000, so 10_000 in pays
    ceil(104.0) = 104 and gets floor(9_896 / 1.0201) = floor(9_701.0..) = 9_701; the swap
    ends there, the accumulator is left at 20_000 under either SDK."""
    s = DlmmState(
        active_id=0,
        min_id=-2,
        bins=(Bin(0, 10**6), Bin(0, 0), Bin(0, 0)),
        last_update=NOW - 1_000,
    )
    swap = swap_exact_in(PARAMS, s, True, 10_000, NOW)
    assert (swap.amount_out, swap.fee) == (9_701, 104)
    assert (swap.state.active_id, swap.state.volatility_accumulator) == (-2, 20_000)


def test_the_state_passed_in_is_not_changed() -> None:
    s = state(last_update=NOW - 1_000)
    copy = replace(s)
    swap_exact_in(PARAMS, s, True, 5 * 10**6, NOW)
    assert s == copy


# -- bins from a few numbers ----------------------------------------------------------------


def test_spot_bins_hold_the_same_value_each() -> None:
    min_id, bins = make_bins(0, 100, 2, 1_000_000, Shape.SPOT)
    assert min_id == -2
    assert [b.y for b in bins] == [1_000_000, 1_000_000, 500_000, 0, 0]
    # Above the active bin, X worth 1_000_000 Y at each bin's price: 1e6 / 1.01, 1e6 / 1.0201
    assert [b.x for b in bins] == [0, 0, 500_000, 990_099, 980_296]


def test_curve_bins_fall_linearly_away_from_the_active_bin() -> None:
    _, bins = make_bins(0, 100, 2, 900_000, Shape.CURVE)
    # weights 1/3, 2/3, 1, 2/3, 1/3 of 900_000
    assert [b.y for b in bins] == [300_000, 600_000, 450_000, 0, 0]
    assert bins[2].x == 450_000


def test_bins_need_liquidity() -> None:
    with pytest.raises(ValueError):
        make_bins(0, 100, 2, 0, Shape.SPOT)
