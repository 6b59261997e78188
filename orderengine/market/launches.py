"""Pools created at run time: a launch makes a new token and a Raydium CPMM
pool pairing it with a token the market has (docs/market.md, "Launches").

The chain's Redis holds them: the hash ``market:launches`` (a field per
launched symbol, its record as JSON), the pool's state hash, and an entry on
``market:pool-changes`` naming the pool and the launch, all written by one
script, so a launch is whole or absent. Every process registers the launches
it finds there (``register_all``) beside pools.toml's: at once when it meets
a symbol or a pool id it does not know (the loader ``install`` sets), and the
trigger part on every launch entry of the stream."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import redis as sync_redis
from redis.asyncio import Redis

from orderengine.market import prices
from orderengine.market.base import Venue
from orderengine.market.cpmm import CpmmPool, CreatorFeeOn
from orderengine.market.pools import add_pool, all_pools, forget_pools
from orderengine.market.state import POOL_CHANGES, POOL_CHANGES_KEPT, encode, pool_key
from orderengine.tokens import (
    SYMBOL_SHAPE,
    TOKENS,
    Token,
    UnknownTokenError,
    add_token,
    forget_launched,
    set_launch_loader,
    token,
)

LAUNCHES = "market:launches"
# A launched pool's fees: Raydium's standard tier and its configs' shares.
FEE_RATE = 2500
PROTOCOL_FEE_RATE = 120_000
FUND_FEE_RATE = 40_000
MAX_DECIMALS = 12
U64_MAX = 2**64 - 1

# Refused (0) when the symbol or the pool is there already.
_LAUNCH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'pools', ARGV[3], 'launch', ARGV[1])
return 1
"""


class LaunchError(ValueError):
    """A launch refused: the message names the field."""


@dataclass(frozen=True)
class Launch:
    symbol: str
    decimals: int
    paired_with: str
    # Base units of the new token and of the paired one the pool starts with.
    reserve_new: int
    reserve_paired: int

    @property
    def pool_id(self) -> str:
        return f"launch-{self.symbol.lower()}-{self.paired_with.lower()}"

    def token(self) -> Token:
        # A made-up mint, one per symbol: the simulated chain has no real one.
        digest = hashlib.sha256(f"launch:{self.symbol}".encode()).hexdigest()
        return Token(self.symbol, f"launch{digest[:38]}", self.decimals)

    def pool(self) -> CpmmPool:
        return CpmmPool(
            id=self.pool_id,
            venue=Venue.RAYDIUM,
            token_a=self.symbol,
            token_b=self.paired_with,
            initial_a=self.reserve_new,
            initial_b=self.reserve_paired,
            fee_rate=FEE_RATE,
            protocol_fee_rate=PROTOCOL_FEE_RATE,
            fund_fee_rate=FUND_FEE_RATE,
            creator_fee_rate=0,
            creator_fee_on=CreatorFeeOn.BOTH,
        )


def checked(
    symbol: str, decimals: int, paired_with: str, reserve_new: int, reserve_paired: int
) -> Launch:
    """The launch asked for, or LaunchError naming the field."""
    text = symbol.strip().upper() if symbol.isascii() else symbol
    if not SYMBOL_SHAPE.match(text):
        raise LaunchError(
            f"symbol: {symbol[:16]!r} is no symbol (2 to 10 letters and digits, a letter first)"
        )
    if text in TOKENS:
        raise LaunchError(f"symbol: {text} is already a token")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise LaunchError(f"decimals: must be 0 to {MAX_DECIMALS}, got {decimals}")
    try:
        paired = token(paired_with).symbol
    except UnknownTokenError as exc:
        raise LaunchError(f"paired_with: {exc}") from None
    for name, value in (("reserve_new", reserve_new), ("reserve_paired", reserve_paired)):
        if not 0 < value <= U64_MAX:
            raise LaunchError(f"{name}: must be above 0 and fit a u64, got {value}")
    return Launch(text, decimals, paired, reserve_new, reserve_paired)


async def launch(redis: Redis, new: Launch) -> None:
    """Writes the launch on the chain, whole; LaunchError when its symbol
    (or pool) was launched already."""
    pool = new.pool()
    fields = encode(pool, pool.initial_state())
    args = [item for pair in fields.items() for item in pair]
    done = await redis.eval(
        _LAUNCH,
        3,
        LAUNCHES,
        pool_key(new.pool_id),
        POOL_CHANGES,
        new.symbol,
        json.dumps(asdict(new)),
        new.pool_id,
        str(POOL_CHANGES_KEPT),
        *args,
    )
    if not done:
        raise LaunchError(f"symbol: {new.symbol} was launched already")
    register(new)


def register(new: Launch) -> bool:
    """Makes a launch's token and pool known in this process; False when
    they were already."""
    if new.pool_id in all_pools():
        return False
    add_token(new.token())
    add_pool(new.pool())
    # The pair price's paths were found on the market before the launch.
    prices.paths.cache_clear()
    prices.pools_of.cache_clear()
    return True


def _decoded(raw: dict[Any, Any]) -> list[Launch]:
    found = []
    for value in raw.values():
        record = json.loads(value)
        found.append(Launch(**record))
    return found


def register_all(raw: dict[Any, Any]) -> int:
    """Registers every launch in the hash's fields; returns how many were new."""
    return sum(register(new) for new in _decoded(raw))


async def refresh(redis: Redis) -> int:
    """Registers every launch on the chain; returns how many were new."""
    return register_all(await redis.hgetall(LAUNCHES))


def forget() -> None:
    """This process knows only pools.toml's market again (tests)."""
    forget_launched()
    forget_pools()
    prices.paths.cache_clear()
    prices.pools_of.cache_clear()


def install(chain_redis_url: str) -> None:
    """A process that can read the chain's Redis registers its launches when
    it meets a symbol or pool it does not know. The read is synchronous (a
    symbol is looked up in synchronous code everywhere), short, and at most
    a few times a second (orderengine.tokens)."""
    client = sync_redis.Redis.from_url(chain_redis_url)

    def load() -> None:
        # Unreachable, the symbol stays unknown for now: the caller says so.
        with contextlib.suppress(sync_redis.RedisError):
            register_all(client.hgetall(LAUNCHES))

    set_launch_loader(load)
