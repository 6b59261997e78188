"""Writing an allocation (what each pool swaps) as route legs that
``apply_route`` reproduces: share_bps is the share of the token held at that
point of the route, and the last leg on a token takes what is left.

Every leg that spends the input token comes first (direct legs, then the
first hops of two-hop paths), then, per intermediate token, the legs that
spend it: by then the route holds everything the first hops bought. A pool
is on one leg only, so the route prices each pool once, on the state the
quote read.

A share is whole basis points, so a leg swaps its amount only to within a
basis point of what is held at that point; the last leg on the token takes
what the others miss. That costs nothing to first order on a pool whose
marginal rate is the route's. A DLMM pool the split filled to its capacity
is not one: it gives more per unit than the others and can take no more,
and a basis point short of it can cost tenths of a basis point of the
output. Hence the order of the legs on a token and the rounding below."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from orderengine.market.pools import CpmmPool
from orderengine.market.routes import FULL_SHARE, Leg
from router_service.paths import Hop, Path

# Whether the hop's pool, as the route finds it, can take an amount.
Takes = Callable[[Hop, int], bool]


def shares(
    amounts: Sequence[int],
    held: int | None = None,
    takes: Callable[[int, int], bool] | None = None,
) -> list[int]:
    """share_bps for legs meant to spend ``amounts`` of one held balance
    (``held``, by default their sum) in turn, spent as apply_route spends
    (floor of what is left times the share): the last leg all of the rest,
    every other at least 1, so it is a valid leg. Two legs are exact when
    the first amount is a whole basis point of the total.

    Each share is rounded down, so that no leg but the last swaps more than
    it was given: a pool filled to its capacity can take no more. With
    ``takes`` (leg index, amount), a leg gets the share rounded up when its
    pool takes what that spends (a pool filled to its capacity is the one to
    give more to, if it can), and a basis point less than rounded down if
    its pool does not take even that."""
    left = sum(amounts) if held is None else held
    result = []
    for index, amount in enumerate(amounts[:-1]):
        down = min(max(amount * FULL_SHARE // left, 1), FULL_SHARE - 1)
        share = down
        if takes is not None:
            tried = (
                [down + 1, down, down - 1]
                if down * left < amount * FULL_SHARE
                else [down, down - 1]
            )
            share = next(
                (s for s in tried if 0 < s < FULL_SHARE and takes(index, left * s // FULL_SHARE)),
                down,
            )
        result.append(share)
        left -= left * share // FULL_SHARE
    return [*result, FULL_SHARE]


def legs_for(
    paths: Sequence[Path],
    pool_inputs: Mapping[str, int],
    input_token: str,
    held: Mapping[str, int] | None = None,
    takes: Takes | None = None,
) -> list[Leg]:
    """The legs that swap ``pool_inputs[pool]`` on each pool the paths use
    (in the pool's input token), in an order apply_route can run.

    ``held``: what the route will hold of a token when its legs run, where
    known (the input; an intermediate token, which the first legs buy in
    one swap each, rounding otherwise than the pieces a split was priced
    in); by default what the pools are to spend of it. ``takes``: whether a
    pool can take an amount, for the rounding of shares."""
    # One hop per pool: a pool joins the same two tokens on every path.
    hops = {h.pool.id: h for p in paths for h in p.hops}
    used = [
        pid
        for pid in dict.fromkeys(pid for p in paths for pid in p.pool_ids)
        if pool_inputs.get(pid, 0) > 0
    ]
    by_token: dict[str, list[str]] = {}
    for pid in used:
        by_token.setdefault(hops[pid].input_token, []).append(pid)
    order = [input_token, *(t for t in by_token if t != input_token)]
    legs = []
    for spent in order:
        pools = _in_turn(by_token.get(spent, []), hops, pool_inputs)
        fits = None
        if takes is not None:
            fits = lambda index, amount, pools=pools: takes(hops[pools[index]], amount)  # noqa: E731
        amounts = [pool_inputs[p] for p in pools]
        for pid, share in zip(pools, shares(amounts, (held or {}).get(spent), fits), strict=True):
            hop = hops[pid]
            legs.append(Leg(pid, hop.input_token, hop.output_token, share))
    return legs


def _in_turn(
    pools: list[str], hops: Mapping[str, Hop], pool_inputs: Mapping[str, int]
) -> list[str]:
    """The order in which the legs on one token spend it: a leg later in
    the order is spelt finer, in basis points of less. The constant-product
    pools, which take any amount, go first, largest first; then the DLMM
    pools, smallest first; then the smallest constant-product pool takes
    the rest (the largest DLMM pool, where the token has no such pool)."""
    cpmm = sorted(
        (p for p in pools if isinstance(hops[p].pool, CpmmPool)), key=lambda p: -pool_inputs[p]
    )
    dlmm = sorted(
        (p for p in pools if not isinstance(hops[p].pool, CpmmPool)), key=lambda p: pool_inputs[p]
    )
    return cpmm[:-1] + dlmm + cpmm[-1:]
