"""Dividing one input across several paths, when that gives more out than
any single path. Long on purpose: the greedy is one method, read as one.

The method: cut the input into equal chunks and hand them out one at a
time, each to the path whose next chunk gives the most, pricing every chunk
with the pools' own ``quote`` on the states the chunks before it left. A
pool on several paths (two two-hop paths through one first pool) sees every
chunk sent through it, in order, as the chain would.

Why that is near the optimum. A pool's output is concave in its input
(each further unit meets a price no better and a fee no lower), and so is a
path's (an increasing concave function of a concave one). For paths that
share no pool, handing out equal chunks greedily gives the best allocation
in whole chunks: every chunk handed out gave at least as much as any chunk
that was not, and by concavity no exchange of chunks between paths can then
gain. Against any allocation at all, what the grid loses is at most the sum
over paths of ``a - d``, ``a`` the last chunk's output and ``d`` the next
one's: how much each path's marginal output falls across a chunk (a
curvature term for a constant-product pool; a bin's price step where a
chunk crosses a bin edge of a DLMM pool). That is the price argument of
``router_service.bound``, which certifies any route against the best split
over all one- and two-hop paths, pools shared or not; the tests hold the
router to it and to brute force.

Coarse to fine, as scaling algorithms for concave allocation do (Hochbaum,
"Lower and upper bounds for the allocation problem and other nonlinear
optimization problems", Math. of OR 19(2), 1994): a first pass of
``first`` chunks, then passes with chunks ``factor`` times smaller that
start from what each path had less one chunk of the pass before (for
concave outputs the finer optimum gives every path at least that much), so
each pass hands out about ``factor`` chunks per path in use, not all of
them. With the defaults (passes of 10, 100 then 200 chunks) the split is
in half percents for one or two hundred quotes.

Long on purpose: the greedy is one method, read as one, from how a chunk
is priced and where a pool's capacity cuts one, through the lazy choice of
the next path and the passes, to the test that skips it all."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from orderengine.market.base import OutOfLiquidityError, Swap
from orderengine.market.pools import CpmmPool, PoolState, quote
from router_service.paths import Hop, Path, PathFill, rate_ceiling

# 0.5% a chunk in the end, reached in passes of 10, 100 and 200 chunks: a
# split in whole half percents, which share_bps spells (apply_route floors
# held * share / 10000). Finer grids cost more than they buy here: 1000
# chunks spend a good part of GetQuote's latency budget to shrink a
# certified gap of a few millionths of the output to a few ten-millionths.
DEFAULT_CHUNKS = 200
FIRST_CHUNKS = 10
REFINE_FACTOR = 10


class Piece(NamedTuple):
    """What a chunk more does on one pool: in, out, the fee, the pool after.
    A Swap but lighter: the greedy makes tens of thousands a second."""

    amount_in: int
    amount_out: int
    fee: int
    state: PoolState


class _Running:
    """The pools as chunks land on them, with every quote memoised by the
    pool's version: two paths through one pool price it once.

    A chunk must be priced as the route will swap it: each pool once, for
    all it is given. On a DLMM pool, swapping pieces one after another at one
    moment is that swap, but for the rounding (its volatility references
    hold between swaps less than ``filter_period`` apart), so a chunk is
    swapped on the pool as the chunks before it left it: a bin or two
    walked. A constant-product pool keeps the LPs' part of each swap's fee
    in its reserves, so it gives less for pieces than for their sum in one
    swap (2.2 bp less for 2,000 pieces of 2.7 million JUP) and the split
    would lean away from it; there a chunk is priced as one swap of all the
    pool was given so far and the chunk, on the state read, less what the
    pool gave so far."""

    def __init__(self, states: Mapping[str, PoolState], now: int) -> None:
        self.read = states
        self.states = dict(states)
        self.version = dict.fromkeys(states, 0)
        # Per constant-product pool: (input, output, fee) of all it was given.
        self.whole: dict[str, tuple[int, int, int]] = {}
        self.now = now
        self._memo: dict[tuple[str, int, str, int], Piece | Swap[PoolState] | None] = {}

    def swap(self, hop: Hop, amount: int) -> Piece | Swap[PoolState] | None:
        """What ``amount`` more gives on the hop's pool, and the pool after."""
        pool = hop.pool
        pool_id = pool.id
        key = (pool_id, self.version[pool_id], hop.input_token, amount)
        if key in self._memo:
            return self._memo[key]
        priced: Piece | Swap[PoolState] | None
        try:
            if isinstance(pool, CpmmPool):
                given, paid, fees = self.whole.get(pool_id, (0, 0, 0))
                whole = quote(pool, self.read[pool_id], hop.input_token, given + amount, self.now)
                priced = Piece(amount, whole.amount_out - paid, whole.fee - fees, whole.state)
            else:
                priced = quote(pool, self.states[pool_id], hop.input_token, amount, self.now)
        except OutOfLiquidityError:
            priced = None
        self._memo[key] = priced
        return priced

    def along(
        self, path: Path, amount: int
    ) -> tuple[int, tuple[Piece | Swap[PoolState], ...]] | None:
        """``amount`` down the path on the states now; None when it cannot go."""
        swaps = []
        for hop in path.hops:
            if amount <= 0:
                return None
            swap = self.swap(hop, amount)
            if swap is None:
                return None
            swaps.append(swap)
            amount = swap.amount_out
        return amount, tuple(swaps)

    def commit(self, path: Path, swaps: tuple[Piece | Swap[PoolState], ...]) -> None:
        for hop, swap in zip(path.hops, swaps, strict=True):
            pool_id = hop.pool.id
            self.states[pool_id] = swap.state
            self.version[pool_id] += 1
            if isinstance(hop.pool, CpmmPool):
                given, paid, fees = self.whole.get(pool_id, (0, 0, 0))
                self.whole[pool_id] = (
                    given + swap.amount_in,
                    paid + swap.amount_out,
                    fees + swap.fee,
                )


