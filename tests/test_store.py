"""OrderStore on the real database: orders, events, idempotent submits, paging, staleness."""

from __future__ import annotations

import base64
import fcntl
import os
import stat
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import json_format
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import StatementError

from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store import migrate
from orderengine.store.changes import NO_CHANGE, Change, NewOrder, Transition
from orderengine.store.database import create_database_engine, reading
from orderengine.store.models import EventRow, OrderRow, StoredOrder
from orderengine.store.orders import OrderStore, PageTokenError
from orderengine.store.wire import order_to_proto
from orderengine.v1 import market_pb2, order_pb2
from tests.helpers import one_pool_route

SOL = 10**9


def new_order(
    owner: str = "alice", client_order_id: str | None = None, amount_in: int = 2 * SOL
) -> NewOrder:
    return NewOrder(
        owner=owner,
        input_token="SOL",
        output_token="USDC",
        amount_in=amount_in,
        slippage_bps=50,
        client_order_id=client_order_id,
    )


def submit(store: OrderStore, owner: str = "alice") -> str:
    """A new order's id; the order is new, not an earlier one returned again."""
    row, event = store.submit(new_order(owner=owner))
    assert event is not None
    return row.order_id


def event_statuses(store: OrderStore, order_id: str) -> list[tuple[int, Status]]:
    return [(e.sequence, Status.from_proto(e.status)) for e in store.events(order_id)]


def drive(store: OrderStore, order_id: str, *targets: Status) -> None:
    for target in targets:
        assert store.transition(order_id, target) is not None, target


def count(store: OrderStore, model: type[OrderRow] | type[EventRow]) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model)) or 0


A_ROUTE = one_pool_route(
    "raydium-sol-usdc", "SOL", "USDC", "2", amount_out="280", min_amount_out="278.6"
)


# -- submit and transition ----------------------------------------------------


def test_submit_stores_a_pending_order_with_its_first_event(store: OrderStore) -> None:
    row, event = store.submit(new_order())

    assert event is not None
    assert (event.order_id, event.sequence, event.status, event.attempt) == (
        row.order_id,
        1,
        order_pb2.ORDER_STATUS_PENDING,
        1,
    )
    stored = store.get(row.order_id)
    assert stored is not None
    assert (stored.status, stored.attempt, stored.last_sequence) == ("PENDING", 1, 1)
    assert (stored.owner, stored.input_token, stored.output_token, stored.amount_in) == (
        "alice",
        "SOL",
        "USDC",
        2 * SOL,
    )
    assert store.events(row.order_id) == [event]


def test_order_ids_are_uuids_that_sort_as_the_orders_were_made(store: OrderStore) -> None:
    """UUIDv7: each new order's id sorts after the last one's, so a batch's
    rows and events go to the end of every index keyed by order id."""
    ids = [submit(store) for _ in range(5)]
    ids += [row.order_id for row, _ in store.submit_many([new_order() for _ in range(50)])]
    ids.append(submit(store))

    assert {uuid.UUID(order_id).version for order_id in ids} == {7}
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_get_hides_another_owners_order(store: OrderStore) -> None:
    order_id = submit(store, owner="alice")
    assert store.get(order_id, owner="bob") is None
    assert store.get(order_id, owner="alice") is not None
    assert store.get("no-such-order") is None


