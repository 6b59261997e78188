"""The confirmation tracker: polls the chain for every submitted swap in
batches (as getSignatureStatuses does), and moves each order to CONFIRMED,
or retries or fails it, as the chain answers. No worker ever waits for a
slot: throughput does not fall as the chain's latency rises.

The tracker process also runs the reconciler (executor.driver.reconciler)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import grpc

from executor.driver.context import RPC_TIMEOUT_SECONDS, Context, context
from executor.driver.inflight import Inflight, claim_due, forget, next_due, reschedule
from executor.driver.progress import attempt_failed
from executor.driver.reconciler import reconcile_once
from orderengine.amounts import AmountError, parse_amount
from orderengine.observability import handoffs, tracing
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change, Transition
from orderengine.store.models import StoredOrder
from orderengine.tokens import token
from orderengine.transitions import move_many
from orderengine.v1 import execution_service_pb2

log = logging.getLogger(__name__)

Commitment = execution_service_pb2.Commitment
BATCH = 256  # getSignatureStatuses takes at most 256
# A claimed entry comes back to the others if its tracker dies.
LEASE_SECONDS = 10.0
RECONCILE_EVERY_SECONDS = 5.0
UNREACHABLE_RETRY_SECONDS = 0.2
# An entry whose settling failed is checked again this much later, alone.
TROUBLE_RETRY_SECONDS = 5.0


def check_once(ctx: Context) -> int:
    """One round: claims due swaps, asks the chain, acts. Returns how many."""
    entries = claim_due(ctx.redis, LEASE_SECONDS, BATCH)
    if not entries:
        return 0
    try:
        # About many orders, many times a second: in no order's trace, nor one of its own.
        with tracing.untraced():
            response = ctx.chain.GetSignatureStatuses(
                execution_service_pb2.GetSignatureStatusesRequest(
                    signatures=[e.signature for e in entries]
                ),
                timeout=RPC_TIMEOUT_SECONDS,
            )
    except grpc.RpcError:
        # Give the claims back at once rather than at the end of the lease.
        reschedule(ctx.redis, entries, UNREACHABLE_RETRY_SECONDS)
        raise
    waiting: list[Inflight] = []
    # Landed, not yet confirmed: confirmed confirm_seconds after landing,
    # which was before now, so asking sooner would only hear "processed" again.
    landed: list[Inflight] = []
    final: list[tuple[Inflight, execution_service_pb2.SignatureStatus]] = []
    for entry, status in zip(entries, response.statuses, strict=True):
        if not status.found:
            final.append((entry, status))
        elif status.commitment == Commitment.COMMITMENT_PENDING:
            waiting.append(entry)
        elif status.commitment == Commitment.COMMITMENT_PROCESSED:
            landed.append(entry)
        else:
            final.append((entry, status))
    if not final:
        _reschedule(ctx, waiting, landed, [], [])
        return len(entries)
    rows = ctx.store.get_many([e.order_id for e, _ in final])
    # Each order's outcome is its request's: its trace, when tracing.
    carried = handoffs.kept_for_tracker(ctx.redis, list(rows))
    confirmations: list[Transition] = []
    confirming: dict[str, Inflight] = {}
    done: list[Inflight] = []
    troubled: list[Inflight] = []
    for entry, status in final:
        try:
            confirmation = _settle(ctx, entry, status, rows.get(entry.order_id), carried)
        except Exception:  # this entry's trouble: the round goes on with the rest
            log.exception(
                "tracker: order %s: could not settle its swap; again in %.0fs",
                entry.order_id,
                TROUBLE_RETRY_SECONDS,
            )
            troubled.append(entry)
            continue
        if confirmation is WAITING:
            waiting.append(entry)
        elif confirmation is not None:
            confirmations.append(confirmation)
            confirming[entry.order_id] = entry
        else:
            done.append(entry)
    # Every confirmation of the round: one transaction, one publish.
    failed: list[Transition] = []
    with handoffs.order_work("confirm order", [c.order_id for c in confirmations], carried):
        move_many(ctx.store, ctx.redis, confirmations, rows.values(), failed=failed)
    unwritten = {t.order_id for t in failed}
    for order_id, entry in confirming.items():
        (troubled if order_id in unwritten else done).append(entry)
    _reschedule(ctx, waiting, landed, troubled, done)
    return len(entries)


def _reschedule(
    ctx: Context,
    waiting: list[Inflight],
    landed: list[Inflight],
    troubled: list[Inflight],
    done: list[Inflight],
) -> None:
    """Each entry's next check, or none, in one round trip."""
    poll = ctx.settings.tracker_poll_seconds
    with ctx.redis.pipeline(transaction=False) as pipe:
        reschedule(pipe, waiting, poll)
        reschedule(pipe, landed, max(ctx.settings.confirm_seconds, poll))
        # Each on its own time, apart from the round it came with.
        reschedule(pipe, troubled, TROUBLE_RETRY_SECONDS)
        forget(pipe, done)
        pipe.execute()


