"""Constant-product (x*y=k) pools as Raydium's CPMM and AMM v4 run them: the
fee is taken from the input first and rounds up, the output rounds down, so
k never falls. The fee stays in the pool (it is the LPs')."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from orderengine.market.base import PoolBase, Swap, ceil_div

# fee_rate is in millionths of the input: 2_500 = 0.25%, Raydium's standard
# tier; 100 (0.01%) and 10_000 (1%) are tiers too.
FEE_DENOMINATOR = 1_000_000


@dataclass(frozen=True)
class SwapResult:
    amount_out: int
    fee: int


@dataclass(frozen=True)
class Reserves:
    """A CPMM pool's whole state: its two reserves, in base units."""

    a: int
    b: int


def swap_exact_in(reserve_in: int, reserve_out: int, amount_in: int, fee_rate: int) -> SwapResult:
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return SwapResult(0, 0)
    fee = ceil_div(amount_in * fee_rate, FEE_DENOMINATOR)
    net = amount_in - fee
    out = reserve_out - ceil_div(reserve_in * reserve_out, reserve_in + net)
    return SwapResult(max(out, 0), fee)


@dataclass(frozen=True)
class CpmmPool(PoolBase[Reserves]):
    # Reserves the pool starts with, in base units.
    initial_a: int
    initial_b: int
    # Millionths of the input taken as the fee.
    fee_rate: int

    def initial_state(self) -> Reserves:
        return Reserves(self.initial_a, self.initial_b)

    def quote(self, state: Reserves, input_token: str, amount_in: int, now: int) -> Swap[Reserves]:
        # A constant-product pool has no clock: ``now`` is for the interface.
        if amount_in <= 0:
            raise ValueError(f"amount_in must be positive, got {amount_in}")
        sells_a = self.sells_a(input_token)
        reserve_in, reserve_out = (state.a, state.b) if sells_a else (state.b, state.a)
        # swap_exact_in, inlined: the router quotes a pool hundreds of times a route.
        if reserve_in <= 0 or reserve_out <= 0:
            out = fee = 0
        else:
            fee = -(-(amount_in * self.fee_rate) // FEE_DENOMINATOR)
            out = reserve_out + (reserve_in * reserve_out) // -(reserve_in + amount_in - fee)
            if out < 0:
                out = 0
        after = (
            Reserves(state.a + amount_in, state.b - out)
            if sells_a
            else Reserves(state.a - out, state.b + amount_in)
        )
        return Swap(amount_in, out, fee, after)

    def spot_price(self, state: Reserves, input_token: str) -> Fraction:
        if self.sells_a(input_token):
            return Fraction(state.b, state.a)
        return Fraction(state.a, state.b)

    def balances(self, state: Reserves) -> tuple[int, int]:
        return state.a, state.b
