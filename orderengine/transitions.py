"""The one way an order's status changes: the compare-and-set in the store
(with its event, one transaction), the time each order spent in the status
it left, and the publish. The worker's job, the tracker and CancelOrder all
call it, so a change is counted and published the same way wherever it is
made.

A failed publish is logged and never undoes a commit: the database is the
truth, and watchers read the gaps from it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from redis import Redis
from redis.client import Pipeline

from orderengine.events import publish
from orderengine.observability import metrics_orders
from orderengine.statuses import Status
from orderengine.store.changes import NO_CHANGE, Change, Transition
from orderengine.store.models import StoredOrder
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2

log = logging.getLogger(__name__)

Moved = tuple[StoredOrder, order_pb2.OrderEvent]


def move(
    store: OrderStore,
    bus: Redis | Pipeline,
    order_id: str,
    target: Status,
    change: Change = NO_CHANGE,
    *,
    attempt: int | None = None,
    current: StoredOrder | None = None,
) -> StoredOrder | None:
    """The order after the change, or None when the change was refused (the
    order moved on, was cancelled, or is on another attempt). A store that
    fails raises."""
    return move_many(
        store,
        bus,
        [Transition(order_id, target, change, attempt)],
        [current] if current is not None else [],
    )[0]


def move_many(
    store: OrderStore,
    bus: Redis | Pipeline,
    transitions: Sequence[Transition],
    current: Iterable[StoredOrder] = (),
    *,
    failed: list[Transition] | None = None,
) -> list[StoredOrder | None]:
    """Each change as ``move``, all in one transaction and one publish.
    ``current``: the orders as the caller read them, for the time each spent
    in its status (README "Live figures"), and for the store to decide on
    rather than read them again. With a pipeline as ``bus``, the
    events go out with its caller's execute().

    When the transaction fails, each change is made alone, so that one the
    store cannot take does not hold back the rest: those that fail again
    count as refused (None) and, with ``failed``, are added to it. When every
    one fails (the store is away), the error is raised."""
    if not transitions:
        return []
    current = list(current)
    try:
        results = store.transition_many(transitions, current)
    except Exception:
        if len(transitions) == 1:
            raise
        results = _one_by_one(store, transitions, failed)
    metrics_orders.transitions_made(current, transitions, results)
    events = [result[1] for result in results if result is not None]
    try:
        publish(bus, events)
    except Exception:  # committed is what counts; watchers read gaps from the database
        log.warning("could not publish %d events", len(events))
    return [result[0] if result is not None else None for result in results]


def _one_by_one(
    store: OrderStore, transitions: Sequence[Transition], failed: list[Transition] | None
) -> list[Moved | None]:
    results: list[Moved | None] = []
    errors: list[Exception] = []
    for transition in transitions:
        try:
            results.append(store.transition_many([transition])[0])
        except Exception as exc:
            log.warning(
                "order %s: could not move to %s: %s",
                transition.order_id,
                transition.target.value,
                exc,
            )
            errors.append(exc)
            results.append(None)
            if failed is not None:
                failed.append(transition)
    if len(errors) == len(transitions):
        raise errors[0]
    return results
