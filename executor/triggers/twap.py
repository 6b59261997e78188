"""TWAP orders: ``amount`` in ``slices`` equal market swaps, one every
``interval`` from submission. Each slice is a market order of its own, with
every guarantee a market order has, made with the client_order_id
``twap:<order id>:<slice>``: making it twice (two trigger parts, a round
repeated after a crash) finds the first. The TWAP order stays OPEN while its
slices run; when one ends it records it (OPEN -> OPEN, the amount filled so
far in ``amount_out``) on its next attempt number, so a slice is recorded
once; the last one ends it CONFIRMED with the total (FAILED when no slice
filled). A cancel ends it between slices: the slice in flight, if any, runs
to its end as its own order, and no other starts."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from executor.driver.context import Context
from executor.triggers.index import TriggerIndex
from orderengine.amounts import format_amount
from orderengine.order_queue import enqueue_orders
from orderengine.order_types import OrderType, slice_amounts
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change, NewOrder
from orderengine.store.models import StoredOrder
from orderengine.tokens import token
from orderengine.transitions import move

log = logging.getLogger(__name__)

# A slice in flight is looked at again this often until it ends.
SLICE_POLL_SECONDS = 0.1


def slice_id(order_id: str, number: int) -> str:
    """The client_order_id of the order's slice ``number`` (from 1)."""
    return f"twap:{order_id}:{number}"


def _started(row: StoredOrder) -> float:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return created.timestamp()


class Slicer:
    def __init__(self, ctx: Context, index: TriggerIndex) -> None:
        self.ctx = ctx
        self.index = index

    def run_due(self, now: float | None = None) -> int:
        """Moves on every TWAP order whose time came; returns how many slices
        it started or recorded."""
        moment = time.time() if now is None else now
        ids = self.index.slices_due(moment)
        if not ids:
            return 0
        rows = self.ctx.store.get_many(ids)
        steps = 0
        for order_id in ids:
            row = rows.get(order_id)
            if row is None or row.status != Status.OPEN or row.order_type != OrderType.TWAP:
                self.index.schedule_slice(order_id, None)  # ended, cancelled, or gone
                continue
            try:
                at, stepped = self.advance(row, moment)
            except Exception:  # this order's alone: the others go on
                log.exception("twap %s: could not move on", order_id)
                at, stepped = moment + 1.0, False
            self.index.schedule_slice(order_id, at)
            steps += stepped
        return steps

    def advance(self, row: StoredOrder, now: float) -> tuple[float | None, bool]:
        """One step of the order: record its slice that ended, or start the
        one that is due; when to look again (None: it ended), and whether
        it stepped."""
        slices = row.twap_slices or 0
        interval = (row.twap_interval_ms or 0) / 1000
        done = row.attempt - 1  # slices recorded
        number = done + 1
        key = (row.owner, slice_id(row.order_id, number))
        child = self.ctx.store.by_client_ids({key}).get(key)
        if child is None:
            due = _started(row) + done * interval
            if now < due:
                return due, False
            self._start(row, number, slice_amounts(row.amount_in, slices)[done])
            return now + SLICE_POLL_SECONDS, True
        if not Status(child.status).terminal:
            return now + SLICE_POLL_SECONDS, False
        moved = self._record(row, child, number, slices)
        if moved is None or moved.status != Status.OPEN:
            return None, moved is not None
        return max(now, _started(row) + number * interval), True

    def _start(self, row: StoredOrder, number: int, amount: int) -> None:
        ((child, event),) = self.ctx.store.submit_many(
            [
                NewOrder(
                    owner=row.owner,
                    input_token=row.input_token,
                    output_token=row.output_token,
                    amount_in=amount,
                    slippage_bps=row.slippage_bps,
                    client_order_id=slice_id(row.order_id, number),
                    priority_fee=row.priority_fee,
                )
            ]
        )
        if event is not None:  # made now, not found made before
            enqueue_orders(self.ctx.queue, [child.order_id])

    def _record(
        self, row: StoredOrder, child: StoredOrder, number: int, slices: int
    ) -> StoredOrder | None:
        """The slice's end on the TWAP order: OPEN again with the amount
        filled so far, or, for the last slice, its end."""
        decimals = token(row.output_token).decimals
        got = child.amount_out if child.status == Status.CONFIRMED and child.amount_out else 0
        filled = (row.amount_out or 0) + got
        so_far = f"{format_amount(filled, decimals) if filled else '0'} {row.output_token}"
        if got:
            what = f"slice {number} of {slices} filled {format_amount(got, decimals)}"
            code = Reason.SLICE_FILLED
        else:
            what = (
                f"slice {number} of {slices} {child.status.lower()}: {child.failure_reason or ''}"
            )
            code = Reason.SLICE_FAILED
        if number < slices:
            target, reason = Status.OPEN, f"{what} (order {child.order_id}); {so_far} so far"
        elif filled:
            target, reason = Status.CONFIRMED, f"{what}; {so_far} in all"
        else:
            target, reason = Status.FAILED, f"{what}; no slice filled"
        return move(
            self.ctx.store,
            self.ctx.redis,
            row.order_id,
            target,
            Change(
                reason=reason,
                reason_code=code,
                amount_out=filled if filled else None,
                next_attempt=target is Status.OPEN,
                at=datetime.now(UTC),
            ),
            attempt=row.attempt,
            current=row,
        )
