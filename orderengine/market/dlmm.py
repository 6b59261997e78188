"""Meteora DLMM pools: liquidity in discrete price bins, with the arithmetic of
Meteora's lb_clmm program (MeteoraAg/dlmm-sdk, commons/: price_math.rs,
u64x64_math.rs, extensions/bin.rs and lb_pair.rs), as they were before the
SDK's 0.12 (docs/market.md says why and where 0.12 differs). Long on
purpose: it follows those modules function by function, to be compared line
for line.

- Token X is the pool's token_a, token Y its token_b. The price of bin ``i``
  is Y base units per X base unit, ``(1 + bin_step/10_000)^i`` held as a
  Q64.64 integer computed exactly as Meteora's ``pow`` does it (so it rounds
  where theirs rounds).
- Inside a bin the curve is constant-sum: ``out = in_after_fee * price``
  (rounded down), capped by what the bin holds of the output token. A swap
  that empties the bin moves the active bin one step (down when selling X,
  up when selling Y) and goes on there.
- The fee is taken on the input in each bin, in 1e9 precision: base
  ``base_factor * bin_step * 10 * 10^power_factor`` plus variable
  ``ceil(variable_fee_control * (volatility_accumulator * bin_step)^2 / 1e11)``,
  capped at 10%. A bin that is emptied charges ``ceil(max_in * rate / (1e9 - rate))``
  on top of what it takes; a swap that ends inside a bin pays
  ``ceil(amount * rate / 1e9)`` out of its amount.
- As in Meteora, the fee does not go into the bin: it is the liquidity
  providers' and waits beside the bins (``fee_x``, ``fee_y``) to be claimed.
  There is no protocol share here, so every unit a trader pays stays in the
  pool's vaults.
- The volatility accumulator is ``volatility_reference + |index_reference -
  active_id| * 10_000`` (capped), recomputed in every bin a swap visits, so
  crossing bins raises the fee. At the start of a swap, if ``filter_period``
  seconds passed since the last one the index reference moves to the active
  bin and the volatility reference decays to ``accumulator * reduction_factor
  / 10_000``, or to 0 after ``decay_period``.
- A swap the bins cannot fill is refused (Meteora's PoolOutOfLiquidity).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from fractions import Fraction

from orderengine.market.base import OutOfLiquidityError, PoolBase, Swap, ceil_div

BASIS_POINT_MAX = 10_000
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000  # 10% in FEE_PRECISION
SCALE_OFFSET = 64
ONE = 1 << SCALE_OFFSET  # 1.0 in Q64.64
U128_MAX = (1 << 128) - 1
# (1 + 0.0001)^n < 2^64 gives n < 443_636: Meteora's bin id range.
MAX_BIN_ID = 443_636
MIN_BIN_ID = -MAX_BIN_ID
_MAX_EXPONENTIAL = 0x80000


# -- prices --------------------------------------------------------------------


def _pow_q64(base: int, exp: int) -> int:
    """Meteora's ``pow``: base^exp in Q64.64 by squaring, inverting the base
    first (u128::MAX / base) so that every product stays within 128 bits."""
    if exp == 0:
        return ONE
    invert = exp < 0
    exp = abs(exp)
    if exp >= _MAX_EXPONENTIAL:
        raise OverflowError(f"bin id {exp} is beyond Q64.64")
    squared = base
    result = ONE
    if squared >= result:
        squared = U128_MAX // squared
        invert = not invert
    bit = 1
    while bit < _MAX_EXPONENTIAL:
        if exp & bit:
            result = (result * squared) >> SCALE_OFFSET
        bit <<= 1
        if bit < _MAX_EXPONENTIAL:
            squared = (squared * squared) >> SCALE_OFFSET
    if result == 0:
        raise OverflowError("price underflows Q64.64")
    return U128_MAX // result if invert else result


@functools.lru_cache(maxsize=65_536)
def price_from_id(bin_id: int, bin_step: int) -> int:
    """The bin's price, Y base units per X base unit, in Q64.64. Pure, and a
    quarter of a split route's time: remembered per (bin, step)."""
    base = ONE + (bin_step << SCALE_OFFSET) // BASIS_POINT_MAX
    return _pow_q64(base, bin_id)


