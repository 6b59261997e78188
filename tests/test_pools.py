"""Every pool kind through the one interface the router and the chain use:
swaps priced by hand, and conservation over many seeded random swaps."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest

from orderengine.market.base import OutOfLiquidityError, Venue
from orderengine.market.cpmm import (
    FEE_DENOMINATOR,
    CpmmPool,
    CreatorFeeOn,
    Reserves,
    SwapResult,
    swap_exact_in,
)
from orderengine.market.dlmm import (
    MAX_BIN_ID,
    Bin,
    DlmmParams,
    DlmmPool,
    DlmmState,
    Shape,
    make_bins,
)
from orderengine.market.pools import Pool, PoolState, all_pools, balances, quote, spot_price

NOW = 1_000_000  # unix seconds, fixed so that DLMM fees are deterministic


def cpmm(fee_rate: int, a: int = 1_000_000, b: int = 2_000_000) -> CpmmPool:
    return CpmmPool(
        id=f"cpmm-{fee_rate}",
        venue=Venue.RAYDIUM,
        token_a="SOL",
        token_b="USDC",
        initial_a=a,
        initial_b=b,
        fee_rate=fee_rate,
    )


# bin_step 100: bins 1% apart; base fee 10_000 * 100 * 10 = 10_000_000 / 1e9 = 1%.
PARAMS = DlmmParams(
    bin_step=100,
    base_factor=10_000,
    base_fee_power_factor=0,
    variable_fee_control=0,
    max_volatility_accumulator=350_000,
    filter_period=30,
    decay_period=600,
    reduction_factor=5_000,
)


def dlmm(bins: dict[int, Bin], params: DlmmParams = PARAMS, **state: int) -> DlmmPool:
    """A pool whose active bin is 0 (price exactly 1) unless ``state`` says otherwise."""
    low = min(bins)
    initial = DlmmState(
        active_id=state.pop("active_id", 0),
        min_id=low,
        bins=tuple(bins.get(i, Bin(0, 0)) for i in range(low, max(bins) + 1)),
        **state,
    )
    return DlmmPool(
        id="dlmm",
        venue=Venue.METEORA,
        token_a="SOL",
        token_b="USDC",
        params=params,
        initial=initial,
    )


def volatile_dlmm(last_update: int) -> DlmmPool:
    """One bin of 1_000_000 SOL, after swaps that left index reference 3,
    volatility reference 15_000 and accumulator 45_000."""
    return dlmm(
        {0: Bin(0, 1_000_000)},
        replace(PARAMS, variable_fee_control=10_000),
        index_reference=3,
        volatility_reference=15_000,
        volatility_accumulator=45_000,
        last_update=last_update,
    )


@dataclass(frozen=True)
class Case:
    pool: Pool
    input_token: str
    amount_in: int
    amount_out: int
    fee: int


HAND_COMPUTED = {
    # -- Raydium CPMM: reserves 1_000_000 SOL / 2_000_000 USDC, k = 2e12, 10_000 SOL in.
    # fee = ceil(10_000 * 100 / 1e6) = 1; net 9_999; 2e12 / 1_009_999 = 1_980_199.98.. -> ceil
    # 1_980_200; out = 2_000_000 - 1_980_200 = 19_800
    "cpmm 0.01%": Case(cpmm(100), "SOL", 10_000, 19_800, 1),
    # fee = ceil(10_000 * 2_500 / 1e6) = 25; net 9_975; 2e12 / 1_009_975 = 1_980_247.03.. ->
    # 1_980_248; out = 2_000_000 - 1_980_248 = 19_752
    "cpmm 0.25%": Case(cpmm(2_500), "SOL", 10_000, 19_752, 25),
    # fee = ceil(10_000 * 10_000 / 1e6) = 100; net 9_900; 2e12 / 1_009_900 = 1_980_394.09.. ->
    # 1_980_395; out = 2_000_000 - 1_980_395 = 19_605
    "cpmm 1%": Case(cpmm(10_000), "SOL", 10_000, 19_605, 100),
    # The other way: 10_000 USDC in, fee 25, net 9_975; 2e12 / 2_009_975 = 995_037.25.. ->
    # 995_038; out = 1_000_000 - 995_038 = 4_962
    "cpmm 0.25% token_b in": Case(cpmm(2_500), "USDC", 10_000, 4_962, 25),
    # -- Meteora DLMM, bin_step 100 (bins 1% apart), base fee 1%, no variable fee unless
    # said. Bin 0's price is exactly 1; bin -1's is 1/1.01, bin 1's 1.01 (Q64.64, rounded
    # down in the last of 64 bits, which no amount here reaches).
    #
    # Within one bin: 10_000 SOL (X) into bin 0 holding 1_000_000 USDC (Y). Emptying it would
    # take 1_000_000 + ceil(1e6 * 1e7 / (1e9 - 1e7)) = 1_010_102 > 10_000, so the swap ends
    # here: fee = ceil(10_000 * 1e7 / 1e9) = 100, out = (10_000 - 100) * 1 = 9_900.
    "dlmm within a bin": Case(dlmm({0: Bin(0, 1_000_000)}), "SOL", 10_000, 9_900, 100),
    # Crossing bins: bin 0 holds 5_000 USDC, bin -1 1_000_000. Bin 0 empties for
    # 5_000 + ceil(5_000 * 1e7 / 9.9e8) = 5_000 + 51 = 5_051 (< 10_000): out 5_000, fee 51.
    # 4_949 left go to bin -1: fee ceil(4_949 * 1e7 / 1e9) = 50, out floor(4_899 / 1.01) =
    # floor(4_850.49..) = 4_850. Total out 5_000 + 4_850 = 9_850, fee 51 + 50 = 101.
    "dlmm crossing bins": Case(
        dlmm({-1: Bin(0, 1_000_000), 0: Bin(0, 5_000)}), "SOL", 10_000, 9_850, 101
    ),
    # Crossing bins raises the fee: with variable_fee_control 10_000, bin -1 is one bin from
    # the index reference, so volatility 10_000 and variable fee ceil(10_000 * (10_000 *
    # 100)^2 / 1e11) = 100_000 (0.01%). Bin 0 (500_000 USDC) empties for 500_000 +
    # ceil(5e5 * 1e7 / 9.9e8) = 505_051: out 500_000, fee 5_051. 494_949 left, at 1.01%:
    # fee ceil(494_949 * 10_100_000 / 1e9) = ceil(4_998.98..) = 4_999, out floor(489_950 /
    # 1.01) = floor(485_099.00..) = 485_099. Total out 985_099, fee 10_050.
    "dlmm crossing bins, fee rising": Case(
        dlmm(
            {-1: Bin(0, 1_000_000), 0: Bin(0, 500_000)},
            replace(PARAMS, variable_fee_control=10_000),
        ),
        "SOL",
        1_000_000,
        985_099,
        10_050,
    ),
    # Buying X with Y walks up: bin 0 is empty, bin 1 (price 1.01) holds 1_000_000 SOL.
    # 10_201 USDC: fee ceil(10_201 * 1e7 / 1e9) = ceil(102.01) = 103, out floor(10_098 /
    # 1.01) = floor(9_998.01..) = 9_998.
    "dlmm token_b in, up a bin": Case(
        dlmm({0: Bin(0, 0), 1: Bin(1_000_000, 0)}), "USDC", 10_201, 9_998, 103
    ),
    # A volatile pool: the last swap was 10 s ago (< filter_period 30), so the references
    # stand: index 3, volatility 15_000. In bin 0 the accumulator is 15_000 + |3 - 0| * 10_000
    # = 45_000; variable fee ceil(10_000 * (45_000 * 100)^2 / 1e11) = 2_025_000, total
    # 12_025_000 (1.2025%). Fee ceil(10_000 * 0.012025) = ceil(120.25) = 121, out 9_879.
    "dlmm volatile": Case(
        volatile_dlmm(last_update=NOW - 10),
        "SOL",
        10_000,
        9_879,
        121,
    ),
    # The same pool 60 s later (filter 30 <= 60 < decay 600): the index reference moves to the
    # active bin and the volatility reference decays to 45_000 * 5_000 / 10_000 = 22_500,
    # the accumulator is 22_500 + 0; variable fee ceil(10_000 * (22_500 * 100)^2 / 1e11) =
    # 506_250, total 10_506_250. Fee ceil(105.06..) = 106, out 9_894.
    "dlmm volatility decaying": Case(
        volatile_dlmm(last_update=NOW - 60),
        "SOL",
        10_000,
        9_894,
        106,
    ),
    # The fee is capped at 10%: accumulator 40 bins * 10_000 = 400_000, capped at 350_000;
    # variable fee 1e6 * (350_000 * 100)^2 / 1e11 = 1.225e10 > 1e8. Fee 10_000 * 10% = 1_000.
    "dlmm fee cap": Case(
        dlmm(
            {0: Bin(0, 1_000_000)},
            replace(PARAMS, variable_fee_control=1_000_000),
            index_reference=40,
            last_update=NOW - 1,
        ),
        "SOL",
        10_000,
        9_000,
        1_000,
    ),
}


@pytest.mark.parametrize("case", HAND_COMPUTED.values(), ids=HAND_COMPUTED.keys())
def test_swaps_priced_by_hand(case: Case) -> None:
    swap = quote(case.pool, case.pool.initial_state(), case.input_token, case.amount_in, NOW)
    assert (swap.amount_in, swap.amount_out, swap.fee) == (
        case.amount_in,
        case.amount_out,
        case.fee,
    )


def test_the_hand_computed_swaps_move_the_bins_as_they_say() -> None:
    case = HAND_COMPUTED["dlmm crossing bins"]
    swap = quote(case.pool, case.pool.initial_state(), "SOL", 10_000, NOW)
    assert isinstance(swap.state, DlmmState)
    # Bin 0 emptied of USDC and took 5_000 SOL (its fee aside); the swap ended in bin -1.
    assert swap.state.bin(0) == Bin(5_000, 0)
    assert swap.state.bin(-1) == Bin(4_899, 1_000_000 - 4_850)
    assert swap.state.active_id == -1
    assert (swap.state.fee_x, swap.state.fee_y) == (101, 0)
    assert (swap.state.volatility_accumulator, swap.state.last_update) == (10_000, NOW)


# -- CPMM details ------------------------------------------------------------------------


def raydium(
    fee_rate: int = 2_500,
    creator_fee_rate: int = 0,
    creator_fee_on: CreatorFeeOn = CreatorFeeOn.BOTH,
) -> CpmmPool:
    """1_000_000 SOL and 2_000_000 USDC, on Raydium's config: 12% of each
    trade fee for the protocol, 4% for the fund."""
    return replace(
        cpmm(fee_rate),
        protocol_fee_rate=120_000,
        fund_fee_rate=40_000,
        creator_fee_rate=creator_fee_rate,
        creator_fee_on=creator_fee_on,
    )


@dataclass(frozen=True)
class FeeCase:
    pool: CpmmPool
    state: Reserves
    input_token: str
    amount_in: int
    amount_out: int
    fee: int
    after: Reserves


CLEAN = Reserves(1_000_000, 2_000_000)

# Reserves(a, b, protocol_fee_a, protocol_fee_b, fund_fee_a, fund_fee_b, creator_fee_a,
# creator_fee_b): the vaults, then the fees in them counted apart from the reserves.
FEES_BY_HAND = {
    # fee = ceil(10_000 * 2_500 / 1e6) = 25; protocol floor(25 * 120_000 / 1e6) = 3, fund
    # floor(25 * 40_000 / 1e6) = 1. net 9_975, out floor(9_975 * 2e6 / 1_009_975) =
    # floor(19_752.96..) = 19_752. The vault of SOL takes all 10_000; 4 of them are not
    # the LPs': the reserve is 1_009_996.
    "protocol and fund shares": FeeCase(
        raydium(), CLEAN, "SOL", 10_000, 19_752, 25, Reserves(1_010_000, 1_980_248, 3, 0, 1, 0)
    ),
    # fee = ceil(10_001 * 2_500 / 1e6) = ceil(25.0025) = 26; the shares round down:
    # floor(26 * 0.12) = floor(3.12) = 3, floor(26 * 0.04) = floor(1.04) = 1.
    "shares round down": FeeCase(
        raydium(), CLEAN, "SOL", 10_001, 19_752, 26, Reserves(1_010_001, 1_980_248, 3, 0, 1, 0)
    ),
    # A creator fee of 0.05% on the input: one fee ceil(10_001 * (2_500 + 500) / 1e6) =
    # ceil(30.003) = 31, of which the creator's floor(31 * 500 / 3_000) = floor(5.17) = 5 and
    # the trade fee 26 (shares 3 and 1). net 10_001 - 31 = 9_970, out floor(9_970 * 2e6 /
    # 1_009_970) = floor(19_743.16..) = 19_743.
    "creator fee on the input": FeeCase(
        raydium(creator_fee_rate=500),
        CLEAN,
        "SOL",
        10_001,
        19_743,
        31,
        Reserves(1_010_001, 1_980_257, 3, 0, 1, 0, 5, 0),
    ),
    # The creator's fee always in USDC, so off the output when selling SOL: trade fee 25,
    # the curve pays 19_752, the creator takes ceil(19_752 * 500 / 1e6) = ceil(9.876) = 10,
    # the trader gets 19_742. The USDC vault keeps those 10 apart: its reserve falls by 19_752.
    "creator fee on the output": FeeCase(
        raydium(creator_fee_rate=500, creator_fee_on=CreatorFeeOn.TOKEN_B),
        CLEAN,
        "SOL",
        10_000,
        19_742,
        25,
        Reserves(1_010_000, 1_980_258, 3, 0, 1, 0, 0, 10),
    ),
    # The same pool selling USDC: the creator's fee is on the input now. 10_000 USDC: one fee
    # ceil(10_000 * 3_000 / 1e6) = 30, the creator's floor(30 * 500 / 3_000) = 5, trade fee
    # 25 (shares 3 and 1, in USDC). net 9_970, out floor(9_970 * 1e6 / 2_009_970) =
    # floor(4_960.27..) = 4_960.
    "creator fee in token_b, token_b in": FeeCase(
        raydium(creator_fee_rate=500, creator_fee_on=CreatorFeeOn.TOKEN_B),
        CLEAN,
        "USDC",
        10_000,
        4_960,
        30,
        Reserves(995_040, 2_010_000, 0, 3, 0, 1, 0, 5),
    ),
    # Vaults holding 400 SOL of fees apart (300 protocol, 100 fund): the curve prices on
    # 1_000_000 SOL, not 1_000_400. 10_000 SOL: fee 25, net 9_975, out floor(9_975 * 2e6 /
    # 1_009_975) = 19_752, as on a clean pool (on the vault it would be floor(19_745.14..)).
    "priced on the reserves, selling the token with fees apart": FeeCase(
        raydium(),
        Reserves(1_000_400, 2_000_000, 300, 0, 100, 0),
        "SOL",
        10_000,
        19_752,
        25,
        Reserves(1_010_400, 1_980_248, 303, 0, 101, 0),
    ),
    # And buying it: 10_000 USDC, net 9_975, out floor(9_975 * 1_000_000 / 2_009_975) =
    # floor(4_962.74..) = 4_962 (on the vault: floor(4_964.73..) = 4_964), paid out of the
    # SOL vault, whose fees stay apart.
    "priced on the reserves, buying the token with fees apart": FeeCase(
        raydium(),
        Reserves(1_000_400, 2_000_000, 300, 0, 100, 0),
        "USDC",
        10_000,
        4_962,
        25,
        Reserves(995_438, 2_010_000, 300, 3, 100, 1),
    ),
}


@pytest.mark.parametrize("case", FEES_BY_HAND.values(), ids=FEES_BY_HAND.keys())
def test_raydiums_fees_are_split_and_counted_apart_by_hand(case: FeeCase) -> None:
    swap = quote(case.pool, case.state, case.input_token, case.amount_in, NOW)
    assert (swap.amount_out, swap.fee, swap.state) == (case.amount_out, case.fee, case.after)
    # The fees counted apart are not the LPs': the curve's reserves exclude them.
    assert isinstance(swap.state, Reserves)
    assert swap.state.reserve_a == case.after.a - sum(case.after[2::2])
    assert swap.state.reserve_b == case.after.b - sum(case.after[3::2])


def test_the_spot_price_is_the_reserves_not_the_vaults() -> None:
    # 1_000_400 SOL in the vault, 400 of them fees apart: 2_000_000 / 1_000_000 = 2.
    state = Reserves(1_000_400, 2_000_000, 300, 0, 100, 0)
    assert spot_price(raydium(), state, "SOL") == 2
    assert spot_price(raydium(), state, "USDC") == Fraction(1, 2)
    assert balances(raydium(), state) == (1_000_400, 2_000_000)  # what the pool holds


def test_the_cpmm_fee_rounds_up() -> None:
    # 10_001 * 2_500 / 1e6 = 25.0025 -> fee 26; net is 9_975 as for 10_000, so the same output
    assert swap_exact_in(1_000_000, 2_000_000, 10_001, 2_500) == SwapResult(19_752, 26)


def test_a_dust_cpmm_swap_pays_the_fee_and_gets_nothing() -> None:
    # fee = ceil(1 * 2_500 / 1e6) = 1, net 0 -> out 0
    assert swap_exact_in(1_000_000, 2_000_000, 1, 2_500) == SwapResult(0, 1)


@pytest.mark.parametrize(
    ("reserve_in", "reserve_out", "amount_in"),
    [(1_000, 1_000, 0), (1_000, 1_000, -5), (0, 1_000, 10), (1_000, 0, 10)],
)
def test_nothing_to_swap_gives_nothing(reserve_in: int, reserve_out: int, amount_in: int) -> None:
    assert swap_exact_in(reserve_in, reserve_out, amount_in, 2_500) == SwapResult(0, 0)


@pytest.mark.parametrize(
    "pool", [cpmm(2_500), HAND_COMPUTED["dlmm within a bin"].pool], ids=["cpmm", "dlmm"]
)
@pytest.mark.parametrize("amount_in", [0, -1])
def test_a_swap_of_nothing_is_refused(pool: Pool, amount_in: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        quote(pool, pool.initial_state(), "SOL", amount_in, NOW)


# -- the interface ---------------------------------------------------------------------


def test_a_pool_refuses_the_state_of_another_kind() -> None:
    with pytest.raises(TypeError):
        quote(cpmm(2_500), HAND_COMPUTED["dlmm within a bin"].pool.initial_state(), "SOL", 1, NOW)
    with pytest.raises(TypeError):
        quote(HAND_COMPUTED["dlmm within a bin"].pool, Reserves(1, 1), "SOL", 1, NOW)


def test_a_pool_trades_only_its_tokens() -> None:
    with pytest.raises(ValueError, match="does not trade"):
        quote(cpmm(2_500), Reserves(10, 10), "JUP", 1, NOW)


@pytest.mark.parametrize("pool", list(all_pools().values()), ids=lambda p: p.id)
def test_spot_price_is_what_a_tiny_swap_gets_before_the_fee(pool: Pool) -> None:
    state = pool.initial_state()
    for src in (pool.token_a, pool.token_b):
        spot = spot_price(pool, state, src)
        # Large enough for rounding to vanish, small enough to stay in the first bin.
        amount = max(10**6, int(10**6 / spot))
        swap = quote(pool, state, src, amount, NOW)
        executed = Fraction(swap.amount_out, swap.amount_in - swap.fee)
        assert abs(executed / spot - 1) < Fraction(1, 1_000), (pool.id, src)


# -- conservation ----------------------------------------------------------------------


def random_dlmm(rng: random.Random) -> DlmmPool:
    bin_step = rng.choice([1, 5, 10, 25, 100])
    params = DlmmParams(
        bin_step=bin_step,
        base_factor=rng.choice([2_000, 10_000, 40_000]),
        base_fee_power_factor=rng.choice([0, 0, 1]),
        variable_fee_control=rng.choice([0, 7_500, 40_000, 1_000_000]),
        max_volatility_accumulator=rng.choice([150_000, 350_000]),
        filter_period=rng.choice([0, 10, 30]),
        decay_period=600,
        reduction_factor=rng.choice([0, 5_000, 10_000]),
    )
    active = rng.randint(-3_000, 3_000)
    min_id, bins = make_bins(
        active, bin_step, rng.randint(0, 40), rng.randint(1, 10**12), rng.choice(list(Shape))
    )
    state = DlmmState(active_id=active, min_id=min_id, bins=bins, index_reference=active)
    return DlmmPool(
        id="random-dlmm",
        venue=Venue.METEORA,
        token_a="SOL",
        token_b="USDC",
        params=params,
        initial=state,
    )


def check_swap(
    pool: Pool, before: PoolState, input_token: str, amount_in: int, now: int
) -> PoolState:
    """Swaps and checks that exactly what the swap says moved; returns the state after."""
    try:
        swap = quote(pool, before, input_token, amount_in, now)
    except OutOfLiquidityError:
        return before  # refused: nothing moves
    held_a, held_b = balances(pool, before)
    after_a, after_b = balances(pool, swap.state)
    sells_a = input_token == pool.token_a
    assert swap.amount_in == amount_in
    assert 0 <= swap.fee <= amount_in and swap.amount_out >= 0
    # The pool gains exactly what the trader pays, loses exactly what the trader gets.
    if sells_a:
        assert (after_a - held_a, after_b - held_b) == (amount_in, -swap.amount_out)
    else:
        assert (after_a - held_a, after_b - held_b) == (-swap.amount_out, amount_in)
    if isinstance(before, Reserves):
        assert isinstance(swap.state, Reserves) and isinstance(pool, CpmmPool)
        after = swap.state
        # k of the reserves the curve prices on never falls
        assert after.reserve_a * after.reserve_b >= before.reserve_a * before.reserve_b
        assert swap.fee * FEE_DENOMINATOR >= amount_in * pool.fee_rate  # the fee rounds up
        # Fees counted apart only grow, and never exceed what the vault holds.
        assert all(now >= then for now, then in zip(after[2:], before[2:], strict=True))
        assert 0 <= after.reserve_a <= after.a and 0 <= after.reserve_b <= after.b
    else:
        assert isinstance(swap.state, DlmmState) and isinstance(pool, DlmmPool)
        state = swap.state
        assert all(b.x >= 0 and b.y >= 0 for b in state.bins)
        # The bins take the input less the fee, which waits beside them.
        fee_x, fee_y = state.fee_x - before.fee_x, state.fee_y - before.fee_y
        assert (fee_x, fee_y) == ((swap.fee, 0) if sells_a else (0, swap.fee))
        # Below the active bin only Y, above it only X.
        assert all(b.x == 0 for i, b in state.items() if i < state.active_id)
        assert all(b.y == 0 for i, b in state.items() if i > state.active_id)
        assert state.min_id <= state.active_id <= state.max_id
        assert 0 <= state.volatility_accumulator <= pool.params.max_volatility_accumulator
        assert state.last_update == now
    return swap.state


def test_cpmm_swaps_conserve_tokens_and_never_lower_k() -> None:
    rng = random.Random(42)
    for _ in range(3_000):
        pool = replace(
            cpmm(
                rng.choice([0, 50, 100, 2_000, 2_500, 10_000]),
                rng.randint(1, 10 ** rng.randint(1, 18)),
                rng.randint(1, 10 ** rng.randint(1, 18)),
            ),
            protocol_fee_rate=rng.choice([0, 120_000]),
            fund_fee_rate=rng.choice([0, 40_000]),
            creator_fee_rate=rng.choice([0, 0, 500, 9_000]),
            creator_fee_on=rng.choice(list(CreatorFeeOn)),
        )
        state: PoolState = pool.initial_state()
        for _ in range(3):
            src = rng.choice([pool.token_a, pool.token_b])
            state = check_swap(pool, state, src, rng.randint(1, 10 ** rng.randint(1, 18)), NOW)
        assert isinstance(state, Reserves) and state.a > 0 and state.b > 0


def test_dlmm_swaps_conserve_tokens_and_never_empty_a_bin_below_zero() -> None:
    rng = random.Random(7)
    refused = 0
    for _ in range(150):
        pool = random_dlmm(rng)
        state: PoolState = pool.initial_state()
        now = NOW
        for _ in range(20):
            now += rng.choice([0, 1, 5, 40, 700])
            src = rng.choice([pool.token_a, pool.token_b])
            held = balances(pool, state)[0 if src == pool.token_b else 1]
            amount = rng.randint(1, max(1, held * rng.choice([1, 10, 100, 1_000]) // 1_000))
            after = check_swap(pool, state, src, amount, now)
            refused += after is state
            state = after
    assert refused  # some swaps were larger than the bins: refused, nothing moved


def test_a_swap_larger_than_every_bin_is_refused_and_a_swap_of_all_but_one_fills() -> None:
    pool = HAND_COMPUTED["dlmm crossing bins"].pool
    with pytest.raises(OutOfLiquidityError):
        quote(pool, pool.initial_state(), "SOL", 10**12, NOW)
    assert quote(pool, pool.initial_state(), "SOL", 1_000_000, NOW).amount_out > 0


def test_no_round_trip_makes_money() -> None:
    rng = random.Random(3)
    pools: list[Pool] = [*all_pools().values(), cpmm(100), cpmm(10_000)]
    for pool in pools:
        state = pool.initial_state()
        for _ in range(20):
            sell_a = rng.randrange(2) == 0
            src, dst = (pool.token_a, pool.token_b) if sell_a else (pool.token_b, pool.token_a)
            held = balances(pool, state)[1 if sell_a else 0]
            amount = rng.randint(1, max(1, held // 500))
            there = quote(pool, state, src, amount, NOW)
            if there.amount_out == 0:
                continue
            back = quote(pool, there.state, dst, there.amount_out, NOW)
            assert back.amount_out <= amount, pool.id
            state = there.state


def test_bin_ids_stay_within_meteoras_range() -> None:
    for pool in all_pools().values():
        if isinstance(pool, DlmmPool):
            assert pool.initial.min_id >= -MAX_BIN_ID and pool.initial.max_id <= MAX_BIN_ID