@dataclass
class _Branch:
    """One path's part in the split, and what its next chunk would give."""

    index: int
    path: Path
    amount: int = 0  # what it was given so far
    next_in: int = 0  # its next chunk: the chunk asked for, or the part of it that fits
    next_out: int = -1  # what its next chunk would give; -1: it cannot take one
    next_swaps: tuple[Piece | Swap[PoolState], ...] = ()
    priced_for: int = 0  # the chunk next_out is for; 0: not priced since a pool moved
    # The least input known not to fit the path (0: none known), the part
    # of a chunk found to fit below it, and whether the path took such a
    # part, which leaves it no room. A pool's room only shrinks as chunks
    # land: all three hold for the rest of the pass.
    room: int = 0
    part: int = 0
    full: bool = False

    def fresh(self, size: int) -> bool:
        return self.priced_for == size

    def rate(self) -> int:
        """What its next chunk gives, scaled to a whole chunk: the part of a
        chunk that fits a pool's last room is smaller than a chunk."""
        if self.next_in == self.priced_for:
            return self.next_out
        return self.next_out * self.priced_for // self.next_in

    def refresh(self, running: _Running, size: int, parts: bool) -> None:
        """Prices the next chunk of ``size``; or, with ``parts``, when it
        does not fit, the largest part of it that does."""
        if self.priced_for == size:
            return
        self.priced_for = size
        self.next_in, self.next_out, self.next_swaps = size, -1, ()
        if self.full:
            return
        priced = running.along(self.path, size) if not self.room or size < self.room else None
        if priced is None and 0 < self.part < size:
            # The part found to fit before: it still does unless a chunk of
            # another path took room from a pool this one shares.
            priced = running.along(self.path, self.part)
            if priced is not None:
                self.next_in = self.part
        if priced is not None:
            self.next_out, self.next_swaps = priced
            return
        if not parts:
            return
        # Near a pool's capacity a whole chunk no longer fits, but part of
        # one may, at a rate no other path gives. Sending all of the chunk
        # elsewhere would leave the route short of the optimum by up to a
        # chunk's worth; so the path takes the part that fits, to 1/256 of
        # a chunk.
        step = max(1, size >> 8)
        fits, short = 0, min(size, self.room or size, self.part or size)
        found = None
        while short - fits > step:
            middle = (fits + short) // 2
            tried = running.along(self.path, middle)
            if tried is None:
                short = middle
            else:
                fits, found = middle, tried
        self.room, self.part = short, fits
        if found is not None:
            self.next_in = fits
            self.next_out, self.next_swaps = found


