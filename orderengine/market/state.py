"""Pool reserves in Redis, so every replica of every service sees one market.
A missing pool (a new Redis, a flush) starts again from pools.toml."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from orderengine.market.pools import all_pools
from orderengine.market.routes import Reserves


def pool_key(pool_id: str) -> str:
    return f"market:pool:{pool_id}"


async def read_reserves(redis: Redis | Pipeline, pool_ids: Iterable[str]) -> dict[str, Reserves]:
    """The pools' reserves now; seeds any pool Redis does not hold yet."""
    ids = list(dict.fromkeys(pool_ids))
    if isinstance(redis, Pipeline):
        # Inside a WATCHed transaction: commands run at once.
        raw = [await redis.hmget(pool_key(i), "a", "b") for i in ids]
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for pool_id in ids:
                pipe.hmget(pool_key(pool_id), "a", "b")
            raw = await pipe.execute()
    missing = [pool_id for pool_id, (a, b) in zip(ids, raw, strict=True) if a is None or b is None]
    if missing:
        await seed(redis, missing)
        return await read_reserves(redis, ids)
    return {pool_id: Reserves(int(a), int(b)) for pool_id, (a, b) in zip(ids, raw, strict=True)}  # type: ignore[arg-type]


async def seed(redis: Redis | Pipeline, pool_ids: Iterable[str]) -> None:
    pools = all_pools()
    for pool_id in pool_ids:
        pool = pools[pool_id]
        # HSETNX: a replica racing us, or a swap landed meanwhile, wins.
        await redis.hsetnx(pool_key(pool_id), "a", str(pool.initial_a))
        await redis.hsetnx(pool_key(pool_id), "b", str(pool.initial_b))


def write_reserves(pipe: Pipeline, reserves: dict[str, Reserves]) -> None:
    for pool_id, r in reserves.items():
        pipe.hset(pool_key(pool_id), mapping={"a": str(r.a), "b": str(r.b)})