def bin_id_for_price(price: Fraction, bin_step: int) -> int:
    """The bin whose price is nearest ``price`` (Y base units per X base unit)."""
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    target = price * ONE

    def below(bin_id: int) -> bool:
        return price_from_id(bin_id, bin_step) < target

    # Prices grow with the id: bracket the target, lo < target <= hi, by
    # doubling away from bin 0, then halve the bracket.
    if below(0):
        lo, hi = 0, 1
        while below(hi):
            lo, hi = hi, hi * 2
    else:
        lo, hi = -1, 0
        while not below(lo):
            lo, hi = lo * 2, lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if price_from_id(mid, bin_step) < target:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda i: abs(price_from_id(i, bin_step) - target))


def _amount_out(amount_in: int, price: int, swap_for_y: bool) -> int:
    """Meteora's get_amount_out, rounding down."""
    if swap_for_y:
        return (amount_in * price) >> SCALE_OFFSET
    return (amount_in << SCALE_OFFSET) // price


def _max_amount_in(bin_: Bin, price: int, swap_for_y: bool) -> int:
    """What empties the bin of the output token, before the fee, rounding up."""
    if swap_for_y:
        return ceil_div(bin_.y << SCALE_OFFSET, price)
    return ceil_div(bin_.x * price, ONE)


# -- parameters and fees -----------------------------------------------------------


@dataclass(frozen=True)
class DlmmParams:
    bin_step: int  # basis points between neighbouring bins' prices
    base_factor: int
    base_fee_power_factor: int
    variable_fee_control: int
    max_volatility_accumulator: int
    filter_period: int  # seconds
    decay_period: int  # seconds
    reduction_factor: int  # basis points

    def base_fee_rate(self) -> int:
        return self.base_factor * self.bin_step * 10 * 10**self.base_fee_power_factor

    def variable_fee_rate(self, volatility_accumulator: int) -> int:
        square = (volatility_accumulator * self.bin_step) ** 2
        return ceil_div(self.variable_fee_control * square, 100_000_000_000)

    def total_fee_rate(self, volatility_accumulator: int) -> int:
        """In FEE_PRECISION (1e9 = 100%), capped at 10%."""
        return min(
            self.base_fee_rate() + self.variable_fee_rate(volatility_accumulator), MAX_FEE_RATE
        )


def fee_on_top(amount: int, fee_rate: int) -> int:
    """Meteora's compute_fee: the fee to add to ``amount`` so that, taken from
    the sum at ``fee_rate``, it leaves ``amount``."""
    return ceil_div(amount * fee_rate, FEE_PRECISION - fee_rate)


def fee_included(amount_with_fee: int, fee_rate: int) -> int:
    """Meteora's compute_fee_from_amount: the fee inside ``amount_with_fee``."""
    return ceil_div(amount_with_fee * fee_rate, FEE_PRECISION)


# -- state ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    x: int  # token X (token_a) base units
    y: int  # token Y (token_b) base units

    def filled(self, amount_in: int, amount_out: int, swap_for_y: bool) -> Bin:
        """The bin once a swap put ``amount_in`` (its fee excluded) in and
        took ``amount_out`` out."""
        if swap_for_y:
            return Bin(self.x + amount_in, self.y - amount_out)
        return Bin(self.x - amount_out, self.y + amount_in)