# _settle's answer for an entry still waiting on the chain.
WAITING = Transition("", Status.CONFIRMED)


def _settle(
    ctx: Context,
    entry: Inflight,
    status: execution_service_pb2.SignatureStatus,
    row: StoredOrder | None,
    carried: Mapping[str, handoffs.Carrier],
) -> Transition | None:
    """Acts on one final answer: the order's confirmation to make, or WAITING,
    or None when the entry is done (settled, retried or failed here)."""
    if row is None or row.status != Status.SUBMITTED or row.attempt != entry.attempt:
        return None  # settled already, by another tracker or an earlier round
    if not status.found and not _blockhash_expired(ctx, row):
        # Unknown to the chain: maybe not propagated yet. Only once its
        # blockhash has expired can it never land, and a new attempt is safe.
        return WAITING
    if not status.found:
        with handoffs.one_order_work("confirm order", row.order_id, carried):
            attempt_failed(
                ctx,
                row,
                Reason.TRANSACTION_DROPPED,
                "transaction dropped: the chain never saw it before its blockhash expired",
            )
        return None
    if status.error_code:
        with handoffs.one_order_work("confirm order", row.order_id, carried):
            attempt_failed(ctx, row, _reason(status.error_code), status.error)
        return None
    try:
        amount_out = parse_amount(status.amount_out, token(row.output_token).decimals)
    except AmountError as exc:
        # The chain says it landed, with an amount no column holds: no
        # attempt changes that, so the order fails, alone.
        with handoffs.one_order_work("confirm order", row.order_id, carried):
            attempt_failed(
                ctx,
                row,
                Reason.AMOUNT_OVERFLOW,
                f"amount out {status.amount_out[:48]!r} {row.output_token} {exc}",
            )
        return None
    return Transition(
        row.order_id,
        Status.CONFIRMED,
        Change(signature=entry.signature, amount_out=amount_out),
        entry.attempt,
    )


def _reason(code: str) -> Reason:
    """The chain's error code as a Reason; one this engine does not know (a
    newer chain) is UNKNOWN, with the chain's own code in the log."""
    reason = Reason.of(code)
    if reason is Reason.UNKNOWN and code != Reason.UNKNOWN:
        log.warning(
            "tracker: the chain's error code %r is not one this engine knows; "
            "the order carries UNKNOWN",
            code[:64],
        )
    return reason


def _blockhash_expired(ctx: Context, row: StoredOrder) -> bool:
    sent = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return datetime.now(UTC) - sent >= timedelta(seconds=ctx.settings.blockhash_valid_seconds)


def run(stopping: threading.Event) -> None:
    ctx = context()
    next_reconcile = 0.0
    while not stopping.is_set():
        pause = ctx.settings.tracker_poll_seconds
        try:
            if time.monotonic() >= next_reconcile:
                reconcile_once(ctx)
                next_reconcile = time.monotonic() + RECONCILE_EVERY_SECONDS
            if check_once(ctx) == BATCH:
                continue  # more may be due right now
            pause = _idle_pause(ctx)
        except grpc.RpcError as exc:  # the chain is away: a line, not a traceback a round
            log.warning(
                "tracker: ExecutionService %s; trying again in %.1fs",
                exc.code().name,
                UNREACHABLE_RETRY_SECONDS,
            )
            stopping.wait(UNREACHABLE_RETRY_SECONDS)
        except Exception:  # keep tracking: the chain or Redis may be back next round
            log.exception("tracker round failed")
            stopping.wait(UNREACHABLE_RETRY_SECONDS)
        stopping.wait(pause)


def _idle_pause(ctx: Context) -> float:
    """How long the tracker may sleep: until the next entry is due, at
    least a poll, and at most a slot, since a worker tracks a new swap a
    slot ahead (one tracked sooner, by the reconciler, waits a slot at most)."""
    poll = ctx.settings.tracker_poll_seconds
    due = next_due(ctx.redis)
    if due is None:
        return max(poll, ctx.settings.slot_seconds)
    return min(max(due - time.time(), poll), max(poll, ctx.settings.slot_seconds))
