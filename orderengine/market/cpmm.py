"""Constant-product (x*y=k) pools as Raydium's CPMM program runs them
(raydium-io/raydium-cp-swap: curve/fees.rs, curve/calculator.rs,
states/pool.rs, instructions/swap_base_input.rs).

- The trade fee is taken from the input first and rounds up; the output
  rounds down: ``out = floor(net * y / (x + net))``, so k never falls.
- Of each trade fee, the protocol's share (``protocol_fee_rate``, 12% on
  Raydium's configs) and the fund's (``fund_fee_rate``, 4%) round down and
  are not the liquidity providers': they stay in the vault, counted apart
  (``protocol_fees_token_0`` ...), until collected. The rest of the fee is
  the LPs' and stays in the reserves.
- A pool may set a creator fee. Taken on the input (with the trade fee, as
  one fee that is then split) or on the output (off what the curve pays,
  rounding up), as the pool's ``creator_fee_on`` says; it too waits in the
  vault, counted apart.
- The curve prices on the trading reserves: each vault less the fees
  counted apart in it (the program's ``vault_amount_without_fee``).

The program collects nothing by itself, so neither do we: accrued fees only
grow."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import NamedTuple

from orderengine.market.base import PoolBase, Swap, ceil_div

# Rates are in millionths: fee_rate 2_500 = 0.25% of the input, Raydium's
# standard tier (100 = 0.01% and 10_000 = 1% are tiers too);
# protocol_fee_rate 120_000 = 12% of that fee.
FEE_DENOMINATOR = 1_000_000


class CreatorFeeOn(StrEnum):
    """Which token a pool's creator fee is taken in (Raydium's CreatorFeeOn)."""

    # Always the input: with the trade fee, off what the trader pays.
    BOTH = "both"
    # Always token_a (token_b): off the input when it is token_a, else off
    # the output.
    TOKEN_A = "token_a"
    TOKEN_B = "token_b"

    def on_input(self, sells_a: bool) -> bool:
        """The program's is_creator_fee_on_input for a swap in that direction."""
        if self is CreatorFeeOn.BOTH:
            return True
        return sells_a == (self is CreatorFeeOn.TOKEN_A)


@dataclass(frozen=True)
class SwapResult:
    """CurveCalculator::swap_base_input's result, in base units."""

    # What reaches the trader (after a creator fee taken on the output).
    amount_out: int
    # Kept of the input: the trade fee, and the creator fee when it is taken there.
    fee: int
    # The trade fee's shares counted apart, in the input token.
    protocol_fee: int = 0
    fund_fee: int = 0
    # In the input token or in the output token, as the pool's creator_fee_on says.
    creator_fee: int = 0


