"""Orders and their events: every write the engine makes, in one place.

Each status change is one transaction: a compare-and-set UPDATE of the order
(legal only from the statuses the state machine allows, and only for the
attempt the caller drove) that also bumps its sequence, and the INSERT of the
event with that sequence. A refused change writes nothing."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Column, Engine, Table, and_, case, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderengine.amounts import format_amount
from orderengine.reasons import Reason
from orderengine.statuses import TERMINAL, Status, sources
from orderengine.store.database import reading, session_factory
from orderengine.store.models import EventRow, OrderRow
from orderengine.store.wire import event_from_json, message_to_json, timestamp
from orderengine.tokens import token
from orderengine.v1 import market_pb2, order_pb2


@dataclass(frozen=True)
class NewOrder:
    owner: str
    input_token: str
    output_token: str
    amount_in: int
    slippage_bps: int
    client_order_id: str | None = None

    def same_as(self, row: OrderRow) -> bool:
        """Whether ``row`` is this order (a resubmission), not another one."""
        return (row.input_token, row.output_token, row.amount_in, row.slippage_bps) == (
            self.input_token, self.output_token, self.amount_in, self.slippage_bps)


@dataclass(frozen=True)
class Change:
    """What a status change records beside the status itself."""

    reason: str = ""
    reason_code: Reason | None = None
    quotes: Sequence[market_pb2.VenueQuote] = ()
    route: market_pb2.Route | None = None
    signature: str = ""
    amount_out: int | None = None
    # Start the next attempt: route and signature of this one are cleared.
    next_attempt: bool = False
    # When the step happened, if not at the commit (ROUTING began before the
    # quote it is committed with).
    at: datetime | None = None


@dataclass(frozen=True)
class Transition:
    order_id: str
    target: Status
    change: Change = field(default_factory=Change)
    # Only if the order is still on this attempt.
    attempt: int | None = None


NO_CHANGE = Change()


@dataclass(frozen=True)
class _Kind:
    """What a status change writes: changes of one kind to different
    orders can be one statement."""

    target: Status
    next_attempt: bool
    route: bool
    signature: bool
    amount_out: bool
    attempt: bool


def _kind(t: Transition) -> _Kind:
    c = t.change
    return _Kind(t.target, c.next_attempt, c.route is not None, bool(c.signature),
                 c.amount_out is not None, t.attempt is not None)


def _statements(transitions: Sequence[Transition]) -> list[list[int]]:
    """The transitions' indices, grouped into statements that keep each
    order's changes in the order given: an order's n-th change is in the
    n-th round, and a round has one statement per kind of change (different
    orders' rows do not depend on each other)."""
    rounds: list[dict[_Kind, list[int]]] = []
    seen: Counter[str] = Counter()
    for i, t in enumerate(transitions):
        n = seen[t.order_id]
        seen[t.order_id] += 1
        if n == len(rounds):
            rounds.append({})
        rounds[n].setdefault(_kind(t), []).append(i)
    return [indices for statements in rounds for indices in statements.values()]


def _event(t: Transition, row: OrderRow, now: datetime) -> order_pb2.OrderEvent:
    """The event of a change made: ``row`` is the order after it."""
    change = t.change
    event = order_pb2.OrderEvent(
        order_id=t.order_id, sequence=row.last_sequence, status=t.target.proto,
        event_time=timestamp(change.at or now), attempt=row.attempt,
        quotes=list(change.quotes), signature=change.signature, reason=change.reason,
        reason_code=change.reason_code or "",
    )
    if change.route is not None:
        event.route.CopyFrom(change.route)
    if change.amount_out is not None:
        event.amount_out = format_amount(change.amount_out, token(row.output_token).decimals)
    return event
ORDERS = cast(Table, OrderRow.__table__)
# Orders named in one IN (...) list: far below every database's limit on
# bound parameters, and each query still covers hundreds of watchers.
IDS_PER_QUERY = 500


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start:start + IDS_PER_QUERY]


@dataclass(frozen=True, slots=True)
class History:
    """What a watcher reads of an order: whose it is, how far it has gone,
    and its events after some sequence."""

    owner: str
    terminal: bool
    last_sequence: int
    events: list[order_pb2.OrderEvent]

    def after(self, sequence: int) -> History:
        return History(self.owner, self.terminal, self.last_sequence,
                       [e for e in self.events if e.sequence > sequence])


class PageTokenError(ValueError):
    pass


MAX_PAGE_TOKEN_CHARS = 256


def _now() -> datetime:
    return datetime.now(UTC)


class OrderStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        self._reads = reading(engine)

    # -- submission -----------------------------------------------------------

    def submit(self, new: NewOrder) -> tuple[OrderRow, order_pb2.OrderEvent | None]:
        """Stores the order as PENDING with its first event. With a
        client_order_id already used by this owner, returns that order and no
        event, also when two submissions race."""
        return self.submit_many([new])[0]

    def submit_many(
        self, news: Sequence[NewOrder]
    ) -> list[tuple[OrderRow, order_pb2.OrderEvent | None]]:
        """``submit`` for several orders in one transaction, each answered in
        turn. An order whose client_order_id is taken (also earlier in the
        same batch) comes back as the order that took it, with no event."""
        keys = {(n.owner, n.client_order_id) for n in news if n.client_order_id}
        taken = self._by_client_ids(keys) if keys else {}
        now = _now()
        results: list[tuple[OrderRow, order_pb2.OrderEvent | None]] = []
        rows, events = [], []
        for new in news:
            key = (new.owner, new.client_order_id or "")
            if new.client_order_id and key in taken:
                results.append((taken[key], None))
                continue
            row = OrderRow(
                order_id=str(uuid.uuid4()), owner=new.owner,
                client_order_id=new.client_order_id, status=Status.PENDING,
                input_token=new.input_token, output_token=new.output_token,
                amount_in=new.amount_in, slippage_bps=new.slippage_bps, attempt=1,
                last_sequence=1, route=None, signature=None, amount_out=None,
                failure_reason=None, created_at=now, updated_at=now,
            )
            event = order_pb2.OrderEvent(
                order_id=row.order_id, sequence=1, status=Status.PENDING.proto,
                event_time=timestamp(now), attempt=1,
            )
            if new.client_order_id:
                taken[key] = row
            rows.append(row)
            events.append(event)
            results.append((row, event))
        if not rows:
            return results
        try:
            with self._sessions.begin() as session:
                # Plain executemany inserts: one round trip per table.
                session.execute(insert(OrderRow), [_columns(r) for r in rows])
                session.execute(insert(EventRow), [_event_values(e, now) for e in events])
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

    def by_client_ids(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], OrderRow]:
        """The stored orders with these (owner, client_order_id)."""
        return self._by_client_ids(keys)

    def _by_client_ids(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], OrderRow]:
        owners = {owner for owner, _ in keys}
        ids = {cid for _, cid in keys}
        with self._reads() as session:
            rows = session.scalars(select(OrderRow).where(
                OrderRow.owner.in_(owners), OrderRow.client_order_id.in_(ids))).all()
        return {(r.owner, r.client_order_id or ""): r for r in rows
                if (r.owner, r.client_order_id or "") in keys}

    # -- status changes -------------------------------------------------------

    def transition(
        self, order_id: str, target: Status, change: Change = NO_CHANGE, *,
        attempt: int | None = None,
    ) -> tuple[OrderRow, order_pb2.OrderEvent] | None:
        """Moves the order to ``target`` if that is legal from its status now
        (and it is still on ``attempt``, when given). None when refused."""
        return self.transition_many([Transition(order_id, target, change, attempt)])[0]

    def transition_many(
        self, transitions: Sequence[Transition]
    ) -> list[tuple[OrderRow, order_pb2.OrderEvent] | None]:
        """``transition`` for each, in order, in one transaction: several
        orders' changes, or several changes of one order, cost one commit.
        Changes of the same kind to different orders share one statement."""
        now = _now()
        results: list[tuple[OrderRow, order_pb2.OrderEvent] | None] = [None] * len(transitions)
        with self._sessions.begin() as session:
            for indices in _statements(transitions):
                moved = self._transition(session, [transitions[i] for i in indices], now)
                for i in indices:
                    results[i] = moved.get(transitions[i].order_id)
            events = [_event_values(r[1], now) for r in results if r is not None]
            if events:
                session.execute(insert(EventRow), events)
        return results

    @staticmethod
    def _transition(
        session: Session, ts: Sequence[Transition], now: datetime
    ) -> dict[str, tuple[OrderRow, order_pb2.OrderEvent]]:
        """One compare-and-set UPDATE for changes of one kind (``_kind``) to
        different orders; each order's own values ride in CASE expressions.
        Returns the orders moved, by id."""
        target, kind = ts[0].target, _kind(ts[0])

        def each(column: Column[Any], value: Callable[[Transition], Any]) -> Any:
            return case({t.order_id: literal(value(t), column.type) for t in ts},
                        value=ORDERS.c.order_id)

        # Core, not the ORM's bulk UPDATE: this runs for every status change.
        values: dict[str, Any] = {
            "status": target.value,
            "last_sequence": ORDERS.c.last_sequence + 1,
            "updated_at": now,
        }
        if kind.next_attempt:
            values.update(attempt=ORDERS.c.attempt + 1, route=None, signature=None)
        if kind.route:
            values["route"] = each(ORDERS.c.route, lambda t: message_to_json(t.change.route))
        if kind.signature:
            values["signature"] = each(ORDERS.c.signature, lambda t: t.change.signature)
        if kind.amount_out:
            values["amount_out"] = each(ORDERS.c.amount_out, lambda t: t.change.amount_out)
        if target is Status.FAILED:
            values["failure_reason"] = each(ORDERS.c.failure_reason,
                                            lambda t: t.change.reason[:512])
        conditions = [ORDERS.c.order_id.in_([t.order_id for t in ts]),
                      ORDERS.c.status.in_([s.value for s in sources(target)])]
        if kind.attempt:
            conditions.append(ORDERS.c.attempt == each(ORDERS.c.attempt, lambda t: t.attempt))
        updated = session.execute(
            update(ORDERS).where(*conditions).values(values).returning(*ORDERS.c)
        ).all()
        rows = {r.order_id: OrderRow(**r._mapping) for r in updated}
        return {t.order_id: (rows[t.order_id], _event(t, rows[t.order_id], now))
                for t in ts if t.order_id in rows}

    # -- reading --------------------------------------------------------------

    def get(self, order_id: str, owner: str | None = None) -> OrderRow | None:
        with self._reads() as session:
            row = session.get(OrderRow, order_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row

    def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRow]:
        if not order_ids:
            return {}
        with self._reads() as session:
            rows = session.scalars(select(OrderRow).where(OrderRow.order_id.in_(order_ids)))
            return {row.order_id: row for row in rows}

    def count_by_status(self) -> dict[str, int]:
        """How many orders are in each status (statuses with none are absent)."""
        with self._reads() as session:
            counted = session.execute(
                select(OrderRow.status, func.count()).group_by(OrderRow.status)).all()
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
        with self._reads() as session:
            for chunk in _chunks(ids):
                for order_id, owner, status, last in session.execute(
                        select(OrderRow.order_id, OrderRow.owner, OrderRow.status,
                               OrderRow.last_sequence).where(OrderRow.order_id.in_(chunk))):
                    found[order_id] = History(owner, Status(status).terminal, last, [])
                for order_id, sequence, event in session.execute(
                        select(EventRow.order_id, EventRow.sequence, EventRow.event)
                        .where(EventRow.order_id.in_(chunk))
                        .order_by(EventRow.order_id, EventRow.sequence)):
                    if sequence > after[order_id] and order_id in found:
                        found[order_id].events.append(event_from_json(event))
        return found

    def last_sequences(self, order_ids: Sequence[str]) -> dict[str, int]:
        """Each order's last sequence (orders that do not exist are absent)."""
        found: dict[str, int] = {}
        with self._reads() as session:
            for chunk in _chunks(order_ids):
                found.update({order_id: last for order_id, last in session.execute(
                    select(OrderRow.order_id, OrderRow.last_sequence)
                    .where(OrderRow.order_id.in_(chunk)))})
        return found

    def list_page(
        self, owner: str, page_size: int, page_token: str = ""
    ) -> tuple[list[OrderRow], str]:
        """The owner's orders, newest first, and the token of the next page
        ("" on the last). Keyset paging: stable while new orders arrive."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        query = select(OrderRow).where(OrderRow.owner == owner)
        if page_token:
            created, last_id = _decode_page_token(page_token)
            query = query.where(
                or_(
                    OrderRow.created_at < created,
                    and_(OrderRow.created_at == created, OrderRow.order_id < last_id),
                )
            )
        query = query.order_by(OrderRow.created_at.desc(), OrderRow.order_id.desc())
        with self._reads() as session:
            rows = list(session.scalars(query.limit(page_size + 1)).all())
        if len(rows) <= page_size:
            return rows, ""
        rows = rows[:page_size]
        return rows, _encode_page_token(rows[-1])

    def stale(self, older_than: timedelta, limit: int = 500) -> list[OrderRow]:
        """Non-terminal orders untouched for ``older_than``: the reconciler's work."""
        cutoff = _now() - older_than
        with self._reads() as session:
            return list(
                session.scalars(
                    select(OrderRow)
                    .where(
                        OrderRow.status.not_in([s.value for s in TERMINAL]),
                        OrderRow.updated_at < cutoff,
                    )
                    .order_by(OrderRow.updated_at)
                    .limit(limit)
                ).all()
            )


def _event_values(event: order_pb2.OrderEvent, now: datetime) -> dict[str, Any]:
    """The event's row, for a Core insert (no ORM object: this runs per event)."""
    return {"order_id": event.order_id, "sequence": event.sequence,
            "status": Status.from_proto(event.status).value, "created_at": now,
            "event": message_to_json(event)}


def _columns(row: Any) -> dict[str, Any]:
    """A mapped object's column values, for a Core insert."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def _encode_page_token(row: OrderRow) -> str:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    raw = json.dumps([created.isoformat(), row.order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(page_token: str) -> tuple[datetime, str]:
    try:
        # Ours are about 110 characters; a long one may nest JSON deep enough
        # to exhaust the parser's recursion.
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
