"""Rate limits as token buckets in Redis, one bucket per owner, shared by
every replica: a bucket holds up to ``burst`` tokens, gains ``rate`` a
second, and each request takes one.

One Lua script reads, refills and takes in a single atomic step, with the
time from Redis's own clock, so replicas whose clocks differ still agree. A
bucket untouched long enough to be full again expires: a missing bucket is a
full one, so a flushed Redis only forgives, never refuses.

The check can ride in a pipeline the caller sends anyway (``check`` then
``grant``), so under load it costs no round trip of its own."""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

KEY_PREFIX = "orderengine:rate:"

# KEYS[1]: the bucket; ARGV: rate/s, burst, tokens wanted. Takes as many of
# the wanted tokens as there are whole tokens, and returns that number and
# what is left (a string: Lua numbers cross to Redis as integers).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = math.min(wanted, math.floor(tokens))
if granted > 0 then
  tokens = tokens - granted
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
end
return {granted, tostring(tokens)}
"""


@dataclass(frozen=True)
class Grant:
    """What a bucket gave: ``granted`` of the tokens asked for, and for each
    one refused, in order, how long until it could have been taken."""

    granted: int
    retry_after: tuple[float, ...]


class TokenBuckets:
    """The buckets of one limit (``name``), one per owner."""

    def __init__(self, redis: Redis, name: str, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(
                f"rate limit {name}: rate must be > 0 and burst >= 1, got {rate:g}/s and {burst}"
            )
        self.name = name
        self.rate = rate
        self.burst = burst
        self.redis = redis
        self._take = redis.register_script(_TAKE)

    def key(self, owner: str) -> str:
        return f"{KEY_PREFIX}{self.name}:{owner}"

    def _args(self, wanted: int) -> list[float | int]:
        return [self.rate, self.burst, wanted]

    def check(self, pipe: Pipeline, owner: str, wanted: int) -> None:
        """Adds taking ``wanted`` tokens from ``owner``'s bucket to ``pipe``;
        its result goes to ``grant``. Sent as EVALSHA alone: redis-py's own
        pipelined scripts ask SCRIPT EXISTS first, a round trip every time."""
        pipe.evalsha(self._take.sha, 1, self.key(owner), *self._args(wanted))

    def grant(self, result: object, owner: str, wanted: int) -> Grant:
        """The Grant from ``check``'s pipeline result (run with
        ``raise_on_error=False``). A Redis that has not seen the script yet
        (first use, a restart) gets it now, in one more round trip."""
        if isinstance(result, NoScriptError):
            result = self._take(keys=[self.key(owner)], args=self._args(wanted))
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, list)
        granted, left = int(result[0]), float(result[1])
        # The n-th refused token exists once the bucket has refilled to n.
        retry = tuple(max(0.001, (n - left) / self.rate) for n in range(1, wanted - granted + 1))
        return Grant(granted, retry)

    def take(self, owner: str, wanted: int = 1) -> Grant:
        """Takes tokens in a round trip of its own."""
        with self.redis.pipeline(transaction=False) as pipe:
            self.check(pipe, owner, wanted)
            result = pipe.execute(raise_on_error=False)[0]
        return self.grant(result, owner, wanted)


def retry_hint(seconds: float) -> str:
    """``0.25s``: what a client is told to wait, in milliseconds' precision."""
    return f"{math.ceil(seconds * 1000) / 1000:g}s"