@dataclass(frozen=True)
class Split:
    # What each path was given, in the order the paths came (0: not used).
    amounts: tuple[int, ...]
    # What each pool swaps in all, in its input token: the route's legs.
    pool_inputs: dict[str, int]
    # What the pieces gave, landed one after another. The route built from
    # the split is priced again as a whole by apply_route, which this only
    # approximates (each piece rounds on its own).
    amount_out: int
    chunk: int  # the finest chunk, in input base units

    @property
    def paths_used(self) -> int:
        return sum(1 for a in self.amounts if a)


class _Level:
    """One pass of the greedy: from given amounts per path, hand out the
    rest of the input in equal chunks."""

    def __init__(self, paths: Sequence[Path], states: Mapping[str, PoolState], now: int) -> None:
        self.running = _Running(states, now)
        self.branches = [_Branch(i, p) for i, p in enumerate(paths)]
        # The paths through each pool: a chunk through it makes their prices stale.
        self.through: dict[str, list[_Branch]] = {}
        for branch in self.branches:
            for pool_id in branch.path.pool_ids:
                self.through.setdefault(pool_id, []).append(branch)
        self.pool_inputs: dict[str, int] = {}
        self.amount_out = 0

    def give(self, branch: _Branch, out: int, swaps: tuple[Piece | Swap[PoolState], ...]) -> None:
        self.running.commit(branch.path, swaps)
        for pool_id in branch.path.pool_ids:
            for other in self.through[pool_id]:
                other.priced_for = 0
        for pool_id, swap in zip(branch.path.pool_ids, swaps, strict=True):
            self.pool_inputs[pool_id] = self.pool_inputs.get(pool_id, 0) + swap.amount_in
        self.amount_out += out
        branch.amount += swaps[0].amount_in
        branch.full = branch.next_in < branch.priced_for

    def start_from(self, amounts: Sequence[int]) -> None:
        """Sends each path its amount, in path order. A path that cannot take
        its amount starts from nothing: paths that share a pool fill it in
        another order than the pass before, and a DLMM pool filled near its
        capacity may take less from one of them now."""
        for branch, amount in zip(self.branches, amounts, strict=True):
            if amount:
                priced = self.running.along(branch.path, amount)
                if priced is not None:
                    self.give(branch, *priced)

    def hand_out(self, total: int, size: int, parts: bool) -> _Branch | None:
        """Gives ``total`` in chunks of ``size`` (the last one what is left),
        each to the path whose next chunk gives the most per unit; returns
        the path of the last one (None when no path can take another chunk).
        A path near a pool's capacity takes the part of a chunk that fits.

        Lazily: a path's price for its next chunk, once a chunk through one
        of its pools made it stale, can only have fallen (that pool gives
        less per unit now, or passes less on), so a stale price is an upper
        bound, and is priced again only when it comes to the top."""
        left = total
        want = 0
        heap: list[tuple[int, int]] = []
        last = None
        while left > 0:
            if want != min(size, left):
                # The first chunk, or the last, smaller one: every path priced for it.
                want = min(size, left)
                heap = []
                for branch in self.branches:
                    branch.refresh(self.running, want, parts)
                    if branch.next_out >= 0:
                        heap.append((-branch.rate(), branch.index))
                heapq.heapify(heap)
            if not heap:
                return None
            _, index = heapq.heappop(heap)
            branch = self.branches[index]
            if branch.fresh(want):
                self.give(branch, branch.next_out, branch.next_swaps)
                left -= branch.next_in
                last = branch
            branch.refresh(self.running, want, parts)
            if branch.next_out >= 0:
                heapq.heappush(heap, (-branch.rate(), index))
        return last


