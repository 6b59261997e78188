"""One bad item among a thousand good ones, on every batched path: the job,
the tracker, the reconciler and the watch fan-out each handle it alone and
go on with the rest. Real Redis, real database, real gRPC services and a
real worker process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import update

from executor.chain.chain import current_slot, signature_for, tx_key
from executor.driver.context import Context
from executor.driver.inflight import INFLIGHT, Inflight, track
from executor.driver.reconciler import reconcile_once
from executor.driver.tracker import check_once
from order_service.histories import HistoryReads
from order_service.watch_hub import WatchHub
from orderengine.events import CHANNEL, publish
from orderengine.order_queue import enqueue_orders
from orderengine.statuses import Status
from orderengine.store.changes import Change, NewOrder, Transition
from orderengine.store.models import OrderRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2
from tests.conftest import OTHER_OWNER, OWNER, Processes, Services
from tests.helpers import eventually, worker_context

GOOD = 1000
SOL = 10**9


@pytest.fixture
def ctx(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """What a worker or tracker holds, built from the test's environment."""
    monkeypatch.setenv("RECONCILE_AFTER_SECONDS", "1")
    with worker_context() as built:
        yield built


def submitted(store: OrderStore, count: int, owner: str = OTHER_OWNER) -> list[str]:
    """``count`` SOL -> USDC orders, moved to SUBMITTED in one transaction a step."""
    ids = [
        row.order_id
        for row, _ in store.submit_many(
            [
                NewOrder(
                    owner=owner,
                    input_token="SOL",
                    output_token="USDC",
                    amount_in=SOL,
                    slippage_bps=50,
                )
            ]
            * count
        )
    ]
    for target, change in (
        (Status.ROUTING, lambda _: Change()),
        (Status.ROUTED, lambda _: Change()),
        (Status.SUBMITTED, lambda i: Change(signature=signature_for(f"{i}:1"))),
    ):
        moved = store.transition_many([Transition(i, target, change(i), 1) for i in ids])
        assert all(moved)
    return ids


def landed_on_chain(redis: Redis, signature: str, amount_out: str) -> None:
    """The chain's record of a swap that landed a while ago, as the lander writes it."""
    at = time.time() - 60
    redis.hset(
        tx_key(signature),
        mapping={
            "attempt_key": "",
            "state": "landed",
            "fate": "",
            "land_at": repr(at),
            "landed_at": repr(at),
            "slot": str(current_slot(at)),
            "amount_out": amount_out,
        },
    )


def settle_all(ctx: Context) -> int:
    """Tracker rounds until nothing is due; how many rounds it took."""
    rounds = 0
    while check_once(ctx):
        rounds += 1
        assert rounds < 50
    return rounds


