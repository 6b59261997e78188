"""The waiting orders' index in Redis: per pair (input, output) a sorted set
of limit orders by price (they fire when the pair's price rises to it) and
one of stop orders by trigger (they fire when it falls to it), and one time
index of expiries; per token not launched yet (or not yet bought) the set of
sniper orders waiting for it. Scores are floats, so a crossing query is widened by a
hair and the caller decides exactly, on the stored decimal; the database is
the truth and the index only narrows the search.

A marker key says the index was built from the database: a flushed Redis
loses it with the rest, and the trigger part builds the index again."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from fractions import Fraction

from redis import Redis
from redis.client import Pipeline

from orderengine.order_types import OrderType, trigger_of
from orderengine.store.models import StoredOrder

Pair = tuple[str, str]

PREFIX = "triggers"
PAIRS = f"{PREFIX}:pairs"
EXPIRY = f"{PREFIX}:expiry"
# TWAP orders by when their next slice is to be looked at.
SLICES = f"{PREFIX}:slices"
BUILT = f"{PREFIX}:built"
# The output tokens sniper orders wait for; each one's orders in sniper_key.
SNIPED = f"{PREFIX}:sniped"
# Relative width a float score may be off the exact price by, and then some.
HAIR = 1e-12


def side_key(pair: Pair, order_type: str) -> str:
    side = "above" if order_type == OrderType.LIMIT else "below"
    return f"{PREFIX}:{side}:{pair[0]}:{pair[1]}"


def sniper_key(symbol: str) -> str:
    return f"{PREFIX}:sniper:{symbol}"


def pair_of(row: StoredOrder) -> Pair:
    return (row.input_token, row.output_token)


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class TriggerIndex:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def add(self, rows: Sequence[StoredOrder], pipe: Pipeline | None = None) -> None:
        """Indexes the waiting orders (again: adding is idempotent)."""
        if not rows:
            return
        # One command per sorted set, whatever the count: a build adds
        # thousands of orders at once.
        members: dict[str, dict[str, float]] = defaultdict(dict)
        pairs: set[str] = set()
        snipers: dict[str, list[str]] = defaultdict(list)
        now = time.time()
        for row in rows:
            if row.order_type == OrderType.TWAP:
                continue
            if row.order_type == OrderType.SNIPER:
                snipers[row.output_token].append(row.order_id)
                if row.expire_at is not None:
                    members[EXPIRY][row.order_id] = _seconds(row.expire_at)
                continue
            pair = pair_of(row)
            members[side_key(pair, row.order_type)][row.order_id] = float(trigger_of(row))
            pairs.add(f"{pair[0]}:{pair[1]}")
            if row.expire_at is not None:
                members[EXPIRY][row.order_id] = _seconds(row.expire_at)
        # A TWAP order is looked at now, unless already scheduled: the
        # slicer decides from the database when its next slice is due.
        slices = {row.order_id: now for row in rows if row.order_type == OrderType.TWAP}
        own = pipe is None
        pipe = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for key, scored in members.items():
            pipe.zadd(key, scored)
        if pairs:
            pipe.sadd(PAIRS, *pairs)
        for symbol, ids in snipers.items():
            pipe.sadd(sniper_key(symbol), *ids)
            pipe.sadd(SNIPED, symbol)
        if slices:
            pipe.zadd(SLICES, slices, nx=True)
        if own:
            pipe.execute()

    def remove(self, rows: Iterable[StoredOrder]) -> None:
        """Takes the orders out of every index they may be in."""
        keys: dict[str, list[str]] = defaultdict(list)
        sets: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            if OrderType(row.order_type).priced:
                keys[side_key(pair_of(row), row.order_type)].append(row.order_id)
            if row.order_type == OrderType.SNIPER:
                sets[sniper_key(row.output_token)].append(row.order_id)
            keys[EXPIRY].append(row.order_id)
            keys[SLICES].append(row.order_id)
        if keys:
            with self.redis.pipeline(transaction=False) as pipe:
                for key, ids in keys.items():
                    pipe.zrem(key, *ids)
                for key, ids in sets.items():
                    pipe.srem(key, *ids)
                pipe.execute()

    def forget(self, pair: Pair, order_ids: Sequence[str]) -> None:
        """Takes ids the database no longer has out of the pair's sets."""
        if order_ids:
            with self.redis.pipeline(transaction=False) as pipe:
                for order_type in (OrderType.LIMIT, OrderType.STOP):
                    pipe.zrem(side_key(pair, order_type), *order_ids)
                pipe.zrem(EXPIRY, *order_ids)
                pipe.execute()

    def forget_expiries(self, order_ids: Sequence[str]) -> None:
        """Takes ids the database no longer has out of the time index."""
        if order_ids:
            self.redis.zrem(EXPIRY, *order_ids)

    def sniped(self) -> dict[str, list[str]]:
        """The sniper orders indexed, by the token each waits for."""
        symbols = sorted(_text(s) for s in self.redis.smembers(SNIPED))
        if not symbols:
            return {}
        with self.redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.smembers(sniper_key(symbol))
            replies = pipe.execute()
        found = {s: sorted(_text(i) for i in ids) for s, ids in zip(symbols, replies, strict=True)}
        # A token no order waits for any more leaves the list (one added
        # meanwhile is indexed again by the next poll or sweep).
        empty = [s for s, ids in found.items() if not ids]
        if empty:
            self.redis.srem(SNIPED, *empty)
        return {s: ids for s, ids in found.items() if ids}

    def forget_snipers(self, symbol: str, order_ids: Sequence[str]) -> None:
        """Takes ids the database no longer has out of the token's set."""
        if order_ids:
            self.redis.srem(sniper_key(symbol), *order_ids)

    def pairs(self) -> set[Pair]:
        found: set[Pair] = set()
        for member in self.redis.smembers(PAIRS):
            text = member.decode() if isinstance(member, bytes) else str(member)
            input_token, _, output_token = text.partition(":")
            found.add((input_token, output_token))
        return found

    def crossed(self, prices: dict[Pair, Fraction]) -> dict[Pair, list[str]]:
        """Each pair's orders whose trigger its price may have met, in one
        round trip: O(log n + k) per pair."""
        pairs = list(prices)
        with self.redis.pipeline(transaction=False) as pipe:
            for pair in pairs:
                price = float(prices[pair])
                pipe.zrangebyscore(side_key(pair, OrderType.LIMIT), "-inf", price * (1 + HAIR))
                pipe.zrangebyscore(side_key(pair, OrderType.STOP), price * (1 - HAIR), "+inf")
            replies = pipe.execute()
        found: dict[Pair, list[str]] = {}
        for index, pair in enumerate(pairs):
            ids = [_text(i) for i in replies[2 * index] + replies[2 * index + 1]]
            if ids:
                found[pair] = ids
        return found

    def due(self, now: float, limit: int = 10_000) -> list[tuple[str, float]]:
        """Orders whose expiry has come, with it, oldest first."""
        found: list[tuple[bytes, float]] = self.redis.zrangebyscore(  # type: ignore[assignment]
            EXPIRY, "-inf", now, 0, limit, withscores=True
        )
        return [(_text(i), float(at)) for i, at in found]

    def slices_due(self, now: float, limit: int = 1_000) -> list[str]:
        """TWAP orders whose next slice is to be looked at."""
        return [_text(i) for i in self.redis.zrangebyscore(SLICES, "-inf", now, 0, limit)]

    def schedule_slice(self, order_id: str, at: float | None) -> None:
        """When to look at the TWAP order next; None: never (it ended)."""
        if at is None:
            self.redis.zrem(SLICES, order_id)
        else:
            self.redis.zadd(SLICES, {order_id: at})

    def built(self) -> bool:
        return bool(self.redis.exists(BUILT))

    def mark_built(self) -> None:
        self.redis.set(BUILT, repr(datetime.now(UTC).timestamp()))

    def waiting(self) -> dict[str, int]:
        """Orders indexed, by order type."""
        pairs = self.pairs()
        counts = {
            OrderType.LIMIT.value: 0,
            OrderType.STOP.value: 0,
            OrderType.TWAP.value: int(self.redis.zcard(SLICES)),
            OrderType.SNIPER.value: sum(len(ids) for ids in self.sniped().values()),
        }
        if not pairs:
            return counts
        with self.redis.pipeline(transaction=False) as pipe:
            for pair in pairs:
                pipe.zcard(side_key(pair, OrderType.LIMIT))
                pipe.zcard(side_key(pair, OrderType.STOP))
            replies = pipe.execute()
        counts[OrderType.LIMIT.value] = sum(replies[0::2])
        counts[OrderType.STOP.value] = sum(replies[1::2])
        return counts


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
