"""The pools a quote needs, read from Redis in one step.

A quote with two-hop paths reads up to six pools. One Lua script returns
each pool's hash as a single string (fields and values joined by newlines,
which none contains): one round trip, and an atomic snapshot, every pool as
it was at one moment, never some before a landing and some after it, so a
route is priced on a market that existed.

A pool whose reply is byte for byte the one read last time has the state
decoded last time (equal bytes, equal state), so an unchanged pool, the
common case between landings, is not decoded again. The format and its
decoding stay orderengine.market.state's; a pool Redis does not hold yet
is seeded there."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from orderengine.market.pools import PoolState, pools_with
from orderengine.market.state import decode, pool_key, read_reserves

_READ = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = table.concat(redis.call('HGETALL', key), '\\n')
end
return out
"""


class PoolReader:
    """Reads pool states for one Redis; keeps the last reply and state per pool."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._read = redis.register_script(_READ)
        self._last: dict[str, tuple[bytes, PoolState]] = {}

    async def read(self, pool_ids: Iterable[str]) -> dict[str, PoolState]:
        ids = list(dict.fromkeys(pool_ids))
        replies = await self._read(keys=[pool_key(pid) for pid in ids])
        pools = pools_with(ids)
        states: dict[str, PoolState] = {}
        for pool_id, reply in zip(ids, replies, strict=True):
            blob = reply if isinstance(reply, bytes) else str(reply).encode()
            last = self._last.get(pool_id)
            if last is not None and last[0] == blob:
                states[pool_id] = last[1]
                continue
            parts = blob.split(b"\n") if blob else []
            state = (
                decode(pools[pool_id], dict(zip(parts[::2], parts[1::2], strict=True)))
                if len(parts) % 2 == 0
                else None
            )
            if state is None:
                # Missing (a new Redis, a flush) or not of the pool's kind:
                # the market's own reader seeds it from pools.toml.
                return await read_reserves(self.redis, ids)
            self._last[pool_id] = (blob, state)
            states[pool_id] = state
        return states