def greedy_split(
    paths: Sequence[Path],
    states: Mapping[str, PoolState],
    amount_in: int,
    now: int,
    chunks: int = DEFAULT_CHUNKS,
    first: int = FIRST_CHUNKS,
    factor: int = REFINE_FACTOR,
) -> Split | None:
    """Splits ``amount_in`` across ``paths`` in ``chunks`` equal chunks
    (the few base units left over go with the last chunk); None when the
    paths cannot take it all.

    Coarse to fine, as scaling algorithms for concave allocation do: first
    ``first`` chunks, then chunks ``factor`` times smaller starting from
    what each path had less one coarse chunk (for concave outputs the
    optimum on the finer grid gives every path at least that much), down to
    ``chunks``. Each pass hands out about ``factor`` chunks per path used
    instead of all ``chunks`` of them."""
    final = max(1, min(chunks, amount_in))
    counts = []
    count = first
    while count < final:
        if final % count == 0:
            counts.append(count)
        count *= factor
    counts.append(final)
    unit = amount_in // final
    grid = unit * final
    amounts = [0] * len(paths)
    previous = 0  # the chunk of the pass before, in base units
    for count in counts:
        size = grid // count
        level = _Level(paths, states, now)
        level.start_from([max(a - previous, 0) for a in amounts])
        # Parts of chunks in the last pass only: a pass starts from what
        # each path had less a chunk of the pass before, whole chunks or not.
        handed = level.hand_out(
            grid - sum(b.amount for b in level.branches), size, parts=count == final
        )
        if handed is None:
            return None
        last = handed
        amounts = [b.amount for b in level.branches]
        previous = size
    remainder = amount_in - grid
    if remainder:
        priced = level.running.along(last.path, remainder)
        if priced is None:
            return None
        level.give(last, *priced)
        amounts[last.index] += remainder
    return Split(tuple(amounts), level.pool_inputs, level.amount_out, unit)


def alone_is_best(
    best: PathFill,
    paths: Sequence[Path],
    states: Mapping[str, PoolState],
    now: int,
    chunks: int = DEFAULT_CHUNKS,
) -> bool:
    """True when no split across ``paths`` gives more than all of the input
    down ``best.path``, so the router need not search for one.

    The optimality (KKT) conditions of the concave problem, with a price per
    token: 1 for the output; along the path, each hop's marginal rate at its
    flow (bounded below by the chord to one chunk more); for an intermediate
    token the path does not use, its best rate ceiling onward. Then no
    unused pool may pay more than it costs: ``price(in) >= price(out) *
    ceiling``. Every estimate errs on the side of answering False, which
    only means the search runs."""
    marginals = []
    for hop, here in zip(best.path.hops, best.swaps, strict=True):
        step = max(1, here.amount_in // chunks)
        try:
            more = quote(hop.pool, states[hop.pool.id], hop.input_token, here.amount_in + step, now)
        except OutOfLiquidityError:
            return False
        rate = Fraction(more.amount_out - here.amount_out, step)
        if rate <= 0:
            return False
        marginals.append((hop, rate))
    output_token = best.path.hops[-1].output_token
    prices = {output_token: Fraction(1)}
    for hop, rate in reversed(marginals):
        prices[hop.input_token] = prices[hop.output_token] * rate
    on_best = set(best.path.pool_ids)
    # Each pool once: it is on several paths, always in the same direction.
    others = list(
        {h.pool.id: h for p in paths for h in p.hops if h.pool.id not in on_best}.values()
    )
    ceilings = {h.pool.id: rate_ceiling(h, states[h.pool.id]) for h in others}
    priced_by_best = set(prices)
    for hop in others:  # an intermediate best does not use: its best way on
        if hop.output_token == output_token and hop.input_token not in priced_by_best:
            prices[hop.input_token] = max(
                prices.get(hop.input_token, Fraction(0)), ceilings[hop.pool.id]
            )
    return all(
        prices[h.input_token] >= prices[h.output_token] * ceilings[h.pool.id] for h in others
    )