@dataclass(frozen=True)
class DlmmState:
    """A DLMM pool's whole state: its bins, the active one, its volatility
    and the fees waiting for liquidity providers."""

    active_id: int
    # bins[k] is bin min_id + k; outside them there is no liquidity.
    min_id: int
    bins: tuple[Bin, ...]
    volatility_accumulator: int = 0
    volatility_reference: int = 0
    index_reference: int = 0
    last_update: int = 0  # unix seconds of the last swap
    fee_x: int = 0
    fee_y: int = 0

    @property
    def max_id(self) -> int:
        return self.min_id + len(self.bins) - 1

    def bin(self, bin_id: int) -> Bin:
        if not self.min_id <= bin_id <= self.max_id:
            return Bin(0, 0)
        return self.bins[bin_id - self.min_id]

    def items(self) -> Iterator[tuple[int, Bin]]:
        for k, b in enumerate(self.bins):
            yield self.min_id + k, b

    def fees_with(self, fee: int, swap_for_y: bool) -> tuple[int, int]:
        """(fee_x, fee_y) once a swap's fee is added: fees are paid in the input token."""
        if swap_for_y:
            return self.fee_x + fee, self.fee_y
        return self.fee_x, self.fee_y + fee

    def balances(self) -> tuple[int, int]:
        """The vaults: every bin plus the fees. A state never changes, and
        every leg of a route checks its pool's: summed once per state."""
        cached: tuple[int, int] | None = self.__dict__.get("_balances")
        if cached is None:
            cached = (
                sum(b.x for b in self.bins) + self.fee_x,
                sum(b.y for b in self.bins) + self.fee_y,
            )
            self.__dict__["_balances"] = cached
        return cached


def update_references(params: DlmmParams, state: DlmmState, now: int) -> DlmmState:
    """Meteora's update_references, at the start of every swap."""
    elapsed = now - state.last_update
    if elapsed < params.filter_period:
        return state  # high-frequency trading: the references hold
    if elapsed < params.decay_period:
        reference = state.volatility_accumulator * params.reduction_factor // BASIS_POINT_MAX
    else:
        reference = 0
    return replace(state, index_reference=state.active_id, volatility_reference=reference)


def volatility_at(params: DlmmParams, state: DlmmState, active_id: int) -> int:
    """Meteora's update_volatility_accumulator, for the bin a swap is in."""
    delta = abs(state.index_reference - active_id)
    return min(
        state.volatility_reference + delta * BASIS_POINT_MAX, params.max_volatility_accumulator
    )


