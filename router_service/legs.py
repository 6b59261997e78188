"""Writing an allocation (what each pool swaps) as route legs that
``apply_route`` reproduces: share_bps is the share of the token held at that
point of the route, and the last leg on a token takes what is left.

Every leg that spends the input token comes first (direct legs, then the
first hops of two-hop paths), then, per intermediate token, the legs that
spend it: by then the route holds everything the first hops bought. A pool
is on one leg only, so the route prices each pool once, on the state the
quote read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orderengine.market.routes import FULL_SHARE, Leg
from router_service.paths import Path


def shares(amounts: Sequence[int]) -> list[int]:
    """share_bps for legs meant to spend ``amounts`` of one held balance in
    turn: each the nearest basis point of what is left at that point (at
    least 1, so it is a valid leg), the last one all of the rest. Two legs
    are exact when the first amount is a whole basis point of the total."""
    left = sum(amounts)
    result = []
    for amount in amounts[:-1]:
        share = min(max((amount * FULL_SHARE * 2 + left) // (left * 2), 1), FULL_SHARE - 1)
        result.append(share)
        left -= left * share // FULL_SHARE
    return [*result, FULL_SHARE]


def legs_for(paths: Sequence[Path], pool_inputs: Mapping[str, int], input_token: str) -> list[Leg]:
    """The legs that swap ``pool_inputs[pool]`` on each pool the paths use
    (in the pool's input token), in an order apply_route can run."""
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
        pools = by_token.get(spent, [])
        for pid, share in zip(pools, shares([pool_inputs[p] for p in pools]), strict=True):
            hop = hops[pid]
            legs.append(Leg(pid, hop.input_token, hop.output_token, share))
    return legs