def statuses_of(store: OrderStore, ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in store.get_many(ids).values():
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def test_the_tracker_fails_an_order_with_an_amount_no_column_holds_and_confirms_the_rest(
    services: Services,
    ctx: Context,
    store: OrderStore,
    redis: Redis,
) -> None:
    """The reported stall: one landed swap with an amount out above the bound
    aborted every round its entry came due in, and all the entries claimed
    with it came due together again, forever."""
    good = submitted(store, GOOD)
    (poison,) = submitted(store, 1, owner=OWNER)
    for order_id in good:
        landed_on_chain(redis, signature_for(f"{order_id}:1"), "139.44")
    # 2**64 base units of USDC: more than a u64, and so than any column holds.
    landed_on_chain(redis, signature_for(f"{poison}:1"), "18446744073709.551616")
    entries = [Inflight(i, 1, signature_for(f"{i}:1")) for i in [poison, *good]]
    track(redis, entries)
    redis.zadd(INFLIGHT, {"not an entry": 0})  # nor can one unreadable entry stall a round

    settle_all(ctx)

    assert statuses_of(store, good) == {Status.CONFIRMED: GOOD}
    assert {r.amount_out for r in store.get_many(good).values()} == {139_440_000}
    row = store.get(poison)
    assert row is not None and row.status == Status.FAILED and row.amount_out is None
    last = store.events(poison)[-1]
    assert last.reason_code == "AMOUNT_OVERFLOW"
    assert "18446744073709.551616" in last.reason and "too large" in last.reason
    assert redis.zcard(INFLIGHT) == 0


def test_a_job_fails_an_order_it_cannot_send_and_submits_the_rest(
    services: Services,
    ctx: Context,
    store: OrderStore,
    processes: Processes,
) -> None:
    """An order whose input token this engine no longer lists: building its
    quote request raised, and the job's whole batch stayed PENDING."""
    news = [
        NewOrder(
            owner=OTHER_OWNER,
            input_token="USDC",
            output_token="SOL",
            amount_in=10**6,
            slippage_bps=100,
        )
    ] * GOOD
    good = [row.order_id for row, _ in store.submit_many(news)]
    ((poison_row, _),) = store.submit_many([news[0]])
    poison = poison_row.order_id
    with store.engine.begin() as connection:
        connection.execute(
            update(OrderRow).where(OrderRow.order_id == poison).values(input_token="WIF")
        )
    # The poison sits in the middle of a job's batch.
    enqueue_orders(ctx.queue, [*good[:500], poison, *good[500:]])
    processes.worker()  # no tracker: a good order ends SUBMITTED

    def settled() -> bool:
        return statuses_of(store, good) == {Status.SUBMITTED: GOOD}

    eventually(settled, timeout=90, every=0.5)
    row = store.get(poison)
    assert row is not None and row.status == Status.FAILED
    last = store.events(poison)[-1]
    assert last.reason_code == "ORDER_INVALID"
    assert "WIF" in last.reason


def test_the_reconciler_hands_back_every_stuck_order_around_one_it_cannot_track(
    services: Services,
    ctx: Context,
    store: OrderStore,
    redis: Redis,
) -> None:
    """A stuck SUBMITTED order whose signature holds the entries' separator:
    the reconciler tracked it again, and the entry it made broke every
    tracker round that claimed it. (A reconciler pass takes 500 orders.)"""
    pending = [
        row.order_id
        for row, _ in store.submit_many(
            [
                NewOrder(
                    owner=OTHER_OWNER,
                    input_token="SOL",
                    output_token="USDC",
                    amount_in=SOL,
                    slippage_bps=50,
                )
            ]
            * 250
        )
    ]
    stuck = submitted(store, 249)
    for order_id in stuck:
        landed_on_chain(redis, signature_for(f"{order_id}:1"), "139.44")
    (poison,) = submitted(store, 1, owner=OWNER)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    with store.engine.begin() as connection:
        connection.execute(
            update(OrderRow).where(OrderRow.order_id == poison).values(signature="5x|1|y")
        )
        connection.execute(
            update(OrderRow)
            .where(OrderRow.order_id.in_([*pending, *stuck, poison]))
            .values(updated_at=long_ago)
        )
    assert len(store.stale(timedelta(seconds=1))) == 500

    reconciled = reconcile_once(ctx)

    assert (reconciled.queued, reconciled.tracked) == (len(pending), len(stuck) + 1)
    settle_all(ctx)
    assert statuses_of(store, stuck) == {Status.CONFIRMED: len(stuck)}
    # The chain never saw the poison's signature: dropped, and retried alone.
    row = store.get(poison)
    assert row is not None and (row.status, row.attempt) == (Status.ROUTING, 2)
    assert store.events(poison)[-1].reason_code == "TRANSACTION_DROPPED"


def test_the_watch_fan_out_skips_a_message_it_cannot_read_and_delivers_the_rest(
    redis_url: str,
    store: OrderStore,
) -> None:
    """Something on the event channel that is not an event: decoding it
    raised in the hub's only listener, and no watcher of the process heard
    anything live again."""
    ids = [f"order-{i}" for i in range(GOOD)]

    async def run() -> list[list[int]]:
        client = AsyncRedis.from_url(redis_url)
        hub = WatchHub(client, HistoryReads(store))
        hub.start()
        try:
            await asyncio.wait_for(hub.subscribed.wait(), 10)
            inboxes = [hub.open(order_id, OWNER) for order_id in ids]
            await client.publish(CHANNEL, b"\xff\xff not an event")
            with Redis.from_url(redis_url) as sync:
                publish(sync, [order_pb2.OrderEvent(order_id=i, sequence=2) for i in ids])
            deadline = time.monotonic() + 10
            while any(len(inbox) == 0 for inbox in inboxes) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            got = []
            for inbox in inboxes:
                got.append(
                    [
                        item.sequence
                        for item in [inbox.take() for _ in range(len(inbox))]
                        if isinstance(item, order_pb2.OrderEvent)
                    ]
                )
                hub.release(inbox)
            return got
        finally:
            await hub.close()
            await client.aclose()

    assert asyncio.run(run()) == [[2]] * GOOD
