"""The price of a pair, defined once (docs/market.md, "The price of a
pair"): output tokens per input token, whole-token units, the mid price of
the best path (one pool, or two through an intermediate token), each
pool's spot price before its fee. QuoteOrder shows it; the trigger part
compares limit and stop orders to it.

It reads only pool states (one round trip for every pair asked), makes no
quote, and is exact: a Fraction of the pools' integers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Context, Decimal
from fractions import Fraction
from functools import cache

from redis.asyncio import Redis

from orderengine.market.pools import Pool, PoolState, all_pools, pools_for, spot_price
from orderengine.market.state import read_reserves
from orderengine.tokens import token

Pair = tuple[str, str]
# A path: each pool with the token it is paid in.
Path = tuple[tuple[Pool, str], ...]
# Significant digits a price is shown with: far past any trigger's meaning,
# short enough to read.
SHOWN_DIGITS = 18


@cache
def paths(input_token: str, output_token: str) -> tuple[Path, ...]:
    """Every path the pair's price looks at: each pool of the pair, and each
    two-pool path through another token."""
    found: list[Path] = [((pool, input_token),) for pool in pools_for(input_token, output_token)]
    middles = sorted(
        {p.token_a for p in all_pools().values()} | {p.token_b for p in all_pools().values()}
    )
    for middle in middles:
        if middle in (input_token, output_token):
            continue
        for first in pools_for(input_token, middle):
            for second in pools_for(middle, output_token):
                found.append(((first, input_token), (second, middle)))
    return tuple(found)


@cache
def pools_of(input_token: str, output_token: str) -> frozenset[str]:
    """The ids of every pool the pair's price reads."""
    return frozenset(pool.id for path in paths(input_token, output_token) for pool, _ in path)


def pair_price(
    states: Mapping[str, PoolState], input_token: str, output_token: str
) -> Fraction | None:
    """The pair's price on these pool states; None when no path has one
    (no pool trades it, or its pools hold nothing to pay out)."""
    best: Fraction | None = None
    for path in paths(input_token, output_token):
        price = Fraction(1)
        for pool, paid_in in path:
            try:
                price *= spot_price(pool, states[pool.id], paid_in)
            except ZeroDivisionError:  # an emptied pool has no price
                price = Fraction(0)
        if price > 0 and (best is None or price > best):
            best = price
    if best is None:
        return None
    # Base units per base unit, as whole tokens per whole token.
    return best * 10 ** token(input_token).decimals / 10 ** token(output_token).decimals


async def read_prices(redis: Redis, pairs: Iterable[Pair]) -> dict[Pair, Fraction | None]:
    """Each pair's price now, all read in one round trip."""
    wanted = list(dict.fromkeys(pairs))
    ids = sorted({pool_id for pair in wanted for pool_id in pools_of(*pair)})
    states = await read_reserves(redis, ids) if ids else {}
    return {pair: pair_price(states, *pair) for pair in wanted}


def format_price(price: Fraction) -> str:
    """A price as a decimal string, to SHOWN_DIGITS significant digits."""
    value = Context(prec=SHOWN_DIGITS).divide(Decimal(price.numerator), Decimal(price.denominator))
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
