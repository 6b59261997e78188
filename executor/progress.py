"""Moving an order on: the status change (one transaction), its publish, and
what a failed attempt leads to. Jobs and the tracker share these."""

from __future__ import annotations

import logging

from executor.context import Context
from executor.retries import RETRYABLE
from orderengine.events import publish
from orderengine.order_queue import enqueue_order
from orderengine.statuses import Status
from orderengine.store.models import OrderRow
from orderengine.store.orders import NO_CHANGE, Change

log = logging.getLogger(__name__)


def advance(
    ctx: Context, order_id: str, target: Status, change: Change = NO_CHANGE, *,
    attempt: int | None = None,
) -> OrderRow | None:
    """The order after the change, or None when the change was refused (the
    order moved on, was cancelled, or is on another attempt)."""
    result = ctx.store.transition(order_id, target, change, attempt=attempt)
    if result is None:
        return None
    row, event = result
    try:
        publish(ctx.redis, [event])
    except Exception:  # committed is what counts; watchers read gaps from the database
        log.warning("could not publish event %s of order %s", event.sequence, order_id)
    return row


def attempt_failed(ctx: Context, row: OrderRow, code: str, reason: str) -> None:
    """Retries a transient failure with a new quote after back-off, up to the
    limit; otherwise the order fails with the reason."""
    if ctx.retry.should_retry(code, row.attempt):
        moved = advance(ctx, row.order_id, Status.ROUTING,
                        Change(reason=reason, reason_code=code, next_attempt=True),
                        attempt=row.attempt)
        if moved is not None:
            enqueue_order(ctx.queue, row.order_id,
                          delay_seconds=ctx.retry.backoff_seconds(row.attempt))
        return
    if code in RETRYABLE:
        reason = f"{reason} (gave up after {row.attempt} attempts)"
    advance(ctx, row.order_id, Status.FAILED, Change(reason=reason, reason_code=code),
            attempt=row.attempt)
