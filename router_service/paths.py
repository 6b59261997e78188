"""Where a swap can go: every path of one pool (a direct swap) or of two
pools through an intermediate token (JUP -> SOL -> USDC). A path is priced
by running its pools' own ``quote`` in order, so it costs what the chain
would charge for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from orderengine.market.base import OutOfLiquidityError, Swap
from orderengine.market.dlmm import FEE_PRECISION, MAX_FEE_RATE, DlmmParams, DlmmState
from orderengine.market.pools import (
    FEE_DENOMINATOR,
    CpmmPool,
    DlmmPool,
    Pool,
    PoolState,
    Venue,
    balances,
    quote,
    spot_price,
)


@dataclass(frozen=True, eq=False)
class Hop:
    """One pool, swapped in one direction."""

    pool: Pool
    input_token: str
    output_token: str


@dataclass(frozen=True, eq=False)
class Path:
    """One pool, or two through an intermediate token."""

    hops: tuple[Hop, ...]
    pool_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # The venue every hop is on; None when the hops are on different venues.
    venue: Venue | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_ids", tuple(h.pool.id for h in self.hops))
        venues = {h.pool.venue for h in self.hops}
        object.__setattr__(self, "venue", venues.pop() if len(venues) == 1 else None)

    def __eq__(self, other: object) -> bool:
        # By pools and direction: comparing the pools themselves would
        # compare their bins.
        return isinstance(other, Path) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple[tuple[str, str, str], ...]:
        return tuple((h.pool.id, h.input_token, h.output_token) for h in self.hops)

    @property
    def via(self) -> str | None:
        """The intermediate token of a two-hop path."""
        return self.hops[0].output_token if len(self.hops) > 1 else None

    @property
    def name(self) -> str:
        """The pools, first hop first: ``raydium-jup-sol>raydium-sol-usdc``."""
        return ">".join(self.pool_ids)


def find_paths(input_token: str, output_token: str, pools: Iterable[Pool]) -> list[Path]:
    """Direct paths first, then two-hop paths, each in pool-id order, so the
    same market always gives the same paths in the same order."""
    pools = sorted(pools, key=lambda p: p.id)
    direct = [
        Path((Hop(p, input_token, output_token),))
        for p in pools
        if p.trades(input_token, output_token)
    ]
    others = {t for p in pools for t in (p.token_a, p.token_b)} - {input_token, output_token}
    two_hop = [
        Path((Hop(first, input_token, via), Hop(second, via, output_token)))
        for via in sorted(others)
        for first in pools
        if first.trades(input_token, via)
        for second in pools
        if second.trades(via, output_token)
    ]
    return direct + two_hop


def pool_ids_of(paths: Iterable[Path]) -> list[str]:
    """Every pool the paths use, once each, in the order met."""
    return list(dict.fromkeys(pid for path in paths for pid in path.pool_ids))


@dataclass(frozen=True)
class PathFill:
    path: Path
    amount_in: int
    amount_out: int
    # One swap per hop, in order: its amounts, fee and the pool after it.
    swaps: tuple[Swap[PoolState], ...]


def fill_paths(
    paths: Iterable[Path], states: Mapping[str, PoolState], amount_in: int, now: int
) -> list[PathFill]:
    """The whole amount down each path, as apply_route would swap it on the
    path's legs; a path is left out when a pool cannot fill it or a hop
    would pass nothing on (a pool cannot swap zero). Paths that begin with
    the same pool share its quote."""
    memo: dict[tuple[str, int], Swap[PoolState] | None] = {}
    fills = []
    for path in paths:
        swaps = []
        amount = amount_in
        for hop in path.hops:
            if amount <= 0:
                break
            key = (hop.pool.id, amount)
            if key not in memo:
                try:
                    memo[key] = quote(hop.pool, states[hop.pool.id], hop.input_token, amount, now)
                except OutOfLiquidityError:
                    memo[key] = None
            swap = memo[key]
            if swap is None:
                break
            swaps.append(swap)
            amount = swap.amount_out
        else:
            fills.append(PathFill(path, amount_in, amount, tuple(swaps)))
    return fills


def path_spot(path: Path, states: Mapping[str, PoolState]) -> Fraction:
    """Output base units per input base unit for an infinitesimal swap down
    the path, before fees."""
    rate = Fraction(1)
    for hop in path.hops:
        rate *= spot_price(hop.pool, states[hop.pool.id], hop.input_token)
    return rate


def least_fee(pool: Pool) -> Fraction:
    """The smallest fee rate the pool ever charges: Raydium's tier, Meteora's
    base fee (its variable fee only adds)."""
    if isinstance(pool, CpmmPool):
        return Fraction(pool.fee_rate, FEE_DENOMINATOR)
    if isinstance(pool, DlmmPool):  # the total is capped (at 10%), even below the base
        return Fraction(min(pool.params.base_fee_rate(), MAX_FEE_RATE), FEE_PRECISION)
    raise TypeError(f"pool {pool.id} is {type(pool).__name__}")


def rate_ceiling(hop: Hop, state: PoolState) -> Fraction:
    """No swap on the hop gives more per unit in than this: the spot price
    after the least fee. (The fee rounds up and the output down, and every
    further unit meets a price no better, so it bounds the integer pools
    too.) It is also the pool's marginal rate at zero, or above it."""
    pool = hop.pool
    fees = pool.fee_rate if isinstance(pool, CpmmPool) else pool.params
    kept = _KEPT.get(fees)
    if kept is None:
        kept = _KEPT[fees] = 1 - least_fee(pool)
    return spot_price(pool, state, hop.input_token) * kept


# What the least fee leaves of a unit, by the fields least_fee reads: asked
# for every pool of every quote, and pools share a few fee tiers.
_KEPT: dict[int | DlmmParams, Fraction] = {}


def surely_takes(hop: Hop, state: PoolState, amount: int) -> bool:
    """True when the hop's pool can take ``amount`` for sure, without
    swapping it: a constant-product pool takes any amount; a DLMM pool does
    when even at its best rate (``rate_ceiling``) the amount buys less than
    its bins hold of the output token. False means: swap it to know."""
    pool = hop.pool
    if isinstance(pool, CpmmPool):
        return True
    a, b = balances(pool, state)  # the bins and the fees beside them
    assert isinstance(state, DlmmState)
    held = b - state.fee_y if pool.sells_a(hop.input_token) else a - state.fee_x
    return amount * rate_ceiling(hop, state) < held
