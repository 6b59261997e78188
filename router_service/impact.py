"""Price impact: how far what a swap gives falls short of its spot price.

    impact = 1 - amount_out / (amount_in * spot)

The spot rate is output base units per input base unit for an infinitesimal
swap, before fees, so the fees count as impact as well as the price the
swap moves. For one path it is the product of its pools' spot prices. For
a route it is what an infinitesimal input would get split across the legs
as the route splits it: each leg's pool at its spot price, each leg taking
the share of its token that it takes in the route. A route on one path has
that path's impact."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from orderengine.market.pools import Pool, PoolState, spot_price
from orderengine.market.routes import RouteFill
from router_service.paths import Path


@dataclass(frozen=True)
class PriceImpact:
    """A swap's amounts against its spot rate. Read off as a percentage
    (Decimal division, no fractions reduced: every quote shows three) or
    compared with a limit in integers; the exact value on demand."""

    amount_in: int
    amount_out: int
    spot: Fraction  # output base units per input base unit

    @property
    def value(self) -> Fraction:
        return 1 - Fraction(self.amount_out) / (self.amount_in * self.spot)

    def percent(self) -> str:
        """In percent to four places, as the wire carries it: "2.1968"."""
        spot = self.spot
        got = Decimal(self.amount_out * spot.denominator) / Decimal(self.amount_in * spot.numerator)
        return f"{((1 - got) * 100).quantize(Decimal('0.0001')):f}"

    def above(self, most_pct: Fraction) -> bool:
        """Whether the impact is above ``most_pct`` percent: the swap gives
        less than (100 - most_pct)% of the input at spot."""
        spot, kept = self.spot, 100 - most_pct
        return (
            self.amount_out * spot.denominator * 100 * kept.denominator
            < kept.numerator * self.amount_in * spot.numerator
        )


class Spots:
    """Spot rates on one read of the pools, each pool's priced once: a quote
    asks for them for each venue's path and for the route."""

    def __init__(self, states: Mapping[str, PoolState]) -> None:
        self.states = states
        self._rates: dict[tuple[str, str], Fraction] = {}

    def of(self, pool: Pool, input_token: str) -> Fraction:
        key = (pool.id, input_token)
        rate = self._rates.get(key)
        if rate is None:
            rate = self._rates[key] = spot_price(pool, self.states[pool.id], input_token)
        return rate

    def path(self, path: Path) -> Fraction:
        """Down a path: the product of its pools' spot rates."""
        rate = Fraction(1)
        for hop in path.hops:
            rate *= self.of(hop.pool, hop.input_token)
        return rate

    def route(
        self, fill: RouteFill, input_token: str, output_token: str, pools: Mapping[str, Pool]
    ) -> Fraction:
        """The route's spot rate: its legs at their pools' spot prices, no
        fees, each leg swapping the share of its token it swaps in the
        route. The legs that spend a token come after every leg that buys it."""
        spent: dict[str, int] = {}
        for leg_fill in fill.fills:
            token_in = leg_fill.leg.input_token
            spent[token_in] = spent.get(token_in, 0) + leg_fill.amount_in
        held = {input_token: Fraction(1)}
        for leg_fill in fill.fills:
            leg = leg_fill.leg
            bought = held[leg.input_token] * self.of(pools[leg.pool_id], leg.input_token)
            if leg_fill.amount_in != spent[leg.input_token]:
                bought *= Fraction(leg_fill.amount_in, spent[leg.input_token])
            held[leg.output_token] = held.get(leg.output_token, 0) + bought
        return held[output_token]
