"""The one way an order's status changes (orderengine.transitions): the
compare-and-set with its event, the time in the status left, the publish;
a lost publish never undoes the commit. Real Redis, real database."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from redis import Redis
from redis.client import PubSub
from sqlalchemy.exc import OperationalError

from orderengine.events import CHANNEL, decode
from orderengine.local.ports import free_port
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change, NewOrder, Transition
from orderengine.store.database import create_database_engine
from orderengine.store.models import StoredOrder
from orderengine.store.orders import OrderStore
from orderengine.transitions import move, move_many
from orderengine.v1 import order_pb2
from tests.conftest import OWNER

SOL = 10**9


def new_order(store: OrderStore) -> StoredOrder:
    row, _ = store.submit(
        NewOrder(
            owner=OWNER, input_token="SOL", output_token="USDC", amount_in=SOL, slippage_bps=50
        )
    )
    return row


def left(status: Status) -> float:
    return (
        REGISTRY.get_sample_value(
            "orderengine_order_status_seconds_count", {"status": status.value}
        )
        or 0.0
    )


def subscribed(redis: Redis) -> PubSub:
    """A subscription to the event bus, ready: what is published now reaches it."""
    subscription = redis.pubsub()
    subscription.subscribe(CHANNEL)
    assert subscription.get_message(timeout=5) is not None  # the subscribe's own answer
    return subscription


def test_a_change_is_committed_counted_and_published(store: OrderStore, redis: Redis) -> None:
    row = new_order(store)
    subscription = subscribed(redis)
    before = left(Status.PENDING)

    moved = move(
        store,
        redis,
        row.order_id,
        Status.CANCELLED,
        Change(reason="cancelled by the owner", reason_code=Reason.CANCELLED),
        current=row,
    )

    assert moved is not None and moved.status == Status.CANCELLED
    assert [e.sequence for e in store.events(row.order_id)] == [1, 2]
    assert left(Status.PENDING) - before == 1
    message = subscription.get_message(timeout=5)
    assert message is not None
    [event] = decode(message["data"])
    assert (event.order_id, event.sequence, event.reason_code) == (row.order_id, 2, "CANCELLED")
    subscription.close()


def test_changes_committed_together_are_published_as_one_message_in_order(
    store: OrderStore, redis: Redis
) -> None:
    """A batch's events cost Redis and every subscriber one message; a
    watcher still hears each order's changes in the order they were made."""
    rows = [new_order(store) for _ in range(3)]
    subscription = subscribed(redis)

    moved = move_many(
        store,
        redis,
        [
            step
            for row in rows
            for step in (
                Transition(row.order_id, Status.ROUTING, attempt=row.attempt),
                Transition(
                    row.order_id,
                    Status.FAILED,
                    Change(reason="no route", reason_code=Reason.NO_ROUTE),
                    row.attempt,
                ),
            )
        ],
        rows,
    )

    assert all(m is not None for m in moved)
    message = subscription.get_message(timeout=5)
    assert message is not None
    assert [(e.order_id, e.sequence, e.status) for e in decode(message["data"])] == [
        (row.order_id, sequence, status)
        for row in rows
        for sequence, status in (
            (2, order_pb2.ORDER_STATUS_ROUTING),
            (3, order_pb2.ORDER_STATUS_FAILED),
        )
    ]
    assert subscription.get_message(timeout=0.5) is None
    subscription.close()


def test_a_refused_change_writes_counts_and_publishes_nothing(
    store: OrderStore, redis: Redis
) -> None:
    row = new_order(store)
    subscription = subscribed(redis)
    before = left(Status.PENDING)

    assert move(store, redis, row.order_id, Status.CONFIRMED, current=row) is None

    assert [e.sequence for e in store.events(row.order_id)] == [1]
    assert left(Status.PENDING) == before
    assert subscription.get_message(timeout=0.5) is None
    subscription.close()


def test_a_lost_publish_never_undoes_the_commit(
    store: OrderStore, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [new_order(store) for _ in range(2)]
    nobody = Redis(port=free_port(), socket_connect_timeout=1)  # no server listens there
    before = left(Status.PENDING)

    with caplog.at_level(logging.WARNING, logger="orderengine.transitions"):
        moved = move_many(
            store, nobody, [Transition(r.order_id, Status.ROUTING) for r in rows], rows
        )

    assert [m.status if m else None for m in moved] == [Status.ROUTING, Status.ROUTING]
    for row in rows:
        got = store.get(row.order_id)
        assert got is not None and got.status == Status.ROUTING
        assert [e.sequence for e in store.events(row.order_id)] == [1, 2]
    assert left(Status.PENDING) - before == 2
    assert "could not publish 2 events" in caplog.text


def test_a_store_that_fails_raises_and_publishes_nothing(
    redis: Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A database with no tables: every write fails, as with a store that is away.
    away = OrderStore(create_database_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    subscription = subscribed(redis)

    with pytest.raises(OperationalError):
        move(away, redis, "an-order", Status.ROUTING)
    with (
        pytest.raises(OperationalError),
        caplog.at_level(logging.WARNING, logger="orderengine.transitions"),
    ):
        move_many(
            away, redis, [Transition("one", Status.ROUTING), Transition("two", Status.ROUTING)]
        )

    assert subscription.get_message(timeout=0.5) is None
    subscription.close()
    away.engine.dispose()
