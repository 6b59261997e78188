"""What a failed attempt leads to: a retry or the order's failure. Jobs and
the tracker share it; the status change itself is orderengine.transitions'."""

from __future__ import annotations

from executor.driver.context import Context
from executor.driver.retries import RETRYABLE
from orderengine.order_queue import enqueue_order
from orderengine.order_types import OrderType
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change
from orderengine.store.models import StoredOrder
from orderengine.transitions import move


def attempt_failed(ctx: Context, row: StoredOrder, code: Reason, reason: str) -> None:
    """Retries a transient failure with a new quote after back-off, up to the
    limit; otherwise the order fails with the reason. A limit order whose
    landing gave less than its minimum waits again (OPEN) instead."""
    if code is Reason.SLIPPAGE_EXCEEDED and row.order_type == OrderType.LIMIT:
        back_to_open(ctx, row, f"{reason}; the limit order waits again")
        return
    if ctx.retry.should_retry(code, row.attempt):
        moved = move(
            ctx.store,
            ctx.redis,
            row.order_id,
            Status.ROUTING,
            Change(reason=reason, reason_code=code, next_attempt=True),
            attempt=row.attempt,
            current=row,
        )
        if moved is not None:
            enqueue_order(
                ctx.queue, row.order_id, delay_seconds=ctx.retry.backoff_seconds(row.attempt)
            )
        return
    if code in RETRYABLE:
        reason = f"{reason} (gave up after {row.attempt} attempts)"
    move(
        ctx.store,
        ctx.redis,
        row.order_id,
        Status.FAILED,
        Change(reason=reason, reason_code=code),
        attempt=row.attempt,
        current=row,
    )


def back_to_open(ctx: Context, row: StoredOrder, reason: str) -> StoredOrder | None:
    """The limit order waits for its price again, on a new attempt (its
    next swap has a new attempt key); the trigger part finds it OPEN."""
    return move(
        ctx.store,
        ctx.redis,
        row.order_id,
        Status.OPEN,
        Change(reason=reason, reason_code=Reason.LIMIT_NOT_MET, next_attempt=True),
        attempt=row.attempt,
        current=row,
    )
