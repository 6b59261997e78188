"""Calls coalesced into batches: what is asked for while a batch runs goes
into the next one, so under load many callers share one thread hop and one
round trip, and a lone caller still goes at once (it waits for nobody).

One piece for every such crowd (OrderService's submissions and watchers'
history reads; a gateway may batch its callers' submits the same way): items
are queued each with its future, one task drains the queue a batch of at
most ``max_batch`` at a time, the batch function runs on an executor (it
blocks), and each item gets its own result or exception, or every item the
exception that failed the whole batch. Work a batch leaves that its callers
need not wait for (``then``) runs after it, ahead of the next batch."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Hashable, Sequence
from concurrent.futures import Executor
from itertools import count, islice
from typing import Generic, TypeVar, cast

T = TypeVar("T")  # what a caller asks for
R = TypeVar("R")  # what it is answered

# A batch function: blocking, given the batch's items (in arrival order,
# those of one key side by side), returns one result per item, in the same
# order; an Exception in place of a result is raised to that item's caller
# alone. What it raises fails the whole batch.
BatchFunction = Callable[[list[T]], Sequence[R | Exception]]
# The same, a coroutine function: awaited in the draining task (its work is
# another process's, a call), on no executor.
AsyncBatchFunction = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        run: BatchFunction[T, R] | AsyncBatchFunction[T, R],
        max_batch: int,
        *,
        executor: Executor | None = None,
        key: Callable[[T], Hashable] | None = None,
        in_flight: int = 1,
        then: Callable[[], None] | None = None,
    ) -> None:
        """``run``: the batch function, blocking or a coroutine function.
        ``executor``: where a blocking ``run`` runs (None: the loop's default); a
        one-thread executor runs batches in the order they were formed.
        ``key``: items of one key go into one batch together and count as one
        towards ``max_batch`` (as many reads of one row cost one); without
        it, each item counts. ``in_flight``: batches running at once (a
        call to another process: while one is on its way, the next forms and
        goes, so the caller's wait is not the sum of the round trips).
        ``then``: runs on ``executor`` after each batch, ahead of the next
        one; after a lone batch, once its callers have been answered and
        have run on. What a batch leaves to do (Submissions' jobs and
        events) then does not delay a lone caller's answer, as it would
        holding the GIL on the executor's thread while the answer is sent,
        and no batch passes it."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        if then is not None and executor is None:
            raise ValueError("then needs the executor it runs on")
        self._run = run
        self._awaited = inspect.iscoroutinefunction(run)
        self.max_batch = max_batch
        self._executor = executor
        self._key = key
        # Without a key each item is its own: a number nobody else has.
        self._numbers = count()
        # key -> its items and their futures, in the order keys first came.
        self._queued: dict[Hashable, list[tuple[T, asyncio.Future[R]]]] = {}
        self.in_flight = in_flight
        self._draining: set[asyncio.Task[None]] = set()
        self._then = then

    def __len__(self) -> int:
        """Items waiting for a batch (not those of the batch running)."""
        return sum(len(items) for items in self._queued.values())

    async def submit(self, item: T) -> R:
        """The item's result once its batch has run. Raises the item's own
        exception, or the one that failed its batch."""
        return await self._queue(item)

    async def submit_many(self, items: Sequence[T]) -> list[R | BaseException]:
        """Each item's result, or its exception (its own or its batch's), in
        order: items queued together, as as many callers arriving at once."""
        futures = [self._queue(item) for item in items]
        try:
            return await asyncio.gather(*futures, return_exceptions=True)
        except asyncio.CancelledError:
            for future in futures:  # those not yet in a batch are left out
                future.cancel()
            raise

    def _queue(self, item: T) -> asyncio.Future[R]:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        key = next(self._numbers) if self._key is None else self._key(item)
        self._queued.setdefault(key, []).append((item, future))
        if len(self._draining) < self.in_flight:
            self._draining.add(asyncio.create_task(self._drain()))
        return future

    def _run_then(self) -> None:
        assert self._then is not None and self._executor is not None
        try:
            self._executor.submit(self._then)
        except RuntimeError:  # shut down: it takes nothing new, so here
            self._then()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                keys = list(islice(self._queued, self.max_batch))
                # A caller that left (cancelled, or its deadline passed)
                # while waiting is not in the batch: for a write, what it
                # asked for is not done. Once a batch runs, it completes.
                batch = [
                    (item, future)
                    for key in keys
                    for item, future in self._queued.pop(key)
                    if not future.cancelled()
                ]
                if not batch:
                    continue
                outcome: Sequence[R | Exception] | Exception
                try:
                    items = [item for item, _ in batch]
                    if self._awaited:
                        outcome = await cast("AsyncBatchFunction[T, R]", self._run)(items)
                    else:
                        outcome = await loop.run_in_executor(
                            self._executor, cast("BatchFunction[T, R]", self._run), items
                        )
                    if len(outcome) != len(batch):  # else some caller would wait forever
                        raise RuntimeError(
                            f"a batch of {len(batch)} items got {len(outcome)} results"
                        )
                except asyncio.CancelledError:
                    # The loop is stopping: no caller is left waiting forever.
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # every caller of the batch hears of it
                    outcome = exc
                if self._then is None:
                    _answer(batch, outcome)
                elif self._queued:
                    # Others wait: what the batch left goes now, beside the
                    # answers (the next batch would wait for it either way).
                    self._run_then()
                    _answer(batch, outcome)
                else:
                    # Alone: its callers' answers go out first.
                    _answer(batch, outcome)
                    await asyncio.sleep(0)
                    self._run_then()
        finally:
            # Here, not in a done callback: an item queued from now on
            # starts a drain of its own.
            self._draining.discard(cast("asyncio.Task[None]", asyncio.current_task()))


def _answer(
    batch: list[tuple[T, asyncio.Future[R]]], outcome: Sequence[R | Exception] | Exception
) -> None:
    """Each caller of the batch its result or exception, or every one the
    exception that failed the batch; those who left get nothing."""
    for index, (_, future) in enumerate(batch):
        if future.done():  # its caller left while the batch ran
            continue
        answer = outcome if isinstance(outcome, Exception) else outcome[index]
        if isinstance(answer, Exception):
            future.set_exception(answer)
        else:
            future.set_result(answer)
