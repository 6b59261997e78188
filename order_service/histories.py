"""Watchers' reads of the database, many at a time.

Ten thousand watchers open at once after a replica restarts, and each needs
its order's owner, status and events before it streams, as does every
stream the hub tells to resync. One read per watcher would be ten thousand
thread hops and twenty thousand queries. Here every read asked for while
one is in flight goes into the next: one thread hop and two queries per
IDS_PER_QUERY orders, however many watchers wait (and a lone watcher waits
for nobody)."""

from __future__ import annotations

import asyncio
from itertools import islice

from orderengine.store.orders import IDS_PER_QUERY, History, OrderStore


class HistoryReads:
    def __init__(self, store: OrderStore) -> None:
        self._store = store
        # order id -> (after which sequence, who waits) for the next read
        self._wanted: dict[str, list[tuple[int, asyncio.Future[History | None]]]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def read(self, order_id: str, after: int) -> History | None:
        """The order's history after ``after``; None if there is no such
        order. Raises what the store raised (OperationalError: it is down)."""
        waiter: asyncio.Future[History | None] = asyncio.get_running_loop().create_future()
        self._wanted.setdefault(order_id, []).append((after, waiter))
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_all())
        return await waiter

    async def _read_all(self) -> None:
        try:
            while self._wanted:
                # At most one query's worth a hop: the first watchers of a
                # crowd start streaming while the rest are read.
                wanted = dict(islice(self._wanted.items(), IDS_PER_QUERY))
                for order_id in wanted:
                    del self._wanted[order_id]
                try:
                    found = await asyncio.to_thread(self._store.histories, {
                        order_id: min(after for after, _ in waiters)
                        for order_id, waiters in wanted.items()})
                except Exception as exc:  # each waiter's call decides what it means
                    for waiters in wanted.values():
                        for _, waiter in waiters:
                            if not waiter.done():
                                waiter.set_exception(exc)
                    continue
                for order_id, waiters in wanted.items():
                    history = found.get(order_id)
                    for after, waiter in waiters:
                        if not waiter.done():  # its call may have ended meanwhile
                            waiter.set_result(None if history is None else history.after(after))
        finally:
            self._reading = None
