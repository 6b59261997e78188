"""Dividing one input across several paths, when that gives more out than
any single path.

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
in half percents for one or two hundred quotes."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from orderengine.market.base import OutOfLiquidityError, Swap
from orderengine.market.pools import PoolState, quote
from router_service.paths import Hop, Path, PathFill, rate_ceiling

# 0.5% a chunk in the end, reached in passes of 10, 100 and 200 chunks: a
# split in whole half percents, which share_bps spells (apply_route floors
# held * share / 10000). Finer grids cost more than they buy here: 1000
# chunks spend a good part of GetQuote's latency budget to shrink a
# certified gap of a few millionths of the output to a few ten-millionths.
DEFAULT_CHUNKS = 200
FIRST_CHUNKS = 10
REFINE_FACTOR = 10


class _Running:
    """The pools' states as chunks land on them, with every quote memoised by
    the pool's version: two paths through one pool price it once."""

    def __init__(self, states: Mapping[str, PoolState], now: int) -> None:
        self.states = dict(states)
        self.version = dict.fromkeys(self.states, 0)
        self.now = now
        self._memo: dict[tuple[str, int, str, int], Swap[PoolState] | None] = {}

    def swap(self, hop: Hop, amount: int) -> Swap[PoolState] | None:
        pool_id = hop.pool.id
        key = (pool_id, self.version[pool_id], hop.input_token, amount)
        if key not in self._memo:
            try:
                self._memo[key] = quote(
                    hop.pool, self.states[pool_id], hop.input_token, amount, self.now
                )
            except OutOfLiquidityError:
                self._memo[key] = None
        return self._memo[key]

    def along(self, path: Path, amount: int) -> tuple[int, tuple[Swap[PoolState], ...]] | None:
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

    def commit(self, path: Path, swaps: tuple[Swap[PoolState], ...]) -> None:
        for pool_id, swap in zip(path.pool_ids, swaps, strict=True):
            self.states[pool_id] = swap.state
            self.version[pool_id] += 1


@dataclass
class _Branch:
    """One path's part in the split, and what its next chunk would give."""

    index: int
    path: Path
    amount: int = 0  # what it was given so far
    next_out: int = -1  # what its next chunk would give; -1: it cannot take one
    next_swaps: tuple[Swap[PoolState], ...] = ()
    priced_for: int = 0  # the chunk next_out is for; 0: not priced since a pool moved

    def fresh(self, size: int) -> bool:
        return self.priced_for == size

    def refresh(self, running: _Running, size: int) -> None:
        if self.priced_for == size:
            return
        priced = running.along(self.path, size)
        self.next_out, self.next_swaps = priced if priced is not None else (-1, ())
        self.priced_for = size


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

    def give(self, branch: _Branch, out: int, swaps: tuple[Swap[PoolState], ...]) -> None:
        self.running.commit(branch.path, swaps)
        for pool_id in branch.path.pool_ids:
            for other in self.through[pool_id]:
                other.priced_for = 0
        for pool_id, swap in zip(branch.path.pool_ids, swaps, strict=True):
            self.pool_inputs[pool_id] = self.pool_inputs.get(pool_id, 0) + swap.amount_in
        self.amount_out += out
        branch.amount += swaps[0].amount_in

    def start_from(self, amounts: Sequence[int]) -> bool:
        """Sends each path its amount, in path order; False when one cannot go."""
        for branch, amount in zip(self.branches, amounts, strict=True):
            if amount:
                priced = self.running.along(branch.path, amount)
                if priced is None:
                    return False
                self.give(branch, *priced)
        return True

    def hand_out(self, count: int, size: int) -> _Branch | None:
        """Gives ``count`` chunks of ``size``, each to the path whose next
        chunk gives the most; returns the path of the last one (None when no
        path can take another chunk).

        Lazily: a path's price for its next chunk, once a chunk through one
        of its pools made it stale, can only have fallen (that pool gives
        less per unit now, or passes less on), so a stale price is an upper
        bound, and is priced again only when it comes to the top."""
        heap = []
        for branch in self.branches:
            branch.refresh(self.running, size)
            if branch.next_out >= 0:
                heap.append((-branch.next_out, branch.index))
        heapq.heapify(heap)
        last = None
        while count:
            if not heap:
                return None
            _, index = heapq.heappop(heap)
            branch = self.branches[index]
            if branch.fresh(size):
                self.give(branch, branch.next_out, branch.next_swaps)
                count -= 1
                last = branch
            branch.refresh(self.running, size)
            if branch.next_out >= 0:
                heapq.heappush(heap, (-branch.next_out, index))
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
        if not level.start_from([max(a - previous, 0) for a in amounts]):
            return None
        handed = level.hand_out((grid - sum(b.amount for b in level.branches)) // size, size)
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
