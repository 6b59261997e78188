"""Order leases: one worker drives an order at a time. A lease is a Redis key
with an expiry; a worker that dies mid-job lets its lease run out, and the
reconciler then hands the order to another."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

# Delete each lease only if it is still ours: it may have expired and been
# taken by another worker since. All of a job's leases in one call.
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""


def lease_key(order_id: str) -> str:
    return f"orderengine:lease:{order_id}"


@contextmanager
def order_leases(
    redis: Redis,
    order_ids: list[str],
    seconds: float,
    *,
    also: Callable[[Pipeline], object] | None = None,
) -> Iterator[list[str]]:
    """Yields the orders this worker got the lease of (in one round trip,
    with whatever ``also`` adds to it, sent first); releases them after."""
    token = uuid.uuid4().hex
    with redis.pipeline(transaction=False) as pipe:
        if also is not None:
            also(pipe)
        extra = len(pipe)
        for order_id in order_ids:
            pipe.set(lease_key(order_id), token, nx=True, px=int(seconds * 1000))
        got = [i for i, ok in zip(order_ids, pipe.execute()[extra:], strict=True) if ok]
    try:
        yield got
    finally:
        # Best effort: a lease we cannot delete runs out by itself.
        if got:
            with suppress(RedisError):
                redis.register_script(_RELEASE)(keys=[lease_key(i) for i in got], args=[token])


def leased(redis: Redis, order_ids: list[str]) -> set[str]:
    """Which of the orders a worker is driving now."""
    if not order_ids:
        return set()
    values = redis.mget([lease_key(i) for i in order_ids])
    return {i for i, v in zip(order_ids, values, strict=True) if v is not None}
