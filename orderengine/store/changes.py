"""What a write to an order is: a new order, a status change (Transition)
and what it records (Change); how changes to many orders group into
statements, and the event a change makes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.amounts import format_amount
from orderengine.order_types import MARKET, OrderTerms, OrderType, stored_terms
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.models import StoredOrder
from orderengine.store.wire import timestamp
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
    # Lamports on top of the network fee, per processed attempt.
    priority_fee: int = 0
    # What it waits for; a market order waits for nothing.
    terms: OrderTerms = MARKET

    @property
    def waits(self) -> bool:
        """Whether it starts OPEN, waiting for its trigger, rather than queued."""
        return self.terms.order_type is not OrderType.MARKET

    def same_as(self, row: StoredOrder) -> bool:
        """Whether ``row`` is this order (a resubmission), not another one:
        the same swap and terms (an expiry is a moment, not what is asked)."""
        return (
            row.input_token,
            row.output_token,
            row.amount_in,
            row.slippage_bps,
            row.priority_fee,
            replace(stored_terms(row), expire_at=None),
        ) == (
            self.input_token,
            self.output_token,
            self.amount_in,
            self.slippage_bps,
            self.priority_fee,
            replace(self.terms, expire_at=None),
        )


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
class Kind:
    """What a status change writes: changes of one kind to different
    orders can be one statement."""

    target: Status
    next_attempt: bool
    route: bool
    signature: bool
    amount_out: bool
    attempt: bool


def kind_of(t: Transition) -> Kind:
    c = t.change
    return Kind(
        t.target,
        c.next_attempt,
        c.route is not None,
        bool(c.signature),
        c.amount_out is not None,
        t.attempt is not None,
    )


def statements(transitions: Sequence[Transition]) -> list[list[int]]:
    """The transitions' indices, grouped into statements that keep each
    order's changes in the order given: an order's n-th change is in the
    n-th round, and a round has one statement per kind of change (different
    orders' rows do not depend on each other)."""
    rounds: list[dict[Kind, list[int]]] = []
    seen: Counter[str] = Counter()
    for i, t in enumerate(transitions):
        n = seen[t.order_id]
        seen[t.order_id] += 1
        if n == len(rounds):
            rounds.append({})
        rounds[n].setdefault(kind_of(t), []).append(i)
    return [indices for statements in rounds for indices in statements.values()]


def event_of(t: Transition, row: StoredOrder, now: Timestamp) -> order_pb2.OrderEvent:
    """The event of a change made: ``row`` is the order after it; ``now``
    the commit's time (one Timestamp for a whole batch)."""
    change = t.change
    event = order_pb2.OrderEvent(
        order_id=t.order_id,
        sequence=row.last_sequence,
        status=t.target.proto,
        event_time=timestamp(change.at) if change.at is not None else now,
        attempt=row.attempt,
        quotes=list(change.quotes),
        signature=change.signature,
        reason=change.reason,
        reason_code=change.reason_code or "",
    )
    if change.route is not None:
        event.route.CopyFrom(change.route)
    if change.amount_out is not None:
        event.amount_out = format_amount(change.amount_out, token(row.output_token).decimals)
    return event
