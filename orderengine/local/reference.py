"""Each token's reference price: what the rest of the world (centralised
exchanges, other chains) pays for it, in USD. The other traders lean toward
it and the arbitrageurs trade the pools to it.

It moves as a geometric Brownian motion, one step a slot, each token on its
own with the volatility pools.toml gives it (``[reference]``): a step
multiplies the price by ``exp(s·sqrt(dt)·z - s²·dt/2)``, ``s`` the
volatility, ``z`` a standard normal draw and ``dt`` the slot in years, so
the price's expected value stays where it is. The draws come from a generator seeded with the flow's seed: the same
seed walks the same path."""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from orderengine.market.pools import DATA_FILE, Pool, all_pools
from orderengine.tokens import token

# Crypto markets never close: volatility is a year of every second.
SECONDS_A_YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Reference:
    # USD per whole token, where the walk starts.
    price: float
    # The standard deviation of a year's log return (0.8 is 80%).
    volatility: float


def load_references(
    text: str | None = None, pools: Iterable[Pool] | None = None
) -> dict[str, Reference]:
    """The ``[reference]`` table of pools.toml (or of ``text``): one entry per
    token, ``{ price = "140", volatility = "0.8" }``. Every token a pool
    trades needs one; a bad entry is refused, naming it."""
    data = tomllib.loads(DATA_FILE.read_text() if text is None else text)
    table = data.get("reference", {})
    found: dict[str, Reference] = {}
    for symbol, entry in table.items():
        where = f"pools.toml: reference.{symbol}"
        try:
            name = token(symbol).symbol
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a table with price and volatility")
        values = {}
        for field in ("price", "volatility"):
            raw = entry.get(field)
            if not isinstance(raw, str):
                raise ValueError(f"{where}.{field} must be a decimal string, got {raw!r}")
            try:
                values[field] = Fraction(raw)
            except ValueError:
                raise ValueError(f"{where}.{field} is not a decimal number: {raw!r}") from None
        if values["price"] <= 0:
            raise ValueError(f"{where}.price must be greater than 0, got {entry['price']!r}")
        if values["volatility"] < 0:
            raise ValueError(f"{where}.volatility must be 0 or more, got {entry['volatility']!r}")
        found[name] = Reference(float(values["price"]), float(values["volatility"]))
    traded = {
        t
        for p in (all_pools().values() if pools is None else pools)
        for t in (p.token_a, p.token_b)
    }
    missing = sorted(traded - set(found))
    if missing:
        raise ValueError(f"pools.toml: reference has no entry for {', '.join(missing)}")
    return found


class ReferenceWalk:
    """Every token's reference price, moved one slot at a time."""

    def __init__(
        self, seed: int, slot_seconds: float, references: Mapping[str, Reference] | None = None
    ) -> None:
        if slot_seconds <= 0:
            raise ValueError(f"slot_seconds must be greater than 0, got {slot_seconds}")
        start = load_references() if references is None else references
        self.dt = slot_seconds / SECONDS_A_YEAR
        self.symbols = sorted(start)
        # A generator per token: its path is the same whichever other tokens
        # the file lists, and in whatever order.
        self._draws = {s: random.Random(f"reference/{seed}/{s}").gauss for s in self.symbols}
        self.volatility = {s: start[s].volatility for s in self.symbols}
        # USD per whole token.
        self.prices = {s: start[s].price for s in self.symbols}
        self._scale = {s: 10.0 ** -token(s).decimals for s in self.symbols}
        self.steps = 0  # slots walked so far

    def step(self, slots: int = 1) -> None:
        """Every token's price moves by ``slots`` slots of its walk (in one
        draw: the sum of independent normal steps is one normal step)."""
        if slots < 1:
            raise ValueError(f"slots must be 1 or more, got {slots}")
        dt = self.dt * slots
        self.steps += slots
        for symbol in self.symbols:
            sigma = self.volatility[symbol]
            shock = self._draws[symbol](0.0, 1.0)
            self.prices[symbol] *= math.exp(sigma * math.sqrt(dt) * shock - sigma * sigma * dt / 2)

    def resume(self, prices: Mapping[str, float]) -> None:
        """Goes on from ``prices`` (a walk stored earlier) for the tokens it
        gives a usable price; the others keep theirs."""
        for symbol, price in prices.items():
            if symbol in self.prices and math.isfinite(price) and price > 0:
                self.prices[symbol] = price

    def unit_value(self, symbol: str) -> float:
        """USD per base unit of the token."""
        return self.prices[symbol] * self._scale[symbol]

    def rate(self, input_token: str, output_token: str) -> float:
        """Base units of ``output_token`` worth one base unit of ``input_token``."""
        return self.unit_value(input_token) / self.unit_value(output_token)