def test_transitions_append_events_in_sequence(store: OrderStore) -> None:
    order_id = submit(store)

    routing = store.transition(order_id, Status.ROUTING)
    routed = store.transition(order_id, Status.ROUTED, Change(route=A_ROUTE))

    assert routing is not None and routed is not None
    assert (routing[1].sequence, routed[1].sequence) == (2, 3)
    assert routed[1].route == A_ROUTE
    assert event_statuses(store, order_id) == [
        (1, Status.PENDING),
        (2, Status.ROUTING),
        (3, Status.ROUTED),
    ]
    assert [e.sequence for e in store.events(order_id, after_sequence=1)] == [2, 3]
    stored = store.get(order_id)
    assert stored is not None
    assert (stored.status, stored.last_sequence) == ("ROUTED", 3)
    assert stored.route == A_ROUTE


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((), Status.ROUTED),  # PENDING cannot skip routing
        ((), Status.CONFIRMED),
        ((Status.ROUTING,), Status.CANCELLED),  # CANCELLED only from PENDING
        ((Status.ROUTING, Status.ROUTED, Status.SUBMITTED, Status.CONFIRMED), Status.FAILED),
        ((Status.CANCELLED,), Status.ROUTING),
        ((Status.FAILED,), Status.FAILED),
    ],
)
def test_an_illegal_transition_is_refused_and_writes_nothing(
    store: OrderStore, path: tuple[Status, ...], illegal: Status
) -> None:
    order_id = submit(store)
    drive(store, order_id, *path)
    before_events = store.events(order_id)
    before = store.get(order_id)

    assert store.transition(order_id, illegal, Change(reason="nope")) is None

    assert store.events(order_id) == before_events
    after = store.get(order_id)
    assert after is not None and before is not None
    assert (after.status, after.last_sequence, after.updated_at, after.failure_reason) == (
        before.status,
        before.last_sequence,
        before.updated_at,
        before.failure_reason,
    )


def test_a_transition_of_an_unknown_order_is_refused(store: OrderStore) -> None:
    assert store.transition("no-such-order", Status.ROUTING) is None
    assert count(store, EventRow) == 0


def test_a_transition_for_another_attempt_is_refused(store: OrderStore) -> None:
    order_id = submit(store)

    assert store.transition(order_id, Status.ROUTING, attempt=2) is None
    assert event_statuses(store, order_id) == [(1, Status.PENDING)]
    assert store.transition(order_id, Status.ROUTING, attempt=1) is not None
    assert event_statuses(store, order_id) == [(1, Status.PENDING), (2, Status.ROUTING)]


def test_next_attempt_bumps_the_attempt_and_clears_route_and_signature(
    store: OrderStore,
) -> None:
    order_id = submit(store)
    drive(store, order_id, Status.ROUTING)
    assert store.transition(order_id, Status.ROUTED, Change(route=A_ROUTE)) is not None
    assert store.transition(order_id, Status.SUBMITTED, Change(signature="sig-1")) is not None

    retried = store.transition(
        order_id, Status.ROUTING, Change(next_attempt=True, reason="blockhash expired"), attempt=1
    )

    assert retried is not None
    row, event = retried
    assert (row.attempt, row.route, row.signature) == (2, None, None)
    assert (event.attempt, event.sequence, event.reason) == (2, 5, "blockhash expired")
    stored = store.get(order_id)
    assert stored is not None
    assert (stored.attempt, stored.route, stored.signature) == (2, None, None)
    # A worker still driving attempt 1 is refused from now on.
    assert store.transition(order_id, Status.ROUTED, Change(route=A_ROUTE), attempt=1) is None
    assert store.transition(order_id, Status.ROUTED, Change(route=A_ROUTE), attempt=2) is not None


def test_failed_records_the_failure_reason(store: OrderStore) -> None:
    order_id = submit(store)
    drive(store, order_id, Status.ROUTING)

    failed = store.transition(
        order_id,
        Status.FAILED,
        Change(reason="no pool trades SOL for USDC", reason_code=Reason.NO_ROUTE),
    )

    assert failed is not None
    assert (failed[1].reason, failed[1].reason_code) == ("no pool trades SOL for USDC", "NO_ROUTE")
    stored = store.get(order_id)
    assert stored is not None
    assert (stored.status, stored.failure_reason) == ("FAILED", "no pool trades SOL for USDC")
    assert store.events(order_id)[-1].reason_code == "NO_ROUTE"


def test_a_long_failure_reason_is_cut_to_fit_the_column(store: OrderStore) -> None:
    order_id = submit(store)
    assert store.transition(order_id, Status.FAILED, Change(reason="x" * 600)) is not None
    stored = store.get(order_id)
    assert stored is not None and stored.failure_reason == "x" * 512


