"""Orders and their events: every write the engine makes, in one place.

Each status change is one transaction: a compare-and-set UPDATE of the order
(legal only from the statuses the state machine allows, and only for the
attempt the caller drove) that also bumps its sequence, and the INSERT of the
event with that sequence. A refused change writes nothing.

Long on purpose: every statement the store runs on an order is here, so
its locking and sequencing can be checked in one read."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import uuid_utils
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from orderengine.statuses import TERMINAL, WAITING, Status, sources
from orderengine.store.changes import NO_CHANGE, Change, NewOrder, Transition, event_of
from orderengine.store.models import EventRow, OrderRow, StoredOrder
from orderengine.store.wire import event_from_json, route_from_json, timestamp
from orderengine.v1 import market_pb2, order_pb2

ORDERS = cast(Table, OrderRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
# Orders named in one IN (...) list: far below every database's limit on
# bound parameters, and each query still covers hundreds of watchers.
IDS_PER_QUERY = 500

# The hot path's statements, built once: SQLAlchemy memoizes a statement
# object's cache key, so executing the same object skips building and
# compiling it again. Core rows, not ORM objects: instances of a mapped class
# cost more than the SQL that read them.
_ORDER_COLUMNS = (
    ORDERS.c.order_id,
    ORDERS.c.owner,
    ORDERS.c.client_order_id,
    ORDERS.c.status,
    ORDERS.c.input_token,
    ORDERS.c.output_token,
    ORDERS.c.amount_in,
    ORDERS.c.slippage_bps,
    ORDERS.c.attempt,
    ORDERS.c.last_sequence,
    ORDERS.c.route_pb,
    ORDERS.c.signature,
    ORDERS.c.amount_out,
    ORDERS.c.failure_reason,
    ORDERS.c.created_at,
    ORDERS.c.updated_at,
    ORDERS.c.route,
    ORDERS.c.priority_fee,
    ORDERS.c.order_type,
    ORDERS.c.min_amount_out,
    ORDERS.c.trigger_price,
    ORDERS.c.expire_at,
    ORDERS.c.twap_slices,
    ORDERS.c.twap_interval_ms,
)
_BY_IDS = select(*_ORDER_COLUMNS).where(ORDERS.c.order_id.in_(bindparam("ids", expanding=True)))
# Writers lock the rows they read (PostgreSQL; SQLite's writer holds the
# database from BEGIN IMMEDIATE), so the status read is the status changed.
_LOCK_BY_IDS = _BY_IDS.with_for_update()
_INSERT_ORDER = insert(ORDERS)
_INSERT_EVENT = insert(EVENTS)
# Every column a change may write, from what the transaction read and
# decided; ``last_sequence`` as read is the compare-and-set's guard (each
# change bumps it), on top of the lock.
_UPDATE_ORDER = (
    update(ORDERS)
    .where(
        ORDERS.c.order_id == bindparam("b_order_id"),
        ORDERS.c.last_sequence == bindparam("b_read_sequence"),
    )
    .values(
        status=bindparam("b_status"),
        last_sequence=bindparam("b_last_sequence"),
        attempt=bindparam("b_attempt"),
        route=null(),
        route_pb=bindparam("b_route_pb"),
        signature=bindparam("b_signature"),
        amount_out=bindparam("b_amount_out"),
        failure_reason=bindparam("b_failure_reason"),
        updated_at=bindparam("b_updated_at"),
    )
)
_HISTORY_HEADS = select(
    ORDERS.c.order_id, ORDERS.c.owner, ORDERS.c.status, ORDERS.c.last_sequence
).where(ORDERS.c.order_id.in_(bindparam("ids", expanding=True)))
_HISTORY_EVENTS = (
    select(EVENTS.c.order_id, EVENTS.c.sequence, EVENTS.c.event_pb, EVENTS.c.event)
    .where(EVENTS.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(EVENTS.c.order_id, EVENTS.c.sequence)
)
_LAST_SEQUENCES = select(ORDERS.c.order_id, ORDERS.c.last_sequence).where(
    ORDERS.c.order_id.in_(bindparam("ids", expanding=True))
)
_BY_CLIENT_IDS = select(*_ORDER_COLUMNS).where(
    ORDERS.c.owner.in_(bindparam("owners", expanding=True)),
    ORDERS.c.client_order_id.in_(bindparam("cids", expanding=True)),
)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


def _rows_by_id(
    connection: Connection, statement: Select[Any], ids: Sequence[str]
) -> dict[str, StoredOrder]:
    """The orders ``statement`` (of _ORDER_COLUMNS, by ``ids``) finds."""
    found: dict[str, StoredOrder] = {}
    for chunk in _chunks(list(ids)):
        for r in connection.execute(statement, {"ids": chunk}):
            found[r.order_id] = _order(r)
    return found


# Where route_pb and the legacy route column stand in _ORDER_COLUMNS: every
# other column (route_json left out) is StoredOrder's field in the same order.
_ROUTE_PB = 10
_ROUTE_JSON = 16


def _order(row: Sequence[Any]) -> StoredOrder:
    """A row of _ORDER_COLUMNS as a StoredOrder."""
    route_pb, route_json = row[_ROUTE_PB], row[_ROUTE_JSON]
    if route_pb is not None:
        route: market_pb2.Route | None = market_pb2.Route.FromString(route_pb)
    elif route_json:  # written before route_pb
        route = route_from_json(route_json)
    else:
        route = None
    fields = [*row[:_ROUTE_JSON], *row[_ROUTE_JSON + 1 :]]
    fields[_ROUTE_PB] = route
    return StoredOrder(*fields)


@dataclass(frozen=True, slots=True)
class History:
    """What a watcher reads of an order: whose it is, how far it has gone,
    and its events after some sequence."""

    owner: str
    terminal: bool
    last_sequence: int
    events: list[order_pb2.OrderEvent]

    def after(self, sequence: int) -> History:
        return History(
            self.owner,
            self.terminal,
            self.last_sequence,
            [e for e in self.events if e.sequence > sequence],
        )


class PageTokenError(ValueError):
    pass


# Ours are about 110 characters; a longer one is not ours and is not parsed.
# 512 base64 characters decode to at most 384 bytes of JSON, nested far less
# deep than the parser's recursion limit.
MAX_PAGE_TOKEN_CHARS = 512


def _now() -> datetime:
    return datetime.now(UTC)


class OrderStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Readers begin DEFERRED and take no write lock on SQLite (database.py).
        self._read_engine = engine.execution_options(read_only=True)
        # Whether an executemany UPDATE's rowcount is the sum over its rows.
        self._counts_many = engine.dialect.supports_sane_multi_rowcount

    # -- submission -----------------------------------------------------------

    def submit(self, new: NewOrder) -> tuple[StoredOrder, order_pb2.OrderEvent | None]:
        """Stores the order as PENDING with its first event. With a
        client_order_id already used by this owner, returns that order and no
        event, also when two submissions race."""
        return self.submit_many([new])[0]

    def submit_many(
        self, news: Sequence[NewOrder]
    ) -> list[tuple[StoredOrder, order_pb2.OrderEvent | None]]:
        """``submit`` for several orders in one transaction, each answered in
        turn. An order whose client_order_id is taken (also earlier in the
        same batch) comes back as the order that took it, with no event."""
        keys = {(n.owner, n.client_order_id) for n in news if n.client_order_id}
        taken = self._by_client_ids(keys) if keys else {}
        now = _now()
        event_time = timestamp(now)
        results: list[tuple[StoredOrder, order_pb2.OrderEvent | None]] = []
        rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for new in news:
            # A waiting order starts OPEN: the trigger part, not the queue, moves it.
            first = Status.OPEN if new.waits else Status.PENDING
            key = (new.owner, new.client_order_id or "")
            if new.client_order_id and key in taken:
                results.append((taken[key], None))
                continue
            # Time-ordered (UUIDv7): a batch's orders and their events land
            # on the last pages of their indexes, not on a random page each,
            # so a commit writes a few pages, not one per row.
            order_id = str(uuid_utils.uuid7())
            # The order's terms as their columns, in StoredOrder's order.
            terms = {**asdict(new.terms), "order_type": new.terms.order_type.value}
            row = StoredOrder(
                order_id,
                new.owner,
                new.client_order_id,
                first.value,
                new.input_token,
                new.output_token,
                new.amount_in,
                new.slippage_bps,
                1,
                1,
                None,
                None,
                None,
                None,
                now,
                now,
                new.priority_fee,
                *terms.values(),
            )
            event = order_pb2.OrderEvent(
                order_id=order_id,
                sequence=1,
                status=first.proto,
                event_time=event_time,
                attempt=1,
            )
            if new.client_order_id:
                taken[key] = row
            rows.append(
                {
                    "order_id": order_id,
                    "owner": new.owner,
                    "client_order_id": new.client_order_id,
                    "status": first.value,
                    "input_token": new.input_token,
                    "output_token": new.output_token,
                    "amount_in": new.amount_in,
                    "slippage_bps": new.slippage_bps,
                    "attempt": 1,
                    "last_sequence": 1,
                    "created_at": now,
                    "updated_at": now,
                    "priority_fee": new.priority_fee,
                    **terms,
                }
            )
            events.append(_event_values(event, first.value, now))
            results.append((row, event))
        if not rows:
            return results
        try:
            with self.engine.begin() as connection:
                # Plain executemany inserts: one round trip per table.
                connection.execute(_INSERT_ORDER, rows)
                connection.execute(_INSERT_EVENT, events)
        except IntegrityError:
            if len(news) == 1 and news[0].client_order_id:
                # Lost a race for the client_order_id: the winner's order is ours.
                winner = self._by_client_ids({(news[0].owner, news[0].client_order_id)})
                if winner:
                    return [(next(iter(winner.values())), None)]
            if len(news) == 1:
                raise
            # One of the batch raced another process: settle them one by one.
            return [self.submit(new) for new in news]
        return results

    def by_client_ids(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], StoredOrder]:
        """The stored orders with these (owner, client_order_id)."""
        return self._by_client_ids(keys)

    def _by_client_ids(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], StoredOrder]:
        owners = sorted({owner for owner, _ in keys})
        ids = sorted({cid for _, cid in keys})
        with self._read_engine.connect() as connection:
            rows = connection.execute(_BY_CLIENT_IDS, {"owners": owners, "cids": ids}).all()
        found = (_order(r) for r in rows)
        return {
            (r.owner, r.client_order_id or ""): r
            for r in found
            if (r.owner, r.client_order_id or "") in keys
        }

    # -- status changes -------------------------------------------------------

    def transition(
        self,
        order_id: str,
        target: Status,
        change: Change = NO_CHANGE,
        *,
        attempt: int | None = None,
    ) -> tuple[StoredOrder, order_pb2.OrderEvent] | None:
        """Moves the order to ``target`` if that is legal from its status now
        (and it is still on ``attempt``, when given). None when refused."""
        return self.transition_many([Transition(order_id, target, change, attempt)])[0]

    def transition_many(
        self, transitions: Sequence[Transition], read: Iterable[StoredOrder] = ()
    ) -> list[tuple[StoredOrder, order_pb2.OrderEvent] | None]:
        """``transition`` for each, in order, in one transaction: several
        orders' changes, or several changes of one order, cost one commit.

        The orders are read and every change decided before the write
        transaction begins: on SQLite one writer holds the whole database,
        so only the UPDATE and the INSERT of the events go inside it. Each
        order's UPDATE is guarded by the sequence it was read at; when
        another writer moved one in between, or a change is refused, none
        of it is written and the whole batch is decided again on the orders
        read under the lock (a refusal is only ever decided there).
        ``read``: the orders as the caller last read or moved them, decided
        on instead of reading them again when every one is there."""
        ids = list(dict.fromkeys(t.order_id for t in transitions))
        if self._counts_many or len(ids) == 1:
            known = {row.order_id: row for row in read}
            rows = (
                {i: known[i] for i in ids} if all(i in known for i in ids) else self.get_many(ids)
            )
            decided = _Decided(rows, transitions)
            if decided.all_legal:
                try:
                    with self.engine.begin() as connection:
                        decided.write(connection, self._counts_many)
                    return decided.results
                except ConcurrentChange:
                    pass
        with self.engine.begin() as connection:
            decided = _Decided(_rows_by_id(connection, _LOCK_BY_IDS, ids), transitions)
            decided.write(connection, self._counts_many)
        return decided.results

    # -- reading --------------------------------------------------------------

    def get(self, order_id: str, owner: str | None = None) -> StoredOrder | None:
        row = self.get_many([order_id]).get(order_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row

    def get_many(self, order_ids: Sequence[str]) -> dict[str, StoredOrder]:
        if not order_ids:
            return {}
        with self._read_engine.connect() as connection:
            return _rows_by_id(connection, _BY_IDS, order_ids)

    def count_by_status(self) -> dict[str, int]:
        """How many orders are in each status (statuses with none are absent)."""
        with self._read_engine.connect() as connection:
            counted = connection.execute(
                select(ORDERS.c.status, func.count()).group_by(ORDERS.c.status)
            ).all()
        return {status: int(count) for status, count in counted}

    def events(self, order_id: str, after_sequence: int = 0) -> list[order_pb2.OrderEvent]:
        found = self.histories({order_id: after_sequence}).get(order_id)
        return found.events if found is not None else []

    def histories(self, after: Mapping[str, int]) -> dict[str, History]:
        """The history of each order in ``after`` (order id -> the sequence
        its events are wanted after); orders that do not exist are absent.
        Two queries per IDS_PER_QUERY orders: many watchers opening or
        catching up at once cost one read, not one each."""
        found: dict[str, History] = {}
        ids = list(after)
        parse = order_pb2.OrderEvent.FromString
        with self._read_engine.connect() as connection:
            for chunk in _chunks(ids):
                for order_id, owner, status, last in connection.execute(
                    _HISTORY_HEADS, {"ids": chunk}
                ):
                    found[order_id] = History(owner, Status(status).terminal, last, [])
                for order_id, sequence, event_pb, event in connection.execute(
                    _HISTORY_EVENTS, {"ids": chunk}
                ):
                    if sequence > after[order_id] and order_id in found:
                        found[order_id].events.append(
                            parse(event_pb) if event_pb is not None else event_from_json(event)
                        )  # written before event_pb
        return found

    def last_sequences(self, order_ids: Sequence[str]) -> dict[str, int]:
        """Each order's last sequence (orders that do not exist are absent)."""
        found: dict[str, int] = {}
        with self._read_engine.connect() as connection:
            for chunk in _chunks(order_ids):
                found.update(
                    {
                        order_id: last
                        for order_id, last in connection.execute(
                            _LAST_SEQUENCES, {"ids": list(chunk)}
                        )
                    }
                )
        return found

    def list_page(
        self, owner: str, page_size: int, page_token: str = ""
    ) -> tuple[list[StoredOrder], str]:
        """The owner's orders, newest first, and the token of the next page
        ("" on the last). Keyset paging: stable while new orders arrive."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        query = select(*_ORDER_COLUMNS).where(ORDERS.c.owner == owner)
        if page_token:
            created, last_id = _decode_page_token(page_token)
            query = query.where(
                or_(
                    ORDERS.c.created_at < created,
                    and_(ORDERS.c.created_at == created, ORDERS.c.order_id < last_id),
                )
            )
        query = query.order_by(ORDERS.c.created_at.desc(), ORDERS.c.order_id.desc())
        with self._read_engine.connect() as connection:
            rows = [_order(r) for r in connection.execute(query.limit(page_size + 1))]
        if len(rows) <= page_size:
            return rows, ""
        rows = rows[:page_size]
        return rows, _encode_page_token(rows[-1])

    def stale(self, older_than: timedelta, limit: int = 500) -> list[StoredOrder]:
        """Non-terminal orders untouched for ``older_than``: the reconciler's
        work. Waiting (OPEN) orders are the trigger part's, not stale."""
        cutoff = _now() - older_than
        query = (
            select(*_ORDER_COLUMNS)
            .where(
                ORDERS.c.status.not_in([s.value for s in TERMINAL | WAITING]),
                ORDERS.c.updated_at < cutoff,
            )
            .order_by(ORDERS.c.updated_at)
            .limit(limit)
        )
        with self._read_engine.connect() as connection:
            return [_order(r) for r in connection.execute(query)]

    def open_orders(
        self,
        since: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[StoredOrder]:
        """OPEN orders by (updated_at, order_id), from ``since`` (None: all)
        and past ``after`` (the last of the previous page): the trigger
        part's index is rebuilt, and kept up with, from these."""
        query = select(*_ORDER_COLUMNS).where(ORDERS.c.status == Status.OPEN.value)
        if since is not None:
            query = query.where(ORDERS.c.updated_at >= since)
        if after is not None:
            moment, last_id = after
            query = query.where(
                or_(
                    ORDERS.c.updated_at > moment,
                    and_(ORDERS.c.updated_at == moment, ORDERS.c.order_id > last_id),
                )
            )
        query = query.order_by(ORDERS.c.updated_at, ORDERS.c.order_id).limit(limit)
        with self._read_engine.connect() as connection:
            return [_order(r) for r in connection.execute(query)]


class ConcurrentChange(RuntimeError):
    """An order changed since it was read for a change: the transaction is
    rolled back rather than write over it (and the change decided again on
    the order read under the lock)."""


# The status values each target may be reached from.
_SOURCES = {target: frozenset(s.value for s in sources(target)) for target in Status}


class _Decided:
    """Transitions decided on orders as read: each order as it ends, the
    events, and whether every change was legal."""

    def __init__(self, current: dict[str, StoredOrder], transitions: Sequence[Transition]) -> None:
        self.now = now = _now()
        stamp = timestamp(now)
        self.read_sequence = {order_id: row.last_sequence for order_id, row in current.items()}
        self.results: list[tuple[StoredOrder, order_pb2.OrderEvent] | None] = []
        self.events: list[dict[str, Any]] = []
        current = dict(current)
        for t in transitions:
            row = current.get(t.order_id)
            moved = _changed(row, t, now) if row is not None else None
            if moved is None:
                self.results.append(None)
                continue
            current[t.order_id] = moved
            event = event_of(t, moved, stamp)
            self.events.append(_event_values(event, t.target.value, now))
            self.results.append((moved, event))
        self.all_legal = all(result is not None for result in self.results)
        # In order of id: writers that change orders in one order never
        # wait on each other's row locks in a circle (PostgreSQL).
        self.changed = sorted(
            (
                r
                for order_id, r in current.items()
                if r.last_sequence != self.read_sequence[order_id]
            ),
            key=lambda r: r.order_id,
        )

    def write(self, connection: Connection, counts_many: bool) -> None:
        """The orders as changed, guarded by the sequences read, and the events."""
        if self.events:
            _write(connection, self.changed, self.read_sequence, self.now, counts_many)
            connection.execute(_INSERT_EVENT, self.events)


def _changed(row: StoredOrder, t: Transition, now: datetime) -> StoredOrder | None:
    """The order after ``t``, or None when ``t`` is not legal for it now:
    not a transition its status allows, or for another attempt."""
    if row.status not in _SOURCES[t.target]:
        return None
    if t.attempt is not None and row.attempt != t.attempt:
        return None
    c = t.change
    attempt, route, signature = row.attempt, row.route, row.signature
    if c.next_attempt:
        attempt, route, signature = attempt + 1, None, None
    if c.route is not None:
        route = c.route
    if c.signature:
        signature = c.signature
    return StoredOrder(
        row.order_id,
        row.owner,
        row.client_order_id,
        t.target.value,
        row.input_token,
        row.output_token,
        row.amount_in,
        row.slippage_bps,
        attempt,
        row.last_sequence + 1,
        route,
        signature,
        c.amount_out if c.amount_out is not None else row.amount_out,
        c.reason[:512] if t.target is Status.FAILED else row.failure_reason,
        row.created_at,
        now,
        row.priority_fee,
        row.order_type,
        row.min_amount_out,
        row.trigger_price,
        row.expire_at,
        row.twap_slices,
        row.twap_interval_ms,
    )


def _write(
    connection: Connection,
    rows: Sequence[StoredOrder],
    read_sequence: Mapping[str, int],
    now: datetime,
    counts_many: bool,
) -> None:
    """The orders as changed, each guarded by the sequence it was read at."""
    params = [
        {
            "b_order_id": r.order_id,
            "b_read_sequence": read_sequence[r.order_id],
            "b_status": r.status,
            "b_last_sequence": r.last_sequence,
            "b_attempt": r.attempt,
            "b_route_pb": r.route.SerializeToString() if r.route is not None else None,
            "b_signature": r.signature,
            "b_amount_out": r.amount_out,
            "b_failure_reason": r.failure_reason,
            "b_updated_at": now,
        }
        for r in rows
    ]
    written = connection.execute(_UPDATE_ORDER, params).rowcount
    if (len(params) == 1 or counts_many) and written != len(params):
        raise ConcurrentChange(
            f"{len(params) - written} of {len(params)} orders changed under their lock"
        )


def _event_values(event: order_pb2.OrderEvent, status: str, now: datetime) -> dict[str, Any]:
    """The event's row, for a Core insert: serialized proto, which costs a
    fraction of proto JSON to write and to read."""
    return {
        "order_id": event.order_id,
        "sequence": event.sequence,
        "status": status,
        "created_at": now,
        "event_pb": event.SerializeToString(),
    }


def _encode_page_token(row: StoredOrder) -> str:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    raw = json.dumps([created.isoformat(), row.order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(page_token: str) -> tuple[datetime, str]:
    try:
        if len(page_token) > MAX_PAGE_TOKEN_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4))
        created, order_id = json.loads(raw)
        if not isinstance(order_id, str):
            raise TypeError("order_id")
        # A canonical UUID: nothing else (a NUL, say) reaches the query.
        return datetime.fromisoformat(created), str(uuid.UUID(order_id))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise PageTokenError("page_token is not a token this service gave out") from exc
