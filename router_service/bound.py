"""How far a route can be from the best split there is: a certificate.

The problem: send ``A`` of the input token through the pools of the one-
and two-hop paths, any amount into each pool, all of an intermediate token
bought passed on, for the most output. Each pool's output ``f_e`` is
concave and increasing in its input, and 0 at 0.

Weak duality: give each token a price in output units, 1 for the output
token. For any split with pool inputs ``x_e`` (pool e: token u -> token v),

    OUT = p(in) A + sum_e [p(v) f_e(x_e) - p(u) x_e]

because what is bought of an intermediate token is spent. So every split,
the best one too, gives at most ``p(in) A + sum_e sup_z [p(v) f_e(z) -
p(u) z]``, and a route falls short of the optimum by at most

    gap = sum_e p(v) (sup_z [f_e(z) - r_e z] - [f_e(x_e) - r_e x_e]),
          r_e = p(u) / p(v),

for every choice of prices. The sup is bounded from samples of ``f_e`` by
concavity alone: between two samples, ``f_e`` lies under both neighbouring
chords extended; below the first, under the spot price after the least fee
(``rate_ceiling``); past the last, under the last chord and under what the
pool holds. The samples sit at the route's ``x_e`` and at ``x_e +- d 2^k``,
``d`` a chunk of what the route swaps of the token, so the bound is tight
where it matters.

A route balanced chunk by chunk, where each pool's marginal rate matches the
next one's, admits prices that put every ``r_e`` between the pool's chords
either side of ``x_e``; every term is then about a chunk's output times how
much the pool's rate falls across a chunk. ``certify`` tries the prices
those chords suggest and returns the smallest gap, in output base units.
It holds for pools of real numbers; the integer pools round each swap down
by a few base units, which it does not see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from orderengine.market.base import OutOfLiquidityError
from orderengine.market.pools import PoolState, balances, quote
from router_service.paths import Hop, Path, rate_ceiling

# Samples on each side of the route's amount: d, 2d, 4d, ... 2^(PROBES-1) d.
PROBES = 12


@dataclass(frozen=True)
class Envelope:
    """A concave upper bound of one pool's output, from samples."""

    hop: Hop
    x: int  # the route's input
    fx: int  # its output
    corners: tuple[tuple[Fraction, Fraction], ...]  # (z, bound): where the bound bends
    slopes: tuple[Fraction, ...]  # chord slopes next to x: the prices worth trying

    def excess(self, r: Fraction) -> Fraction:
        """sup_z [f(z) - r z] - [f(x) - r x], at most."""
        return max(b - r * z for z, b in self.corners) - (self.fx - r * self.x)


