"""Where the market flow trades: the chain's pools in Redis, read and moved
a slot at a time as the chain moves them. The pools' states and their flows
ledger are written together (``write_reserves``) in a MULTI/EXEC that a
WATCH on every pool voids if an order landed meanwhile; the flow then
decides its slot again on the pools the order left.

The reference prices are kept beside the pools (``market:reference``, USD a
whole token), written with each slot's trades: a flow that restarts goes on
from where the prices were rather than from pools.toml's, which the pools
have long left."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import WatchError

from orderengine.market.pools import PoolState, all_pools
from orderengine.market.state import (
    FLOW_A,
    FLOW_B,
    Flows,
    decode,
    pool_key,
    read_pools,
    write_reserves,
)

# Every pool's hash in one command: redis-py's cost is per command, and this
# takes half the CPU of a pipeline of a dozen HGETALLs.
_READ_POOLS = """
local found = {}
for i, key in ipairs(KEYS) do found[i] = redis.call('HGETALL', key) end
return found
"""
_FLOW_A, _FLOW_B = FLOW_A.encode(), FLOW_B.encode()
REFERENCE_KEY = "market:reference"
# What a slot does to the pools it read: their states after.
Trade = Callable[[dict[str, PoolState]], dict[str, PoolState]]
# Each token's reference price, in USD.
Prices = Mapping[str, float]


class Market(Protocol):
    """Where the flow trades: pools it reads and moves in one atomic step."""

    async def transact(self, pool_ids: Sequence[str], trade: Trade, reference: Prices) -> None:
        """Reads the pools, lets ``trade`` move them (it returns their states
        after) and writes what moved, with the ``reference`` prices they
        were traded at, as one atomic step; ``trade`` runs again on the new
        states if someone else moved a pool meanwhile."""
        ...

    async def reference(self) -> dict[str, float]:
        """The reference prices written last (none on a new market)."""
        ...


class RedisMarket:
    """The chain's pools in Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._read_all = redis.register_script(_READ_POOLS)
        # Each pool's hash as last read and its state: decoding a DLMM
        # pool's bins is most of a read, and most pools did not move.
        self._seen: dict[str, tuple[list[bytes], PoolState]] = {}

    async def read(self, pool_ids: Sequence[str]) -> tuple[dict[str, PoolState], Flows]:
        """The pools' states and flows ledger, in one command; seeds any
        pool Redis does not hold yet."""
        pools = all_pools()
        raws = await self._read_all(keys=[pool_key(p) for p in pool_ids])
        states: dict[str, PoolState] = {}
        flows: Flows = {}
        for pool_id, raw in zip(pool_ids, raws, strict=True):
            fields = dict(zip(raw[::2], raw[1::2], strict=True))
            seen = self._seen.get(pool_id)
            state = (
                seen[1] if seen is not None and seen[0] == raw else decode(pools[pool_id], fields)
            )
            if state is None:
                continue
            self._seen[pool_id] = (raw, state)
            states[pool_id] = state
            flows[pool_id] = (int(fields.get(_FLOW_A, 0)), int(fields.get(_FLOW_B, 0)))
        missing = [p for p in pool_ids if p not in states]
        if missing:  # never seeded yet: read_pools seeds them from pools.toml
            seeded, seeded_flows = await read_pools(self.redis, missing)
            states.update(seeded)
            flows.update(seeded_flows)
        return states, flows

    async def reference(self) -> dict[str, float]:
        stored = await self.redis.hgetall(REFERENCE_KEY)
        return {
            symbol.decode() if isinstance(symbol, bytes) else symbol: float(price)
            for symbol, price in stored.items()
        }

    async def transact(self, pool_ids: Sequence[str], trade: Trade, reference: Prices) -> None:
        while True:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(*(pool_key(p) for p in pool_ids))
                    # Read on another connection, in one round trip: the
                    # WATCH still voids the EXEC if any pool changes.
                    before, flows = await self.read(pool_ids)
                    after = trade(dict(before))
                    moved = {p: s for p, s in after.items() if s is not before[p]}
                    if not moved:
                        return  # leaving the block unwatches
                    pipe.multi()
                    write_reserves(pipe, moved, before, flows)
                    pipe.hset(REFERENCE_KEY, mapping={s: repr(p) for s, p in reference.items()})
                    await pipe.execute()
                    return
            except WatchError:
                continue  # an order landed meanwhile: decide again