def test_amount_out_is_stored_in_base_units_and_shown_as_a_decimal_string(
    store: OrderStore,
) -> None:
    order_id = submit(store)
    drive(store, order_id, Status.ROUTING, Status.ROUTED, Status.SUBMITTED)

    confirmed = store.transition(
        order_id, Status.CONFIRMED, Change(amount_out=279_301_234, signature="sig-1")
    )

    assert confirmed is not None
    assert confirmed[1].amount_out == "279.301234"  # USDC has 6 decimals
    assert store.events(order_id)[-1].amount_out == "279.301234"
    stored = store.get(order_id)
    assert stored is not None and stored.amount_out == 279_301_234


U64_EDGES = [1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


def test_every_u64_amount_is_stored_and_read_back_exactly(store: OrderStore) -> None:
    """SPL amounts are u64; the columns are signed 64-bit BIGINTs, which hold
    a u64's bits: amounts past 2**63 - 1 round-trip through submit, a
    batched transition (CASE) and every read, and a row written as a plain
    BIGINT (every amount below 2**63) reads the same."""
    rows = [
        row
        for row, _ in store.submit_many(
            [
                new_order(client_order_id=f"u64-{i}", amount_in=amount)
                for i, amount in enumerate(U64_EDGES)
            ]
        )
    ]
    ids = [row.order_id for row in rows]
    assert [row.amount_in for row in rows] == U64_EDGES
    got = store.get_many(ids)
    assert [got[i].amount_in for i in ids] == U64_EDGES
    assert [store.get(i).amount_in for i in ids] == U64_EDGES  # type: ignore[union-attr]
    assert [o.amount for o in map(order_to_proto, (got[i] for i in ids))] == [
        "0.000000001",
        "9223372036.854775807",
        "9223372036.854775808",
        "18446744073.709551614",
        "18446744073.709551615",
    ]
    # The same order again (its client_order_id) is found by its u64 amount.
    again, event = store.submit(new_order(client_order_id="u64-4", amount_in=2**64 - 1))
    assert (again.order_id, event) == (ids[4], None)
    with store.engine.connect() as connection:
        raw: dict[str, int] = dict(
            connection.execute(
                select(text("order_id, amount_in")).select_from(text("orders"))
            ).all()
        )
    assert [raw[i] for i in ids] == [1, 2**63 - 1, -(2**63), -2, -1]

    for order_id in ids:
        drive(store, order_id, Status.ROUTING, Status.ROUTED, Status.SUBMITTED)
    confirmed = store.transition_many(
        [
            Transition(order_id, Status.CONFIRMED, Change(amount_out=amount), attempt=1)
            for order_id, amount in zip(ids, reversed(U64_EDGES), strict=True)
        ]
    )
    assert [c[1].amount_out for c in confirmed if c is not None] == [
        "18446744073709.551615",
        "18446744073709.551614",
        "9223372036854.775808",
        "9223372036854.775807",
        "0.000001",
    ]  # USDC: 6 decimals
    got = store.get_many(ids)
    assert [got[i].amount_out for i in ids] == list(reversed(U64_EDGES))
    assert [store.events(i)[-1].amount_out for i in ids] == [
        c[1].amount_out for c in confirmed if c is not None
    ]


def test_an_amount_past_u64_is_never_written(store: OrderStore) -> None:
    with pytest.raises(StatementError, match="is not a u64"):
        store.submit(new_order(amount_in=2**64))
    assert count(store, OrderRow) == 0


def test_a_batch_of_changes_gives_each_order_its_own_values(store: OrderStore) -> None:
    # Changes of one kind to several orders are one statement: each order
    # must still get its own route, signature, amount and reason, and a
    # refused change must leave the others alone.
    ids = [submit(store) for _ in range(4)]
    routes = [
        market_pb2.Route(
            input_token="SOL",
            output_token="USDC",
            amount_in=str(i + 1),
            amount_out="1",
            min_amount_out="1",
        )
        for i in range(4)
    ]
    moved = store.transition_many(
        [
            Transition(
                order_id,
                target,
                Change(route=route) if target is Status.ROUTED else NO_CHANGE,
                attempt=1,
            )
            for order_id, route in zip(ids, routes, strict=True)
            for target in (Status.ROUTING, Status.ROUTED)
        ]
        + [
            Transition(ids[0], Status.SUBMITTED, Change(signature="sig-0"), attempt=1),
            Transition(ids[1], Status.SUBMITTED, Change(signature="sig-1"), attempt=2),
            Transition(ids[2], Status.SUBMITTED, Change(signature="sig-2"), attempt=1),
            Transition(ids[3], Status.FAILED, Change(reason="reason-3"), attempt=1),
        ]
    )

    assert [m is not None for m in moved] == [True] * 8 + [True, False, True, True]
    rows = store.get_many(ids)
    assert [rows[i].route.amount_in for i in ids] == ["1", "2", "3", "4"]  # type: ignore[union-attr]
    assert [rows[i].signature for i in ids] == ["sig-0", None, "sig-2", None]
    assert [rows[i].status for i in ids] == ["SUBMITTED", "ROUTED", "SUBMITTED", "FAILED"]
    assert rows[ids[3]].failure_reason == "reason-3"
    assert [len(store.events(i)) for i in ids] == [4, 3, 4, 4]

    confirmed = store.transition_many(
        [
            Transition(order_id, Status.CONFIRMED, Change(amount_out=amount), attempt=1)
            for order_id, amount in ((ids[0], 5_000_000), (ids[2], 7_000_000))
        ]
    )

    assert [c[1].amount_out for c in confirmed if c is not None] == ["5", "7"]
    rows = store.get_many(ids)
    assert (rows[ids[0]].amount_out, rows[ids[2]].amount_out) == (5_000_000, 7_000_000)


# -- idempotent submit --------------------------------------------------------


def overtaken_after_read(
    store: OrderStore, monkeypatch: pytest.MonkeyPatch, order_id: str, target: Status
) -> None:
    """Another writer moves the order to ``target`` just after this store
    next reads it: a change is decided on a read that is already old."""
    read = store.get_many
    other = OrderStore(store.engine)

    def read_then_overtaken(order_ids: list[str]) -> dict[str, StoredOrder]:
        rows = read(order_ids)
        monkeypatch.setattr(store, "get_many", read)
        assert other.transition(order_id, target) is not None
        return rows

    monkeypatch.setattr(store, "get_many", read_then_overtaken)


def test_a_change_to_an_order_another_writer_moved_since_it_was_read_is_made_again(
    store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = submit(store)
    overtaken_after_read(store, monkeypatch, order_id, Status.ROUTING)

    moved = store.transition(order_id, Status.FAILED, Change(reason="no route"))

    assert moved is not None and moved[0].last_sequence == 3
    assert event_statuses(store, order_id) == [
        (1, Status.PENDING),
        (2, Status.ROUTING),
        (3, Status.FAILED),
    ]


def test_a_change_refused_on_an_old_read_is_decided_again_on_the_order_as_it_is(
    store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ROUTED is not allowed from PENDING, as read; it is from ROUTING, where
    # another writer has moved the order since.
    order_id = submit(store)
    overtaken_after_read(store, monkeypatch, order_id, Status.ROUTING)

    moved = store.transition(order_id, Status.ROUTED, Change(route=A_ROUTE))

    assert moved is not None
    assert event_statuses(store, order_id) == [
        (1, Status.PENDING),
        (2, Status.ROUTING),
        (3, Status.ROUTED),
    ]


def test_a_change_decided_on_the_caller_s_old_read_is_made_on_the_order_as_it_is(
    store: OrderStore,
) -> None:
    # The caller hands the store the order as it read it, before another
    # writer moved it: the change is still made after that one, not over it.
    order_id = submit(store)
    as_read = store.get(order_id)
    assert as_read is not None
    assert OrderStore(store.engine).transition(order_id, Status.ROUTING) is not None

    [moved] = store.transition_many(
        [Transition(order_id, Status.FAILED, Change(reason="no route"))], [as_read]
    )

    assert moved is not None and moved[0].last_sequence == 3
    assert event_statuses(store, order_id) == [
        (1, Status.PENDING),
        (2, Status.ROUTING),
        (3, Status.FAILED),
    ]


def test_a_repeated_client_order_id_returns_the_same_order_and_no_event(
    store: OrderStore,
) -> None:
    first, first_event = store.submit(new_order(client_order_id="buy-1"))
    again, again_event = store.submit(new_order(client_order_id="buy-1"))

    assert first_event is not None and again_event is None
    assert again.order_id == first.order_id
    assert (count(store, OrderRow), count(store, EventRow)) == (1, 1)


def test_the_same_client_order_id_from_another_owner_is_another_order(
    store: OrderStore,
) -> None:
    alice, _ = store.submit(new_order(owner="alice", client_order_id="buy-1"))
    bob, bob_event = store.submit(new_order(owner="bob", client_order_id="buy-1"))

    assert bob_event is not None
    assert bob.order_id != alice.order_id and bob.owner == "bob"
    assert count(store, OrderRow) == 2


def test_orders_without_a_client_order_id_are_never_merged(store: OrderStore) -> None:
    assert submit(store) != submit(store)
    assert count(store, OrderRow) == 2


def test_racing_submits_with_one_client_order_id_make_one_order(
    store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    racers = 8
    start, all_checked = threading.Barrier(racers), threading.Barrier(racers)
    first_lookup = store._by_client_ids
    waited = threading.local()

    def lookup_then_wait_for_the_others(
        keys: set[tuple[str, str]],
    ) -> dict[tuple[str, str], StoredOrder]:
        # Every racer finds no order before any of them inserts: the worst race.
        found = first_lookup(keys)
        if not getattr(waited, "done", False):
            waited.done = True
            all_checked.wait(timeout=10)
        return found

    monkeypatch.setattr(store, "_by_client_ids", lookup_then_wait_for_the_others)

    def race(_: int) -> tuple[str, bool]:
        start.wait(timeout=10)
        row, event = store.submit(new_order(client_order_id="race-1"))
        return row.order_id, event is not None

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(race, range(racers)))

    assert len({order_id for order_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert (count(store, OrderRow), count(store, EventRow)) == (1, 1)


def test_a_batch_is_answered_in_order_with_client_order_ids_settled(store: OrderStore) -> None:
    earlier, _ = store.submit(new_order(client_order_id="old"))
    batch = [
        new_order(),
        new_order(client_order_id="new"),
        new_order(client_order_id="old"),
        new_order(client_order_id="new"),
        new_order(owner="bob", client_order_id="new"),
    ]
    results = store.submit_many(batch)
    ids = [row.order_id for row, _ in results]
    created = [event is not None for _, event in results]
    assert created == [True, True, False, False, True]
    assert ids[2] == earlier.order_id  # taken before the batch
    assert ids[3] == ids[1]  # taken earlier in the same batch
    assert ids[4] not in ids[:4]  # another owner's id is another order
    assert (count(store, OrderRow), count(store, EventRow)) == (4, 4)
    for row, event in results:
        assert store.get(row.order_id) is not None
        if event is not None:
            assert [e.sequence for e in store.events(row.order_id)] == [1]


# -- listing ------------------------------------------------------------------


def all_pages(store: OrderStore, owner: str, page_size: int) -> list[list[str]]:
    pages, token = [], ""
    while True:
        rows, token = store.list_page(owner, page_size, token)
        pages.append([r.order_id for r in rows])
        if not token:
            return pages


def test_pages_are_newest_first_without_gaps_or_duplicates(store: OrderStore) -> None:
    submitted = [submit(store) for _ in range(25)]

    pages = all_pages(store, "alice", 10)

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [order_id for page in pages for order_id in page] == submitted[::-1]


def test_an_exact_multiple_of_the_page_size_ends_without_an_empty_page(
    store: OrderStore,
) -> None:
    submitted = [submit(store) for _ in range(20)]
    pages = all_pages(store, "alice", 10)
    assert [len(p) for p in pages] == [10, 10]
    assert [order_id for page in pages for order_id in page] == submitted[::-1]


def test_page_tokens_stay_stable_while_new_orders_arrive(store: OrderStore) -> None:
    submitted = [submit(store) for _ in range(25)]

    first, token = store.list_page("alice", 10)
    newcomer = submit(store)
    second, token = store.list_page("alice", 10, token)
    third, token = store.list_page("alice", 10, token)

    listed = [r.order_id for r in first + second + third]
    assert token == ""
    assert listed == submitted[::-1]
    assert newcomer not in listed
    newest, _ = store.list_page("alice", 10)
    assert newest[0].order_id == newcomer


def test_other_owners_orders_are_never_listed(store: OrderStore) -> None:
    alices = []
    for _ in range(6):
        alices.append(submit(store, owner="alice"))
        submit(store, owner="bob")

    pages = all_pages(store, "alice", 4)

    assert [order_id for page in pages for order_id in page] == alices[::-1]
    assert all_pages(store, "carol", 4) == [[]]


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "!!!",
        "a",
        "\u00e9t\u00e9",
        base64.urlsafe_b64encode(b'"just a string"').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00"]').decode(),
        base64.urlsafe_b64encode(b'["not a time", "x"]').decode(),
        base64.urlsafe_b64encode(b"{}").decode(),
    ],
)
def test_a_page_token_the_store_never_gave_out_is_refused(store: OrderStore, token: str) -> None:
    submit(store)
    with pytest.raises(PageTokenError):
        store.list_page("alice", 10, token)


# -- stale orders -------------------------------------------------------------


def age(store: OrderStore, order_id: str, by: timedelta) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            update(OrderRow)
            .where(OrderRow.order_id == order_id)
            .values(updated_at=datetime.now(UTC) - by)
        )


def test_stale_lists_old_unfinished_orders_oldest_first(store: OrderStore) -> None:
    old_pending, old_submitted, fresh_pending = submit(store), submit(store), submit(store)
    old_confirmed, old_failed, old_cancelled = submit(store), submit(store), submit(store)
    drive(store, old_submitted, Status.ROUTING, Status.ROUTED, Status.SUBMITTED)
    drive(store, old_confirmed, Status.ROUTING, Status.ROUTED, Status.SUBMITTED, Status.CONFIRMED)
    drive(store, old_failed, Status.FAILED)
    drive(store, old_cancelled, Status.CANCELLED)
    age(store, old_pending, timedelta(hours=1))
    age(store, old_submitted, timedelta(hours=2))
    for order_id in (old_confirmed, old_failed, old_cancelled):
        age(store, order_id, timedelta(hours=3))

    stale = store.stale(timedelta(minutes=5))

    assert [r.order_id for r in stale] == [old_submitted, old_pending]
    assert fresh_pending not in {r.order_id for r in stale}
    assert [r.order_id for r in store.stale(timedelta(minutes=90))] == [old_submitted]
    assert [r.order_id for r in store.stale(timedelta(minutes=5), limit=1)] == [old_submitted]


def test_a_transition_makes_a_stale_order_fresh_again(store: OrderStore) -> None:
    order_id = submit(store)
    age(store, order_id, timedelta(hours=1))
    assert [r.order_id for r in store.stale(timedelta(minutes=5))] == [order_id]

    drive(store, order_id, Status.ROUTING)

    assert store.stale(timedelta(minutes=5)) == []


# -- SQLite's writers ---------------------------------------------------------


def test_a_sqlite_writer_holds_the_write_lock_for_its_transaction_only(tmp_path: Path) -> None:
    # Writers of several processes queue on this lock rather than on SQLite's
    # sleeping busy handler: it must be held from BEGIN to COMMIT or ROLLBACK,
    # and never by a reader.
    engine = create_database_engine(f"sqlite:///{tmp_path}/orders.db")
    engine.connect().close()  # makes the lock file
    other = os.open(tmp_path / "orders.db.write-lock", os.O_RDWR)

    def lock_is_free() -> bool:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other, fcntl.LOCK_UN)
        return True

    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            assert not lock_is_free()
        assert lock_is_free()
        with pytest.raises(RuntimeError), engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
            assert not lock_is_free()
            raise RuntimeError("rolled back")
        assert lock_is_free()
        with reading(engine)() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
            assert lock_is_free()
    finally:
        os.close(other)
        engine.dispose()


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # It holds every order and the API keys' hashes: 0600, as the key file is.
    url = f"sqlite:///{tmp_path}/var/orders.db"
    migrate.upgrade(url)
    engine = create_database_engine(url)
    try:
        store = OrderStore(engine)
        submit(store)
        with engine.connect():  # the WAL and its index exist while connected
            made = sorted(p.name for p in (tmp_path / "var").iterdir())
            assert made == ["orders.db", "orders.db-shm", "orders.db-wal", "orders.db.write-lock"]
            modes = {
                name: oct(stat.S_IMODE((tmp_path / "var" / name).stat().st_mode)) for name in made
            }
    finally:
        engine.dispose()
    assert modes == dict.fromkeys(made, "0o600")


def test_another_engine_on_the_file_keeps_this_process_s_connection_known(tmp_path: Path) -> None:
    # A process holding a connection that makes a second engine for the same
    # file (make bench, make run's set-up) must not drop its SQLite locks:
    # another process's last connection would then delete the -wal and -shm
    # under it, and its next statement fail (SQLITE_IOERR_SHORT_READ).
    path = tmp_path / "orders.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = create_database_engine(url)
    try:
        with engine.begin() as connection:  # pooled: open from here on
            connection.execute(text("DELETE FROM orders"))
        create_database_engine(url).dispose()
        # Another process opens and closes a connection; were it the last,
        # it would checkpoint and remove the WAL.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys; "
                "sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')",
                str(path),
            ],
            check=True,
        )
        assert Path(f"{path}-wal").exists()
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM orders"))
    finally:
        engine.dispose()


