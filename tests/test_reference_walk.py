"""Each token's reference price walks: the same seed walks the same path,
another seed another, and the walk's log returns have the spread and drift
a geometric Brownian motion with the configured volatility has."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from orderengine.local.reference import Reference, ReferenceWalk, load_references
from orderengine.market.pools import load_pools

SLOT = 0.4
A_YEAR = 365 * 24 * 3600


def path(
    seed: int, steps: int, references: dict[str, Reference] | None = None
) -> list[dict[str, float]]:
    walk = ReferenceWalk(seed, SLOT, references)
    prices = []
    for _ in range(steps):
        walk.step()
        prices.append(dict(walk.prices))
    return prices


def test_the_same_seed_walks_the_same_path_and_another_seed_another() -> None:
    assert path(3, 500) == path(3, 500)
    first, other = path(3, 500), path(4, 500)
    for symbol in first[0]:
        assert [p[symbol] for p in first] != [p[symbol] for p in other], symbol


def test_a_tokens_path_does_not_depend_on_the_other_tokens() -> None:
    every = load_references()
    alone = path(5, 300, {"SOL": every["SOL"]})
    together = path(5, 300, every)
    assert [p["SOL"] for p in alone] == [p["SOL"] for p in together]


def test_the_walk_starts_at_the_configured_prices() -> None:
    walk = ReferenceWalk(0, SLOT)
    assert walk.prices == {
        "USDC": 1.0,
        "USDT": 1.0,
        "SOL": 140.0,
        "JUP": 0.81,
        "BONK": 0.0000197,
        "RAY": 1.99,
    }
    # A lamport of SOL at 140 USD is worth 0.14 base units of USDC.
    assert walk.rate("SOL", "USDC") == pytest.approx(140 * 10**6 / 10**9, rel=1e-12)


@pytest.mark.parametrize("symbol", ["SOL", "BONK", "USDC"])
def test_log_returns_have_the_configured_volatility(symbol: str) -> None:
    steps = 20_000
    reference = load_references()[symbol]
    prices = [reference.price] + [p[symbol] for p in path(8, steps, {symbol: reference})]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]

    # Per slot: s·sqrt(dt), s the volatility and dt the slot in years (SOL's
    # 80% a year: 0.9 bps a slot).
    dt = SLOT / A_YEAR
    sigma = reference.volatility * math.sqrt(dt)
    # The sample deviation of n normal draws errs by 1/sqrt(2n) of it: 0.5%.
    assert statistics.stdev(returns) == pytest.approx(sigma, rel=0.03)
    # The drift of a log return is -s²·dt/2, which keeps the price's mean;
    # the sample mean errs by the step's deviation over sqrt(n).
    drift = -(reference.volatility**2) * dt / 2
    assert abs(statistics.fmean(returns) - drift) < 4 * sigma / math.sqrt(steps)


def test_a_step_over_many_slots_spreads_as_that_many_steps() -> None:
    reference = Reference(140.0, 0.8)
    walk = ReferenceWalk(2, SLOT, {"SOL": reference})
    returns = []
    for _ in range(10_000):
        before = walk.prices["SOL"]
        walk.step(25)
        returns.append(math.log(walk.prices["SOL"] / before))
    assert statistics.stdev(returns) == pytest.approx(0.8 * math.sqrt(25 * SLOT / A_YEAR), rel=0.04)


def test_a_token_without_volatility_stays_put() -> None:
    walk = ReferenceWalk(1, SLOT, {"USDC": Reference(1.0, 0.0)})
    for _ in range(100):
        walk.step()
    assert walk.prices == {"USDC": 1.0}


TOML = """
[[pool]]
id = "p"
venue = "raydium"
kind = "cpmm"
token_a = "SOL"
token_b = "USDC"
reserve_a = "1"
reserve_b = "140"
fee_rate = 2500
protocol_fee_rate = 120000
fund_fee_rate = 40000
"""


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[reference]\nSOL = { price = "140", volatility = "0.8" }',
            "reference has no entry for USDC",
        ),
        (
            '[reference]\nSOL = { price = "0", volatility = "0.8" }\nUSDC = { price = "1", volatility = "0" }',
            "reference.SOL.price must be greater than 0",
        ),
        (
            '[reference]\nSOL = { price = "140", volatility = "-1" }\nUSDC = { price = "1", volatility = "0" }',
            "reference.SOL.volatility must be 0 or more",
        ),
        (
            '[reference]\nSOL = { price = 140, volatility = "0.8" }\nUSDC = { price = "1", volatility = "0" }',
            "reference.SOL.price must be a decimal string",
        ),
        (
            '[reference]\nSOL = { price = "lots", volatility = "0.8" }\nUSDC = { price = "1", volatility = "0" }',
            "reference.SOL.price is not a decimal number",
        ),
        (
            '[reference]\nDOGE = { price = "1", volatility = "0.8" }',
            "reference.DOGE: unknown token 'DOGE'",
        ),
    ],
)
def test_a_bad_reference_is_refused_naming_it(table: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_references(TOML + table, load_pools(TOML).values())
