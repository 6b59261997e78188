"""Submissions in batches: SubmitOrder calls that arrive while a batch is
being written wait for the next one, so under load many orders share one
database transaction and two Redis round trips (the queue check with each
owner's rate limit; then jobs, markers, events), and a lone order still goes
at once. Callers are answered once their orders are committed; the second
round trip follows on the same thread once they have been, before the next
batch's check.

An order refused (a full queue, its owner's rate limit) whose
client_order_id names a stored order is answered with that order: the
resubmission of an order that exists changes nothing, so nothing refuses it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from order_service.price_impact import TooMuchImpact
from order_service.rate_limit import TokenBuckets
from order_service.wallets import InsufficientFunds, WalletsUnavailable
from orderengine.batching import Coalescer
from orderengine.events import publish
from orderengine.observability import handoffs
from orderengine.order_queue import QUEUED, enqueue_orders
from orderengine.statuses import Status
from orderengine.store.changes import NewOrder
from orderengine.store.models import StoredOrder
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2

log = logging.getLogger(__name__)

MAX_BATCH = 256


class QueueUnavailable(Exception):
    """Redis does not answer: nothing was stored."""


class QueueFull(Exception):
    """MAX_QUEUE_DEPTH orders wait already: this one is not stored."""

    def __init__(self, depth: int) -> None:
        super().__init__(depth)
        # Orders waiting (not jobs: a job drives up to 32).
        self.depth = depth


class RateLimited(Exception):
    """The owner's submit rate limit refused this order: nothing stored."""

    def __init__(self, limit: TokenBuckets, retry_after: float) -> None:
        super().__init__(limit.name, retry_after)
        self.limit = limit
        self.retry_after = retry_after


# Refused before the batch: the owner's wallet cannot pay for the order, or
# the chain did not say whether it can (order_service.wallets); its route
# moves the price too much (order_service.price_impact).
Precluded = InsufficientFunds | WalletsUnavailable | TooMuchImpact
Refused = QueueFull | RateLimited | Precluded
Written = tuple[StoredOrder, bool]
Result = Written | Refused
# An order, what its job carries, and why it is refused already (None: not).
Item = tuple[NewOrder, handoffs.Carrier, Precluded | None]