def test_events_and_routes_stored_as_proto_json_before_0003_are_still_read(
    store: OrderStore,
) -> None:
    order_id = submit(store)
    routed = store.transition(order_id, Status.ROUTING)
    assert routed is not None
    event = routed[1]
    # As the store wrote them before 0003: proto JSON, no bytes.
    with store.engine.begin() as connection:
        connection.execute(
            update(EventRow)
            .where(EventRow.order_id == order_id)
            .values(
                event_pb=None,
                event=json_format.MessageToDict(event, preserving_proto_field_name=True),
            )
            .where(EventRow.sequence == 2)
        )
        connection.execute(
            update(OrderRow)
            .where(OrderRow.order_id == order_id)
            .values(
                status=Status.ROUTED.value,
                route_pb=None,
                route=json_format.MessageToDict(A_ROUTE, preserving_proto_field_name=True),
            )
        )
    assert store.events(order_id, after_sequence=1) == [event]
    stored = store.get(order_id)
    assert stored is not None and stored.route == A_ROUTE
    # The next change keeps the route, now as bytes.
    assert store.transition(order_id, Status.SUBMITTED, Change(signature="sig")) is not None
    with store.engine.connect() as connection:
        json_route, route_pb = connection.execute(
            select(OrderRow.route, OrderRow.route_pb).where(OrderRow.order_id == order_id)
        ).one()
    assert json_route is None and route_pb == A_ROUTE.SerializeToString()
    assert [e.sequence for e in store.events(order_id)] == [1, 2, 3]