def swap_exact_in(
    params: DlmmParams, state: DlmmState, swap_for_y: bool, amount_in: int, now: int
) -> Swap[DlmmState]:
    """Swaps ``amount_in`` of X for Y (``swap_for_y``) or of Y for X, walking
    bins from the active one. The state passed in is not changed."""
    if amount_in <= 0:
        raise ValueError(f"amount_in must be positive, got {amount_in}")
    # update_references and volatility_at inlined: the router runs this
    # hundreds of times a quote.
    index_reference, volatility_reference = state.index_reference, state.volatility_reference
    elapsed = now - state.last_update
    if elapsed >= params.filter_period:
        index_reference = state.active_id
        volatility_reference = (
            state.volatility_accumulator * params.reduction_factor // BASIS_POINT_MAX
            if elapsed < params.decay_period
            else 0
        )
    bins = list(state.bins)
    min_id = state.min_id
    max_id = min_id + len(bins) - 1
    active = state.active_id
    bin_step = params.bin_step
    base_fee = params.base_fee_rate()
    variable_fee_control = params.variable_fee_control
    max_volatility = params.max_volatility_accumulator
    left, total_out, total_fee = amount_in, 0, 0
    volatility = state.volatility_accumulator
    while True:
        volatility = min(
            volatility_reference + abs(index_reference - active) * BASIS_POINT_MAX, max_volatility
        )
        k = active - min_id
        bin_ = bins[k]
        reserve_out = bin_.y if swap_for_y else bin_.x
        if reserve_out > 0:
            price = price_from_id(active, bin_step)
            square = (volatility * bin_step) ** 2
            rate = min(base_fee - (-variable_fee_control * square // 100_000_000_000), MAX_FEE_RATE)
            if swap_for_y:
                max_in = -(-(reserve_out << SCALE_OFFSET) // price)
            else:
                max_in = -(-(reserve_out * price) // ONE)
            max_fee = -(-(max_in * rate) // (FEE_PRECISION - rate))
            if left > max_in + max_fee:
                taken, out, fee = max_in + max_fee, reserve_out, max_fee
            else:
                fee = -(-(left * rate) // FEE_PRECISION)
                if swap_for_y:
                    out = ((left - fee) * price) >> SCALE_OFFSET
                else:
                    out = ((left - fee) << SCALE_OFFSET) // price
                if out > reserve_out:
                    out = reserve_out
                taken = left
            bins[k] = bin_.filled(taken - fee, out, swap_for_y)
            left -= taken
            total_out += out
            total_fee += fee
        if left == 0:
            break
        active += -1 if swap_for_y else 1
        if not min_id <= active <= max_id:
            raise OutOfLiquidityError(
                f"the bins hold too little {'Y' if swap_for_y else 'X'}: "
                f"{left} of {amount_in} would be left over"
            )
    fee_x, fee_y = state.fees_with(total_fee, swap_for_y)
    after = DlmmState(
        active,
        min_id,
        tuple(bins),
        volatility,
        volatility_reference,
        index_reference,
        now,
        fee_x,
        fee_y,
    )
    # The vaults gain the whole input (bins and fees) and lose the output:
    # known without summing the bins again.
    vault_x, vault_y = state.balances()
    after.__dict__["_balances"] = (
        (vault_x + amount_in, vault_y - total_out)
        if swap_for_y
        else (vault_x - total_out, vault_y + amount_in)
    )
    return Swap(amount_in, total_out, total_fee, after)


# -- liquidity from a few numbers ----------------------------------------------------


class Shape(StrEnum):
    """How liquidity spreads over the bins, as Meteora's position strategies."""

    SPOT = "spot"  # the same in every bin
    CURVE = "curve"  # most at the active bin, falling linearly to the edges


def make_bins(
    active_id: int, bin_step: int, bins_each_side: int, liquidity_per_bin: int, shape: Shape
) -> tuple[int, tuple[Bin, ...]]:
    """``liquidity_per_bin`` is Y base units of value in a full-weight bin:
    Y in the bins below the active one, X worth as much at each bin's price
    above it, half and half in the active bin. Returns (min_id, bins)."""
    if bins_each_side < 0 or liquidity_per_bin <= 0:
        raise ValueError("bins_each_side must be >= 0 and liquidity_per_bin > 0")
    bins = []
    for d in range(-bins_each_side, bins_each_side + 1):
        if shape is Shape.CURVE:
            weight = Fraction(bins_each_side + 1 - abs(d), bins_each_side + 1)
        else:
            weight = Fraction(1)
        value = int(liquidity_per_bin * weight)  # Y base units, rounded down
        price = price_from_id(active_id + d, bin_step)
        if d < 0:
            bins.append(Bin(0, value))
        elif d > 0:
            bins.append(Bin((value << SCALE_OFFSET) // price, 0))
        else:
            half = value // 2
            bins.append(Bin(((value - half) << SCALE_OFFSET) // price, half))
    return active_id - bins_each_side, tuple(bins)


# -- the pool --------------------------------------------------------------------


@dataclass(frozen=True)
class DlmmPool(PoolBase[DlmmState]):
    params: DlmmParams
    initial: DlmmState

    def initial_state(self) -> DlmmState:
        return self.initial

    def quote(
        self, state: DlmmState, input_token: str, amount_in: int, now: int
    ) -> Swap[DlmmState]:
        return swap_exact_in(self.params, state, self.sells_a(input_token), amount_in, now)

    def spot_price(self, state: DlmmState, input_token: str) -> Fraction:
        """The price of the first bin, from the active one on, that holds
        the output token."""
        swap_for_y = self.sells_a(input_token)
        step = -1 if swap_for_y else 1
        bin_id = state.active_id
        while state.min_id <= bin_id <= state.max_id:
            b = state.bin(bin_id)
            if (b.y if swap_for_y else b.x) > 0:
                break
            bin_id += step
        else:
            bin_id = state.active_id
        price = price_from_id(bin_id, self.params.bin_step)
        return Fraction(price, ONE) if swap_for_y else Fraction(ONE, price)

    def balances(self, state: DlmmState) -> tuple[int, int]:
        return state.balances()