class Submissions:
    def __init__(
        self,
        store: OrderStore,
        redis: Redis,
        queue: Queue,
        max_queue_depth: int,
        rate_limit: TokenBuckets | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.queue = queue
        self.max_queue_depth = max_queue_depth
        # Orders per second per owner (None: no limit).
        self.rate_limit = rate_limit
        # One thread writes batches in turn: the order of commits is the
        # order of arrival, and the database sees one writer per process.
        self._thread = ThreadPoolExecutor(1, "submissions")
        # Each order with what its job carries for the submitting request
        # (its request id and trace: orderengine.observability.handoffs),
        # captured in that request's context, not the batch's.
        self._batches: Coalescer[Item, Written] = Coalescer(
            self._write_batch, MAX_BATCH, executor=self._thread, then=self._after_answers
        )
        # What the batches written leave to do once their callers have
        # their answers; touched only by the submissions thread.
        self._left: list[Callable[[], None]] = []

    async def submit(self, new: NewOrder) -> tuple[StoredOrder, bool]:
        """The stored order, and whether this call created it. Raises
        QueueFull, RateLimited or QueueUnavailable (nothing stored), or the
        store's error; a resubmission of a stored order is answered even
        while the queue is full or its owner is limited.

        A caller whose deadline passes (or who cancels) while its order waits
        for a batch was told DEADLINE_EXCEEDED (CANCELLED): its order is not
        stored. Once a batch's write has begun it completes, and such an
        order exists (found again by its client_order_id, or by ListOrders)."""
        return await self._batches.submit((new, handoffs.capture(), None))

    async def submit_many(
        self,
        news: Sequence[NewOrder],
        carried: Sequence[handoffs.Carrier],
        precluded: Sequence[Precluded | None] = (),
    ) -> list[Written | BaseException]:
        """``submit`` for several orders at once, each with what its job
        carries: each one's stored order and whether this call created it,
        or what ``submit`` would have raised for it, in order. An order
        ``precluded`` is refused so (unless its client_order_id names a
        stored order, which it is answered with) and takes no rate token."""
        refusals = list(precluded) or [None] * len(news)
        return await self._batches.submit_many(list(zip(news, carried, refusals, strict=True)))

    def _write_batch(self, batch: list[Item]) -> list[Result]:
        return self._write(
            [new for new, _, _ in batch],
            [carrier for _, carrier, _ in batch],
            {index: refused for index, (_, _, refused) in enumerate(batch) if refused},
        )

    def _admit(
        self, news: Sequence[NewOrder], precluded: Mapping[int, Refused] | None = None
    ) -> dict[int, Refused]:
        """Counts the orders waiting in the queue and takes each owner's
        tokens in one round trip; the orders refused, by index: those
        ``precluded``, then by their owner's limit, or, in arrival order,
        those past the queue's room. Raises QueueUnavailable for the whole
        batch."""
        refused: dict[int, Refused] = dict(precluded or {})
        wanted: dict[str, list[int]] = {}
        for index, new in enumerate(news):
            if index not in refused:
                wanted.setdefault(new.owner, []).append(index)
        limit = self.rate_limit
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hlen(QUEUED)
                if limit is not None:
                    for owner, indexes in wanted.items():
                        limit.check(pipe, owner, len(indexes))
                depth, *taken = pipe.execute(raise_on_error=False)
            if isinstance(depth, Exception):
                raise depth
            if limit is not None:
                for (owner, indexes), result in zip(wanted.items(), taken, strict=True):
                    grant = limit.grant(result, owner, len(indexes))
                    for index, delay in zip(
                        indexes[grant.granted :], grant.retry_after, strict=True
                    ):
                        refused[index] = RateLimited(limit, delay)
        except RedisError as exc:
            raise QueueUnavailable from exc
        # A batch takes only the room left, so MAX_QUEUE_DEPTH bounds the
        # orders waiting, not the batches (each replica checks on its own,
        # so replicas submitting at the same moment may pass it by a batch).
        waiting = int(depth)
        for index in range(len(news)):
            if index in refused:
                continue
            if waiting < self.max_queue_depth:
                waiting += 1
            else:
                refused[index] = QueueFull(waiting)
        return refused

    def _answer_resubmissions(
        self, news: Sequence[NewOrder], refused: dict[int, Refused]
    ) -> dict[int, tuple[StoredOrder, bool]]:
        """The refused orders whose client_order_id names a stored order,
        answered with it (a read only when such a refusal happens)."""
        keys = {
            (news[index].owner, news[index].client_order_id or "")
            for index in refused
            if news[index].client_order_id
        }
        if not keys:
            return {}
        found = self.store.by_client_ids(keys)
        answered: dict[int, tuple[StoredOrder, bool]] = {}
        for index in refused:
            row = found.get((news[index].owner, news[index].client_order_id or ""))
            if row is not None:
                answered[index] = (row, False)
        return answered

    def _write(
        self,
        news: Sequence[NewOrder],
        carried: Sequence[handoffs.Carrier] = (),
        precluded: Mapping[int, Refused] | None = None,
    ) -> list[Result]:
        # Refuse before storing anything: an order we cannot queue now would
        # only wait for the reconciler, and a full queue must push back.
        refused = self._admit(news, precluded)
        answered = self._answer_resubmissions(news, refused) if refused else {}
        for index in answered:
            del refused[index]
        kept = [
            index for index in range(len(news)) if index not in refused and index not in answered
        ]
        admitted = [news[index] for index in kept]
        stored = self.store.submit_many(admitted) if admitted else []
        created = [(row, event) for row, event in stored if event is not None]
        # A waiting order starts OPEN, not queued: the trigger part finds it
        # in the database (orderengine.triggers).
        queued = [row.order_id for row, _ in created if row.status == Status.PENDING]
        if created:
            # Stored is accepted: the callers are answered now, and their
            # jobs and events go out next on this thread, before the next
            # batch's depth check. A process that dies in between leaves
            # them to the reconciler, as Redis failing here does.
            self._left.append(
                partial(
                    self._queue_and_publish,
                    queued,
                    # Each stored order's carrier (none without ``carried``).
                    {
                        row.order_id: carried[index]
                        for (row, _), index in zip(stored, kept, strict=True)
                        if index < len(carried)
                    },
                    [event for _, event in created if event is not None],
                )
            )
        results = iter([(row, event is not None) for row, event in stored])
        return [
            refused[index]
            if index in refused
            else answered[index]
            if index in answered
            else next(results)
            for index in range(len(news))
        ]

    def _after_answers(self) -> None:
        while self._left:
            self._left.pop(0)()

    def _queue_and_publish(
        self,
        queued: list[str],
        carried: dict[str, handoffs.Carrier],
        events: list[order_pb2.OrderEvent],
    ) -> None:
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                if queued:
                    enqueue_orders(self.queue, queued, pipeline=pipe, carried=carried)
                publish(pipe, events)
                pipe.execute()
        except RedisError as exc:
            # The reconciler queues what Redis did not take (it failed
            # between the depth check and here).
            log.warning(
                "%d orders stored but not queued (%s); the reconciler will", len(events), exc
            )

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._after_answers()  # a batch whose callers were never answered
