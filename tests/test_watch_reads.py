"""Watchers' reads: many streams opening at once are read together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import pytest
from sqlalchemy.exc import OperationalError

from order_service.histories import HistoryReads
from orderengine.statuses import Status
from orderengine.store.changes import Change
from orderengine.store.orders import IDS_PER_QUERY, History, OrderStore
from tests.test_store import new_order


class CountedStore(OrderStore):
    """The real store, counting its ``histories`` reads and what each asked."""

    def __init__(self, store: OrderStore) -> None:
        super().__init__(store.engine)
        self.asked: list[int] = []

    def histories(self, after: Mapping[str, int]) -> dict[str, History]:
        self.asked.append(len(after))
        return super().histories(after)


def test_histories_reads_each_order_after_its_own_sequence(store: OrderStore) -> None:
    ids = [store.submit(new_order(owner=f"owner-{i}"))[0].order_id for i in range(3)]
    store.transition(ids[0], Status.ROUTING)
    store.transition(ids[0], Status.FAILED, Change(reason="no"))
    missing = str(uuid.uuid4())
    found = store.histories({ids[0]: 1, ids[1]: 0, ids[2]: 1, missing: 0})
    assert set(found) == set(ids)
    assert [e.sequence for e in found[ids[0]].events] == [2, 3]
    assert (found[ids[0]].terminal, found[ids[0]].last_sequence) == (True, 3)
    assert [e.sequence for e in found[ids[1]].events] == [1]
    assert (found[ids[1]].owner, found[ids[1]].terminal) == ("owner-1", False)
    assert found[ids[2]].events == []
    assert store.last_sequences([*ids, missing]) == {ids[0]: 3, ids[1]: 1, ids[2]: 1}


def test_a_crowd_of_watchers_is_read_a_query_at_a_time(store: OrderStore) -> None:
    counted = CountedStore(store)
    ids = [counted.submit(new_order())[0].order_id for _ in range(20)]
    counted.transition(ids[0], Status.ROUTING)
    # Many watchers on few orders and on orders that do not exist, at once.
    wanted = [(ids[i % 20], i % 2) for i in range(IDS_PER_QUERY)] + [
        (str(uuid.uuid4()), 0) for _ in range(IDS_PER_QUERY * 2)
    ]

    async def crowd() -> list[History | None]:
        reads = HistoryReads(counted)
        return await asyncio.gather(*(reads.read(order_id, after) for order_id, after in wanted))

    got = asyncio.run(crowd())
    # A query's worth of orders a read, every order in one read only.
    orders = len({order_id for order_id, _ in wanted})
    assert sum(counted.asked) == orders
    assert len(counted.asked) == -(-orders // IDS_PER_QUERY)
    for (order_id, after), history in zip(wanted, got, strict=True):
        if order_id not in ids:
            assert history is None
            continue
        assert history is not None
        expected = (
            [2]
            if order_id == ids[0] and after == 1
            else [1, 2]
            if order_id == ids[0]
            else ([] if after == 1 else [1])
        )
        assert [e.sequence for e in history.events] == expected


def test_every_watcher_waiting_on_a_failed_read_gets_its_error(store: OrderStore) -> None:
    class Down(OrderStore):
        def histories(self, after: Mapping[str, int]) -> dict[str, History]:
            raise OperationalError("SELECT", {}, Exception("database is away"))

    async def crowd() -> list[object]:
        reads = HistoryReads(Down(store.engine))
        return await asyncio.gather(
            *(reads.read(str(uuid.uuid4()), 0) for _ in range(5)), return_exceptions=True
        )

    assert all(isinstance(r, OperationalError) for r in asyncio.run(crowd()))


def test_a_watcher_that_leaves_while_waiting_leaves_the_rest_their_answers(
    store: OrderStore,
) -> None:
    order_id = store.submit(new_order())[0].order_id

    async def one_leaves() -> History | None:
        reads = HistoryReads(store)
        first = asyncio.ensure_future(reads.read(order_id, 0))
        leaving = asyncio.ensure_future(reads.read(order_id, 0))
        staying = asyncio.ensure_future(reads.read(order_id, 0))
        await asyncio.sleep(0)
        leaving.cancel()
        await first
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    history = asyncio.run(one_leaves())
    assert history is not None and [e.sequence for e in history.events] == [1]
