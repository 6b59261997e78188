"""One Redis subscription per process, fanned out in memory to every open
WatchOrder stream. Thousands of watchers cost no Redis connection each.

A watcher's inbox is bounded: a slow watcher loses live events rather than
holding memory, and reads what it lost from the database (it sees the gap in
sequences, or is told to resync). After Redis comes back every watcher is
told to resync, so a publish lost while it was away costs nothing."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from orderengine.events import CHANNEL, decode
from orderengine.v1 import order_pb2

log = logging.getLogger(__name__)

INBOX_SIZE = 64


class Signal(Enum):
    RESYNC = "resync"  # read the history again from the database
    SHUTDOWN = "shutdown"  # the server is stopping


class Inbox:
    def __init__(self) -> None:
        self.items: asyncio.Queue[order_pb2.OrderEvent | Signal] = asyncio.Queue(INBOX_SIZE)
        self.overflowed = False

    def push(self, item: order_pb2.OrderEvent | Signal) -> None:
        try:
            self.items.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    def close(self, item: Signal) -> None:
        """Delivers a signal even to a full inbox."""
        while self.items.full():
            self.items.get_nowait()
        self.items.put_nowait(item)


class WatchHub:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._inboxes: dict[str, set[Inbox]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscribed = asyncio.Event()

    @property
    def watchers(self) -> int:
        return sum(len(s) for s in self._inboxes.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    @contextmanager
    def watch(self, order_id: str) -> Iterator[Inbox]:
        """An inbox for the order's live events, registered until the block ends."""
        inbox = Inbox()
        self._inboxes[order_id].add(inbox)
        try:
            yield inbox
        finally:
            boxes = self._inboxes.get(order_id)
            if boxes is not None:
                boxes.discard(inbox)
                if not boxes:
                    del self._inboxes[order_id]

    def _deliver(self, event: order_pb2.OrderEvent) -> None:
        for inbox in self._inboxes.get(event.order_id, ()):
            inbox.push(event)

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
                            self._deliver(decode(message["data"]))
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("event bus: %s; subscribing again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Ends every open stream (with SHUTDOWN) and the subscription."""
        self._closing = True
        self._broadcast(Signal.SHUTDOWN)
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
