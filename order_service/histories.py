"""Watchers' reads of the database, many at a time.

Ten thousand watchers open at once after a replica restarts, and each needs
its order's owner, status and events before it streams, as does every
stream the hub tells to resync. One read per watcher would be ten thousand
thread hops and twenty thousand queries. Here every read asked for while
one is in flight goes into the next: one thread hop and two queries per
IDS_PER_QUERY orders, however many watchers wait (and a lone watcher waits
for nobody)."""

from __future__ import annotations

from orderengine.batching import Coalescer
from orderengine.store.orders import IDS_PER_QUERY, History, OrderStore

# (order id, after which sequence)
Read = tuple[str, int]


class HistoryReads:
    def __init__(self, store: OrderStore) -> None:
        self._store = store
        # Watchers of one order share its read (from the least of their
        # sequences), and count once towards a query's IDS_PER_QUERY: at
        # most one query's worth a hop, so the first watchers of a crowd
        # start streaming while the rest are read.
        self._reads: Coalescer[Read, History | None] = Coalescer(
            self._read_batch, IDS_PER_QUERY, key=lambda read: read[0]
        )

    async def read(self, order_id: str, after: int) -> History | None:
        """The order's history after ``after``; None if there is no such
        order. Raises what the store raised (OperationalError: it is down)."""
        return await self._reads.submit((order_id, after))

    def _read_batch(self, reads: list[Read]) -> list[History | None]:
        since: dict[str, int] = {}
        for order_id, after in reads:
            since[order_id] = min(after, since.get(order_id, after))
        found = self._store.histories(since)
        return [
            None if (history := found.get(order_id)) is None else history.after(after)
            for order_id, after in reads
        ]
