"""One Redis subscription per process, fanned out in memory to every open
WatchOrder stream. Thousands of watchers cost no Redis connection each. Long on purpose:
the subscription, the inboxes and the resync rules share one state.

A watcher's inbox is bounded: a slow watcher loses live events rather than
holding memory, and reads what it lost from the database (it sees the gap in
sequences, or is told to resync). After Redis comes back every watcher is
told to resync, so a publish lost while it was away costs nothing; and every
``check_seconds`` (WATCH_CHECK_SECONDS) the hub asks the database, in one
read for all of them, which watched orders have gone further than their
watchers have sent, and tells those watchers to resync (a publish can be
lost with Redis up: the writer committed, then failed to publish).

Each owner may hold a bounded number of streams open on this process at
once: what a stream costs (its inbox, its call) is this process's memory,
so the count lives here too, and a process that dies takes its count with
it (no slot in Redis can outlive its stream).

``follow`` is a whole watch: it registers, reads the history, streams live
events in sequence and reads the database again whenever one is missing;
WatchOrder only writes what it yields and answers its exceptions."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import suppress
from enum import Enum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from order_service.histories import HistoryReads
from orderengine.events import CHANNEL, decode
from orderengine.observability.metrics_orders import WATCH_STREAMS
from orderengine.statuses import Status
from orderengine.store.orders import History
from orderengine.v1 import order_pb2

log = logging.getLogger(__name__)

INBOX_SIZE = 64


class TooManyStreams(Exception):
    """The owner already holds ``limit`` streams open on this process."""

    def __init__(self, owner: str, limit: int) -> None:
        super().__init__(owner, limit)
        self.owner = owner
        self.limit = limit


class OrderNotFound(Exception):
    """No such order, or another owner's (which is the same answer)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


class ShuttingDown(Exception):
    """The server is stopping: watch again elsewhere after ``after_sequence``."""

    def __init__(self, after_sequence: int) -> None:
        super().__init__(after_sequence)
        self.after_sequence = after_sequence


def _terminal(event: order_pb2.OrderEvent) -> bool:
    return Status.from_proto(event.status).terminal


class Signal(Enum):
    RESYNC = "resync"  # read the history again from the database
    SHUTDOWN = "shutdown"  # the server is stopping


