"""WatchHub.follow on its own: a hub fed by hand (no Redis) and a history
reader that answers from a dict and counts its reads."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from order_service.histories import HistoryReads
from order_service.watch_hub import (
    OrderNotFound,
    ShuttingDown,
    Signal,
    TooManyStreams,
    WatchHub,
)
from orderengine.statuses import Status
from orderengine.store.orders import History
from orderengine.v1 import order_pb2

ORDER = "order-1"
OWNER = "owner-1"
ORDER_STATUSES = [Status.PENDING, Status.ROUTING, Status.ROUTED, Status.SUBMITTED, Status.CONFIRMED]


def event(sequence: int, status: Status | None = None) -> order_pb2.OrderEvent:
    status = status or ORDER_STATUSES[min(sequence - 1, 3)]
    return order_pb2.OrderEvent(order_id=ORDER, sequence=sequence, status=status.proto)


class Database(HistoryReads):
    """An order's events as the database has them, and the reads asked of it."""

    def __init__(self, events: list[order_pb2.OrderEvent], owner: str = OWNER) -> None:
        self.events = events
        self.owner = owner
        self.reads: list[int] = []

    async def read(self, order_id: str, after: int) -> History | None:
        self.reads.append(after)
        await asyncio.sleep(0)
        if order_id != ORDER:
            return None
        terminal = bool(self.events) and Status.from_proto(self.events[-1].status).terminal
        last = self.events[-1].sequence if self.events else 0
        return History(self.owner, terminal, last, [e for e in self.events if e.sequence > after])


def hub_over(database: Database, streams_per_owner: int = 0) -> WatchHub:
    # Never started: events are delivered by hand, as the listener would.
    return WatchHub(cast(Redis, None), database, streams_per_owner)


async def take(events: AsyncGenerator[order_pb2.OrderEvent, None], n: int) -> list[int]:
    return [(await anext(events)).sequence for _ in range(n)]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run(test: Any) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 10))


def test_history_then_live_events_each_once_in_sequence_until_the_end() -> None:
    database = Database([event(1), event(2)])

    async def watch() -> tuple[list[int], list[int], int]:
        hub = hub_over(database)
        events = hub.follow(ORDER, OWNER, 0)
        got = await take(events, 2)
        # Live: one already read from the history, then the next ones.
        database.events.append(event(3))
        hub._deliver(event(2))
        hub._deliver(event(3))
        got += await take(events, 1)
        database.events.append(event(4, Status.FAILED))
        hub._deliver(event(4, Status.FAILED))
        got += [e.sequence async for e in events]
        return got, database.reads, hub.watchers

    got, reads, watchers = run(watch)
    assert got == [1, 2, 3, 4]
    assert reads == [0]  # nothing missing: no second read
    assert watchers == 0


def test_a_gap_or_a_resync_reads_the_database_again_from_the_last_given() -> None:
    database = Database([event(1)])

    async def watch() -> tuple[list[int], list[int]]:
        hub = hub_over(database)
        events = hub.follow(ORDER, OWNER, 0)
        got = await take(events, 1)
        # 2 and 3 commit, only 3's publish arrives.
        database.events += [event(2), event(3)]
        await settle()
        hub._deliver(event(3))
        got += await take(events, 2)
        # A resync with nothing new reads again and waits on.
        await settle()
        hub._broadcast(Signal.RESYNC)
        await settle()
        database.events.append(event(4, Status.CANCELLED))
        hub._deliver(event(4, Status.CANCELLED))
        got += [e.sequence async for e in events]
        return got, database.reads

    got, reads = run(watch)
    assert got == [1, 2, 3, 4]
    assert reads == [0, 1, 3]


def test_a_watch_past_the_end_ends_when_the_order_does() -> None:
    database = Database([event(1), event(2)])

    async def watch() -> tuple[list[int], int]:
        hub = hub_over(database)
        events = hub.follow(ORDER, OWNER, 7)
        waiting = asyncio.ensure_future(anext(events))
        await settle()
        assert not waiting.done()
        hub._deliver(event(3, Status.FAILED))
        with pytest.raises(StopAsyncIteration):
            await waiting
        return database.reads, hub.watchers

    assert run(watch) == ([7], 0)


def test_at_the_cap_a_finished_order_is_read_and_an_open_one_refused() -> None:
    async def watch() -> tuple[list[int], dict[str, int]]:
        finished = Database([event(1), event(2, Status.CANCELLED)])
        hub = hub_over(finished, streams_per_owner=1)
        held = hub.follow(ORDER, OWNER, 0)
        await take(held, 1)  # holds the owner's one slot
        got = [e.sequence async for e in hub.follow(ORDER, OWNER, 0)]
        finished.events.pop()
        with pytest.raises(TooManyStreams):
            await anext(hub.follow(ORDER, OWNER, 0))
        counted = {"held": hub.streams(OWNER)}
        await held.aclose()  # the client left mid-write: its slot is free at once
        counted["after"] = hub.streams(OWNER)
        return got, counted

    got, counted = run(watch)
    assert got == [1, 2]
    assert counted == {"held": 1, "after": 0}


def test_another_owners_order_is_not_found_and_holds_no_slot() -> None:
    async def watch() -> int:
        hub = hub_over(Database([event(1)], owner="someone-else"))
        with pytest.raises(OrderNotFound):
            await anext(hub.follow(ORDER, OWNER, 0))
        return hub.streams(OWNER) + hub.watchers

    assert run(watch) == 0


def test_shutdown_names_the_sequence_to_resume_after() -> None:
    database = Database([event(1), event(2)])

    async def watch() -> tuple[int, int]:
        hub = hub_over(database)
        events = hub.follow(ORDER, OWNER, 0)
        await take(events, 2)
        waiting = asyncio.ensure_future(anext(events))
        await settle()
        await hub.close()
        with pytest.raises(ShuttingDown) as down:
            await waiting
        return down.value.after_sequence, hub.watchers

    assert run(watch) == (2, 0)


def test_a_waiting_watch_holds_no_event_or_history() -> None:
    """Ten thousand idle streams: each may hold its inbox and position, not
    the last event it gave nor the history it read."""
    database = Database([event(1), event(2)])

    async def watch() -> list[object]:
        hub = hub_over(database)
        events = hub.follow(ORDER, OWNER, 0)
        await take(events, 2)
        waiting = asyncio.ensure_future(anext(events))
        await settle()
        frame = cast(types.AsyncGeneratorType, events).ag_frame
        assert frame is not None
        held: list[object] = [
            value
            for value in frame.f_locals.values()
            if isinstance(value, order_pb2.OrderEvent | History)
        ]
        waiting.cancel()
        return held

    assert run(watch) == []