def envelope(hop: Hop, state: PoolState, x: int, d: int, now: int) -> Envelope:
    def out(z: int) -> int | None:
        try:
            return quote(hop.pool, state, hop.input_token, z, now).amount_out
        except OutOfLiquidityError:
            return None

    fx = out(x) if x else 0
    assert fx is not None, f"{hop.pool.id} takes the route's own amount"
    d = max(d, 1)
    samples = {0: 0, x: fx}
    for k in range(PROBES):
        below = x - (d << k)
        if below <= 0:
            break
        f = out(below)
        assert f is not None
        samples[below] = f
    beyond: int | None = None  # the first probe the pool cannot take
    for k in range(PROBES):
        above = x + (d << k)
        f = out(above)
        if f is None:
            beyond = above
            break
        samples[above] = f
    a, b = balances(hop.pool, state)
    cap = Fraction(b if hop.input_token == hop.pool.token_a else a)  # all it could pay out
    zs = sorted(samples)
    fs = [Fraction(samples[z]) for z in zs]
    chords = [(fs[j + 1] - fs[j]) / (zs[j + 1] - zs[j]) for j in range(len(zs) - 1)]
    corners = [(Fraction(z), f) for z, f in zip(zs, fs, strict=True)]
    for j in range(len(zs) - 1):
        # On [z_j, z_j+1]: under the chord before, extended forward (the
        # ceiling from 0 on the first), and under the chord after, extended
        # back (the sample itself on the last); the bound bends where they meet.
        rise = chords[j - 1] if j else rate_ceiling(hop, state)
        fall = chords[j + 1] if j + 1 < len(chords) else Fraction(0)
        if rise > fall:
            z = (fs[j + 1] - fs[j] - fall * zs[j + 1] + rise * zs[j]) / (rise - fall)
            if zs[j] < z < zs[j + 1]:
                corners.append((z, fs[j] + rise * (z - zs[j])))
    # Past the last sample: under its chord (the ceiling if it is the only
    # one) and under all the pool holds, and not beyond a probe it refused.
    last = chords[-1] if chords else rate_ceiling(hop, state)
    if last > 0 and fs[-1] < cap:
        z = zs[-1] + (cap - fs[-1]) / last
        if beyond is not None and z > beyond:
            corners.append((Fraction(beyond), fs[-1] + last * (beyond - zs[-1])))
        else:
            corners.append((z, cap))
    i = zs.index(x)
    near = chords[max(i - 2, 0) : i + 2]
    return Envelope(hop, x, fx, tuple(corners), tuple(s for s in near if s > 0))


def certify(
    paths: Sequence[Path],
    states: Mapping[str, PoolState],
    pool_inputs: Mapping[str, int],
    amount_in: int,
    now: int,
    chunks: int,
) -> int:
    """An upper bound, in output base units, on how much more than the
    route (each pool swapping ``pool_inputs[pool]``) any split of
    ``amount_in`` over the pools of ``paths`` could give. The samples are
    spaced by what the route swaps of a token over ``chunks``."""
    hops = {h.pool.id: h for p in paths for h in p.hops}
    input_token = paths[0].hops[0].input_token
    output_token = paths[0].hops[-1].output_token
    spent: dict[str, int] = {}
    for pid, x in pool_inputs.items():
        spent[hops[pid].input_token] = spent.get(hops[pid].input_token, 0) + x
    envelopes: dict[str, Envelope] = {}
    for pid, hop in hops.items():
        held = spent.get(hop.input_token, 0)
        if not held:  # an intermediate the route does not use: what the input could buy
            held = max(
                int(amount_in * rate_ceiling(h, states[h.pool.id]))
                for h in hops.values()
                if h.input_token == input_token and h.output_token == hop.input_token
            )
        envelopes[pid] = envelope(hop, states[pid], pool_inputs.get(pid, 0), held // chunks, now)

    def between(u: str, v: str) -> list[Envelope]:
        return [e for e in envelopes.values() if e.hop.input_token == u and e.hop.output_token == v]

    def prices(pools: Iterable[Envelope]) -> set[Fraction]:
        return {s for e in pools for s in (*e.slopes, rate_ceiling(e.hop, states[e.hop.pool.id]))}

    direct = between(input_token, output_token)
    vias = sorted({h.output_token for h in hops.values()} - {output_token})
    legs = {via: (between(input_token, via), between(via, output_token)) for via in vias}

    def via_gap(p_in: Fraction, via: str) -> Fraction:
        first, onward = legs[via]
        return min(
            sum((e.excess(p_via) for e in onward), Fraction(0))
            + p_via * sum((e.excess(p_in / p_via) for e in first), Fraction(0))
            for p_via in prices(onward) | {p_in / r for r in prices(first)}
        )

    candidates = prices(direct)
    for first, onward in legs.values():
        candidates |= {a * b for a in prices(onward) for b in prices(first)}
    best = min(
        sum((e.excess(p_in) for e in direct), Fraction(0))
        + sum((via_gap(p_in, via) for via in vias), Fraction(0))
        for p_in in candidates
    )
    return -(-best.numerator // best.denominator)