class Inbox:
    """A watcher's live events: at most INBOX_SIZE, and one waiter. Lighter
    than an asyncio.Queue (four deques and an Event) and asyncio.wait_for (a
    task per wait): ten thousand idle watchers each hold one of these."""

    __slots__ = ("_items", "_waiter", "closed", "order_id", "overflowed", "owner", "sent")

    def __init__(self, order_id: str, owner: str) -> None:
        self.order_id = order_id
        self.owner = owner
        # The last sequence the stream sent, once it waits for live events
        # (it says so; None while it reads the database): what the hub's
        # check compares with the database.
        self.sent: int | None = None
        self._items: list[order_pb2.OrderEvent | Signal] = []
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False

    def __len__(self) -> int:
        """Items waiting to be read."""
        return len(self._items)

    def push(self, item: order_pb2.OrderEvent | Signal) -> None:
        if self.closed:
            return  # the stream is ending; nothing may push its signal out
        if len(self._items) >= INBOX_SIZE:
            # The watcher reads the database next; what waits here is stale.
            self.overflowed = True
            self._items.clear()
        else:
            self._items.append(item)
        self._wake()

    def close(self, item: Signal) -> None:
        """Delivers a signal even to a full inbox."""
        if len(self._items) >= INBOX_SIZE:
            self._items.clear()
        self._items.append(item)
        self.closed = True
        self._wake()

    def ready(self) -> asyncio.Future[None]:
        """Done once there is an item to take. A waiting stream awaits this
        future itself: a coroutine around it would cost each idle stream
        its frame."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        if self._items or self.overflowed:
            waiter.set_result(None)
        return waiter

    def take(self) -> order_pb2.OrderEvent | Signal | None:
        """The next item, once ``ready``; None when events were lost to an
        overflow (then the database has them)."""
        if self.overflowed:
            self.overflowed = False
            return None
        return self._items.pop(0)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class WatchHub:
    def __init__(
        self,
        redis: Redis,
        histories: HistoryReads,
        streams_per_owner: int = 0,
        last_sequences: Callable[[Sequence[str]], dict[str, int]] | None = None,
        check_seconds: float = 15.0,
    ) -> None:
        self.redis = redis
        # What a watcher reads of the database: at first, and after a gap.
        self.histories = histories
        # 0 (or less): no cap.
        self.streams_per_owner = streams_per_owner
        # Orders' last sequences from the database (blocking: run on a thread).
        self.last_sequences = last_sequences
        self.check_seconds = check_seconds
        # Lists, not sets: most orders have one watcher, and an empty set
        # alone is 216 bytes.
        self._inboxes: dict[str, list[Inbox]] = defaultdict(list)
        self._streams: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.subscribed = asyncio.Event()

    @property
    def watchers(self) -> int:
        return sum(len(s) for s in self._inboxes.values())

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._listen()))
        if self.last_sequences is not None:
            self._tasks.append(asyncio.create_task(self._check()))

    def streams(self, owner: str) -> int:
        """The owner's streams open on this process."""
        return self._streams.get(owner, 0)

    def open(self, order_id: str, owner: str) -> Inbox:
        """An inbox for the order's live events, registered (and counted as
        one of the owner's streams) until ``release``. Raises TooManyStreams,
        registering nothing."""
        open_now = self._streams.get(owner, 0)
        if self.streams_per_owner > 0 and open_now >= self.streams_per_owner:
            raise TooManyStreams(owner, self.streams_per_owner)
        self._streams[owner] = open_now + 1
        inbox = Inbox(order_id, owner)
        self._inboxes[order_id].append(inbox)
        WATCH_STREAMS.inc()
        return inbox

    def release(self, inbox: Inbox) -> None:
        """Ends what ``open`` began; call it however the stream ends."""
        WATCH_STREAMS.dec()
        left = self._streams[inbox.owner] - 1
        if left:
            self._streams[inbox.owner] = left
        else:
            del self._streams[inbox.owner]
        boxes = self._inboxes.get(inbox.order_id)
        if boxes is not None and inbox in boxes:
            boxes.remove(inbox)
            if not boxes:
                del self._inboxes[inbox.order_id]

    async def follow(
        self, order_id: str, owner: str, after: int
    ) -> AsyncGenerator[order_pb2.OrderEvent, None]:
        """The owner's order's events after sequence ``after``: its history,
        then live, each once and in sequence, ending with the order's end.
        Raises TooManyStreams (the owner is at the cap and the order is not
        finished), OrderNotFound, ShuttingDown, or what the store raised
        (OperationalError: it is down). A caller that stops early must
        ``aclose`` it, which frees the stream's slot at once.

        Thousands of these wait at once, so while waiting it holds no event
        and no history: its inbox, and the last sequence it gave."""
        last = after
        # Register first, then read the history: an event committed between
        # the two arrives live, and duplicates are dropped by sequence. An
        # owner at the cap may still read a finished order's history.
        try:
            inbox: Inbox | None = self.open(order_id, owner)
        except TooManyStreams as exc:
            inbox, full = None, exc
        try:
            history = await self._history(order_id, owner, last)
            if inbox is None and not history.terminal:
                raise full
            item: order_pb2.OrderEvent | Signal | None
            while True:
                for item in history.events:
                    if item.sequence > last:
                        yield item
                        last = item.sequence
                        if _terminal(item):
                            return
                if history.terminal or inbox is None:
                    return  # nothing more will come
                # A client may resume past the order's end (after beyond its
                # last event): the check compares the database's last
                # sequence with what this stream has seen, not with that.
                inbox.sent = min(last, history.last_sequence)
                del history
                # Live events in sequence, until one is missing or the hub
                # says to resync; then the database has what was missed.
                while True:
                    item = None  # idle, a stream holds no event: its inbox and position
                    await inbox.ready()
                    if (item := inbox.take()) is None:
                        break
                    if item is Signal.SHUTDOWN:
                        raise ShuttingDown(last)
                    if item is Signal.RESYNC:
                        break
                    assert isinstance(item, order_pb2.OrderEvent)
                    if item.sequence <= last:
                        # Already given from the history, or the caller asked
                        # past it; but the order's end still ends the watch.
                        if _terminal(item):
                            return
                        if item.sequence == inbox.sent + 1:
                            inbox.sent = item.sequence
                        continue
                    if item.sequence > last + 1:
                        break  # missed one
                    yield item
                    last = inbox.sent = item.sequence
                    if _terminal(item):
                        return
                inbox.sent = None  # reading the database: nothing for the check to compare
                history = await self._history(order_id, owner, last)
        finally:
            if inbox is not None:
                self.release(inbox)

    async def _history(self, order_id: str, owner: str, after: int) -> History:
        """The owner's order's history after ``after``."""
        history = await self.histories.read(order_id, after)
        # Another owner's order is exactly an order that does not exist.
        if history is None or history.owner != owner:
            raise OrderNotFound(order_id)
        return history

    def _deliver(self, event: order_pb2.OrderEvent) -> None:
        for inbox in self._inboxes.get(event.order_id, ()):
            inbox.push(event)

    def _receive(self, data: bytes) -> None:
        """One message off the channel: the events of one commit. This is
        the process's only listener: a message it cannot read, or a watcher
        it cannot reach, costs that message or that watcher, never the
        fan-out itself."""
        if not self._inboxes:  # nobody watches: nothing to read it for
            return
        try:
            events = decode(data)
        except Exception as exc:
            log.warning(
                "event bus: skipped a message that is not events (%d bytes): %s", len(data), exc
            )
            return
        for event in events:
            try:
                self._deliver(event)
            except Exception:
                log.exception(
                    "event bus: could not deliver order %s's event %d",
                    event.order_id,
                    event.sequence,
                )

    def _broadcast(self, item: Signal) -> None:
        for boxes in self._inboxes.values():
            for inbox in boxes:
                inbox.close(item) if item is Signal.SHUTDOWN else inbox.push(item)

    async def _listen(self) -> None:
        delay = 0.1
        first = True
        while not self._closing:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.subscribed.set()
                    if not first:
                        log.info("event bus: subscribed again, watchers resync")
                        self._broadcast(Signal.RESYNC)
                    first, delay = False, 0.1
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._receive(message["data"])
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("event bus: %s; subscribing again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _check(self) -> None:
        assert self.last_sequences is not None
        while not self._closing:
            await asyncio.sleep(self.check_seconds)
            watched = list(self._inboxes)
            if not watched:
                continue
            try:
                latest = await asyncio.to_thread(self.last_sequences, watched)
            except Exception as exc:  # the database is away: the next check tries again
                log.warning("watchers' check: %s", exc)
                continue
            for order_id, last in latest.items():
                for inbox in self._inboxes.get(order_id, ()):
                    if inbox.sent is not None and inbox.sent < last:
                        inbox.push(Signal.RESYNC)

    async def close(self) -> None:
        """Ends every open stream (with SHUTDOWN), the subscription and the check."""
        self._closing = True
        self._broadcast(Signal.SHUTDOWN)
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
