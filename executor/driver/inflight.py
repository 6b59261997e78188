"""Submitted swaps waiting for confirmation: a Redis sorted set scored by when
each is next due for a status check. Trackers claim due entries with a lease
(their score moves a lease ahead), so several trackers share the work and one
that dies leaves its entries to the others when the lease runs out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis import Redis

log = logging.getLogger(__name__)

INFLIGHT = "orderengine:inflight"

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""


@dataclass(frozen=True)
class Inflight:
    order_id: str
    attempt: int
    signature: str

    @property
    def member(self) -> str:
        return f"{self.order_id}|{self.attempt}|{self.signature}"

    @classmethod
    def parse(cls, member: bytes | str) -> Inflight:
        text = member.decode() if isinstance(member, bytes) else member
        # The signature is the peer's: whatever it holds, it is the last field.
        order_id, attempt, signature = text.split("|", 2)
        return cls(order_id, int(attempt), signature)


def track(redis: Redis, entries: list[Inflight], due_in: float = 0.0) -> None:
    if entries:
        at = time.time() + due_in
        redis.zadd(INFLIGHT, {entry.member: at for entry in entries})


def track_if_missing(redis: Redis, entries: list[Inflight]) -> int:
    """Tracks each swap unless it is tracked already, in one command; how
    many were missing."""
    if not entries:
        return 0
    now = time.time()
    return int(redis.zadd(INFLIGHT, {entry.member: now for entry in entries}, nx=True) or 0)


def claim_due(redis: Redis, lease_seconds: float, limit: int) -> list[Inflight]:
    now = time.time()
    claim = redis.register_script(_CLAIM)
    due = claim(keys=[INFLIGHT], args=[repr(now), repr(now + lease_seconds), limit])
    entries: list[Inflight] = []
    unreadable: list[bytes | str] = []
    for member in due:
        try:
            entries.append(Inflight.parse(member))
        except ValueError:
            unreadable.append(member)
    if unreadable:
        # Not ours to track (no order and attempt in it): kept, it would come
        # due again every lease, and the reconciler tracks a SUBMITTED order again.
        log.warning(
            "inflight: dropped %d unreadable entries, e.g. %r", len(unreadable), unreadable[0]
        )
        redis.zrem(INFLIGHT, *unreadable)
    return entries


def reschedule(redis: Redis, entries: list[Inflight], due_in: float) -> None:
    if entries:
        at = time.time() + due_in
        redis.zadd(INFLIGHT, {e.member: at for e in entries})


def forget(redis: Redis, entries: list[Inflight]) -> None:
    if entries:
        redis.zrem(INFLIGHT, *(e.member for e in entries))


def next_due(redis: Redis) -> float | None:
    """When the earliest entry comes due (unix seconds); None when there is none."""
    first = redis.zrange(INFLIGHT, 0, 0, withscores=True)
    return float(first[0][1]) if first else None
