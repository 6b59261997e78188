"""Submissions in batches: SubmitOrder calls that arrive while a batch is
being written wait for the next one, so under load many orders share one
database transaction and one Redis round trip (queue check, jobs, markers,
events), and a lone order still goes at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from orderengine.events import publish
from orderengine.order_queue import enqueue_orders, queue_depth
from orderengine.store.models import OrderRow
from orderengine.store.orders import NewOrder, OrderStore

log = logging.getLogger(__name__)

MAX_BATCH = 256


class QueueUnavailable(Exception):
    """Redis does not answer: nothing was stored."""


class QueueFull(Exception):
    def __init__(self, depth: int) -> None:
        super().__init__(depth)
        self.depth = depth


class Submissions:
    def __init__(self, store: OrderStore, redis: Redis, queue: Queue,
                 max_queue_depth: int) -> None:
        self.store = store
        self.redis = redis
        self.queue = queue
        self.max_queue_depth = max_queue_depth
        self._waiting: list[tuple[NewOrder, asyncio.Future[tuple[OrderRow, bool]]]] = []
        self._writer: asyncio.Task[None] | None = None
        # One thread writes batches in turn: the order of commits is the
        # order of arrival, and the database sees one writer per process.
        self._thread = ThreadPoolExecutor(1, "submissions")

    async def submit(self, new: NewOrder) -> tuple[OrderRow, bool]:
        """The stored order, and whether this call created it. Raises
        QueueFull or QueueUnavailable (nothing stored), or the store's error."""
        future: asyncio.Future[tuple[OrderRow, bool]] = (
            asyncio.get_running_loop().create_future())
        self._waiting.append((new, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        return await future

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                results = await loop.run_in_executor(
                    self._thread, self._write, [new for new, _ in batch])
            except Exception as exc:  # every caller of the batch hears of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _write(self, news: Sequence[NewOrder]) -> list[tuple[OrderRow, bool]]:
        # Refuse before storing anything: an order we cannot queue now would
        # only wait for the reconciler, and a full queue must push back.
        try:
            depth = queue_depth(self.queue)
        except RedisError as exc:
            raise QueueUnavailable from exc
        if depth >= self.max_queue_depth:
            raise QueueFull(depth)
        stored = self.store.submit_many(news)
        created = [(row, event) for row, event in stored if event is not None]
        if created:
            try:
                with self.redis.pipeline(transaction=False) as pipe:
                    enqueue_orders(self.queue, [row.order_id for row, _ in created],
                                   pipeline=pipe)
                    publish(pipe, [event for _, event in created if event is not None])
                    pipe.execute()
            except RedisError as exc:
                # Stored is accepted: the reconciler queues what Redis did
                # not take (it failed between the depth check and here).
                log.warning("%d orders stored but not queued (%s); the reconciler will",
                            len(created), exc)
        return [(row, event is not None) for row, event in stored]

    def close(self) -> None:
        self._thread.shutdown(wait=True)