def swap_exact_in(
    reserve_in: int,
    reserve_out: int,
    amount_in: int,
    fee_rate: int,
    protocol_fee_rate: int = 0,
    fund_fee_rate: int = 0,
    creator_fee_rate: int = 0,
    creator_fee_on_input: bool = True,
) -> SwapResult:
    """The program's swap_base_input on trading reserves, one step at a time:
    what CpmmPool.quote does inlined (tests hold the two together)."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return SwapResult(0, 0)
    creator_fee = 0
    if creator_fee_on_input:
        total_rate = fee_rate + creator_fee_rate
        total_fee = ceil_div(amount_in * total_rate, FEE_DENOMINATOR)  # Fees::trading_fee
        if total_rate:  # Fees::split_creator_fee, rounding down
            creator_fee = total_fee * creator_fee_rate // total_rate
        trade_fee = total_fee - creator_fee
        net = amount_in - total_fee
    else:
        trade_fee = ceil_div(amount_in * fee_rate, FEE_DENOMINATOR)
        net = amount_in - trade_fee
    protocol_fee = trade_fee * protocol_fee_rate // FEE_DENOMINATOR  # Fees::protocol_fee
    fund_fee = trade_fee * fund_fee_rate // FEE_DENOMINATOR  # Fees::fund_fee
    # ConstantProductCurve::swap_base_input_without_fees
    swapped = net * reserve_out // (reserve_in + net)
    if creator_fee_on_input:
        return SwapResult(swapped, trade_fee + creator_fee, protocol_fee, fund_fee, creator_fee)
    creator_fee = ceil_div(swapped * creator_fee_rate, FEE_DENOMINATOR)  # Fees::creator_fee
    return SwapResult(swapped - creator_fee, trade_fee, protocol_fee, fund_fee, creator_fee)


class Reserves(NamedTuple):
    """A CPMM pool's whole state, in base units: its two vaults (``a``,
    ``b``: all it holds of token_a and token_b) and, per token, the fees in
    them counted apart from the trading reserves (the program's
    protocol_fees_token_0, fund_fees_token_0, creator_fees_token_0 ...).
    A tuple rather than a dataclass: every quote makes one, and a tuple of
    eight is made four times faster."""

    a: int
    b: int
    protocol_fee_a: int = 0
    protocol_fee_b: int = 0
    fund_fee_a: int = 0
    fund_fee_b: int = 0
    creator_fee_a: int = 0
    creator_fee_b: int = 0

    @property
    def reserve_a(self) -> int:
        """What the curve prices with: the vault less the fees counted apart."""
        return self.a - self.protocol_fee_a - self.fund_fee_a - self.creator_fee_a

    @property
    def reserve_b(self) -> int:
        return self.b - self.protocol_fee_b - self.fund_fee_b - self.creator_fee_b


@dataclass(frozen=True)
class CpmmPool(PoolBase[Reserves]):
    # Reserves the pool starts with, in base units (no fees accrued yet).
    initial_a: int
    initial_b: int
    # Millionths of the input taken as the trade fee (the LPs' and the shares below).
    fee_rate: int
    # Millionths of the trade fee counted apart for the protocol and the fund.
    protocol_fee_rate: int = 0
    fund_fee_rate: int = 0
    # Millionths taken for the pool's creator (0: the pool sets none).
    creator_fee_rate: int = 0
    creator_fee_on: CreatorFeeOn = CreatorFeeOn.BOTH

    def __post_init__(self) -> None:
        # The checks of the program's create_amm_config.
        rates = {
            "fee_rate": self.fee_rate,
            "protocol_fee_rate": self.protocol_fee_rate,
            "fund_fee_rate": self.fund_fee_rate,
            "creator_fee_rate": self.creator_fee_rate,
        }
        for name, rate in rates.items():
            if not 0 <= rate <= FEE_DENOMINATOR:
                raise ValueError(
                    f"pool {self.id!r}: {name} must be 0..{FEE_DENOMINATOR}, got {rate}"
                )
        if self.fee_rate + self.creator_fee_rate >= FEE_DENOMINATOR:
            raise ValueError(f"pool {self.id!r}: fee_rate + creator_fee_rate must be below 100%")
        if self.protocol_fee_rate + self.fund_fee_rate > FEE_DENOMINATOR:
            raise ValueError(f"pool {self.id!r}: protocol_fee_rate + fund_fee_rate exceed 100%")

    def initial_state(self) -> Reserves:
        return Reserves(self.initial_a, self.initial_b)

    def quote(self, state: Reserves, input_token: str, amount_in: int, now: int) -> Swap[Reserves]:
        # A constant-product pool has no clock: ``now`` is for the interface.
        if amount_in <= 0:
            raise ValueError(f"amount_in must be positive, got {amount_in}")
        sells_a = self.sells_a(input_token)
        # swap_exact_in, inlined: the router quotes a pool hundreds of times a route.
        a, b, protocol_a, protocol_b, fund_a, fund_b, creator_a, creator_b = state
        if sells_a:
            reserve_in = a - protocol_a - fund_a - creator_a
            reserve_out = b - protocol_b - fund_b - creator_b
        else:
            reserve_in = b - protocol_b - fund_b - creator_b
            reserve_out = a - protocol_a - fund_a - creator_a
        creator_rate = self.creator_fee_rate
        creator_on_input = creator_rate == 0 or self.creator_fee_on.on_input(sells_a)
        if reserve_in <= 0 or reserve_out <= 0:
            out = fee = trade_fee = creator_fee = 0  # nothing to trade against
        elif creator_on_input:
            rate = self.fee_rate + creator_rate
            fee = -(-(amount_in * rate) // FEE_DENOMINATOR)
            creator_fee = fee * creator_rate // rate if creator_rate else 0
            trade_fee = fee - creator_fee
            net = amount_in - fee
            out = net * reserve_out // (reserve_in + net)
        else:
            fee = trade_fee = -(-(amount_in * self.fee_rate) // FEE_DENOMINATOR)
            net = amount_in - fee
            swapped = net * reserve_out // (reserve_in + net)
            creator_fee = -(-(swapped * creator_rate) // FEE_DENOMINATOR)
            out = swapped - creator_fee
        protocol_fee = trade_fee * self.protocol_fee_rate // FEE_DENOMINATOR
        fund_fee = trade_fee * self.fund_fee_rate // FEE_DENOMINATOR
        creator_in, creator_out = (creator_fee, 0) if creator_on_input else (0, creator_fee)
        if sells_a:
            after = Reserves(
                a + amount_in,
                b - out,
                protocol_a + protocol_fee,
                protocol_b,
                fund_a + fund_fee,
                fund_b,
                creator_a + creator_in,
                creator_b + creator_out,
            )
        else:
            after = Reserves(
                a - out,
                b + amount_in,
                protocol_a,
                protocol_b + protocol_fee,
                fund_a,
                fund_b + fund_fee,
                creator_a + creator_out,
                creator_b + creator_in,
            )
        return Swap(amount_in, out, fee, after)

    def spot_price(self, state: Reserves, input_token: str) -> Fraction:
        if self.sells_a(input_token):
            return Fraction(state.reserve_b, state.reserve_a)
        return Fraction(state.reserve_a, state.reserve_b)

    def balances(self, state: Reserves) -> tuple[int, int]:
        return state.a, state.b
