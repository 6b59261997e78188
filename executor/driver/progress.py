"""Moving an order on: the status change (one transaction), its publish, and
what a failed attempt leads to. Jobs and the tracker share these."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.client import Pipeline

from executor.driver.context import Context
from executor.driver.retries import RETRYABLE
from orderengine.events import publish
from orderengine.observability import metrics_orders
from orderengine.order_queue import enqueue_order
from orderengine.statuses import Status
from orderengine.store.changes import NO_CHANGE, Change, Transition
from orderengine.store.models import OrderRow
from orderengine.v1 import order_pb2

log = logging.getLogger(__name__)


def advance(
    ctx: Context, order_id: str, target: Status, change: Change = NO_CHANGE, *,
    attempt: int | None = None, current: OrderRow | None = None,
) -> OrderRow | None:
    """The order after the change, or None when the change was refused (the
    order moved on, was cancelled, or is on another attempt)."""
    return advance_many(ctx, [Transition(order_id, target, change, attempt)],
                        [current] if current is not None else [])[0]


def advance_many(ctx: Context, transitions: list[Transition],
                 current: Iterable[OrderRow] = (), *,
                 pipeline: Pipeline | None = None,
                 failed: list[Transition] | None = None) -> list[OrderRow | None]:
    """Each change as ``advance``, all in one transaction and one publish.
    ``current``: the orders as the caller read them, for the time each spent
    in its status (docs/operations.md, "Metrics"). With ``pipeline``, the events go
    out with its caller's execute().

    When the transaction fails, each change is made alone, so that one the
    store cannot take does not hold back the rest: those that fail again
    count as refused (None) and, with ``failed``, are added to it. When every
    one fails (the store is away), the error is raised."""
    if not transitions:
        return []
    try:
        results = ctx.store.transition_many(transitions)
    except Exception:
        if len(transitions) == 1:
            raise
        results = _one_by_one(ctx, transitions, failed)
    metrics_orders.transitions_made(current, transitions, results)
    events = [result[1] for result in results if result is not None]
    try:
        publish(pipeline if pipeline is not None else ctx.redis, events)
    except Exception:  # committed is what counts; watchers read gaps from the database
        log.warning("could not publish %d events", len(events))
    return [result[0] if result is not None else None for result in results]


def _one_by_one(ctx: Context, transitions: list[Transition],
                failed: list[Transition] | None,
                ) -> list[tuple[OrderRow, order_pb2.OrderEvent] | None]:
    results: list[tuple[OrderRow, order_pb2.OrderEvent] | None] = []
    errors: list[Exception] = []
    for transition in transitions:
        try:
            results.append(ctx.store.transition_many([transition])[0])
        except Exception as exc:
            log.warning("order %s: could not move to %s: %s", transition.order_id,
                        transition.target.value, exc)
            errors.append(exc)
            results.append(None)
            if failed is not None:
                failed.append(transition)
    if len(errors) == len(transitions):
        raise errors[0]
    return results


def attempt_failed(ctx: Context, row: OrderRow, code: str, reason: str) -> None:
    """Retries a transient failure with a new quote after back-off, up to the
    limit; otherwise the order fails with the reason."""
    if ctx.retry.should_retry(code, row.attempt):
        moved = advance(ctx, row.order_id, Status.ROUTING,
                        Change(reason=reason, reason_code=code, next_attempt=True),
                        attempt=row.attempt, current=row)
        if moved is not None:
            enqueue_order(ctx.queue, row.order_id,
                          delay_seconds=ctx.retry.backoff_seconds(row.attempt))
        return
    if code in RETRYABLE:
        reason = f"{reason} (gave up after {row.attempt} attempts)"
    advance(ctx, row.order_id, Status.FAILED, Change(reason=reason, reason_code=code),
            attempt=row.attempt, current=row)
