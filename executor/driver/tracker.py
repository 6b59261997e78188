"""The confirmation tracker: polls the chain for every submitted swap in
batches (as getSignatureStatuses does), and moves each order to CONFIRMED,
or retries or fails it, as the chain answers. No worker ever waits for a
slot: throughput does not fall as the chain's latency rises.

The tracker process also runs the reconciler (executor.driver.reconciler)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import grpc

from executor.chain.faults import TRANSACTION_DROPPED
from executor.driver.context import RPC_TIMEOUT_SECONDS, Context, context
from executor.driver.inflight import Inflight, claim_due, forget, reschedule
from executor.driver.progress import advance_many, attempt_failed
from executor.driver.reconciler import reconcile_once
from orderengine.amounts import parse_amount
from orderengine.observability import handoffs, tracing
from orderengine.statuses import Status
from orderengine.store.changes import Change, Transition
from orderengine.store.models import OrderRow
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2

log = logging.getLogger(__name__)

Commitment = execution_service_pb2.Commitment
BATCH = 256  # getSignatureStatuses takes at most 256
# A claimed entry comes back to the others if its tracker dies.
LEASE_SECONDS = 10.0
RECONCILE_EVERY_SECONDS = 5.0
UNREACHABLE_RETRY_SECONDS = 0.2


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
                    signatures=[e.signature for e in entries]),
                timeout=RPC_TIMEOUT_SECONDS,
            )
    except grpc.RpcError:
        # Give the claims back at once rather than at the end of the lease.
        reschedule(ctx.redis, entries, UNREACHABLE_RETRY_SECONDS)
        raise
    waiting: list[Inflight] = []
    final: list[tuple[Inflight, execution_service_pb2.SignatureStatus]] = []
    for entry, status in zip(entries, response.statuses, strict=True):
        if status.found and status.commitment in (Commitment.COMMITMENT_PENDING,
                                                  Commitment.COMMITMENT_PROCESSED):
            waiting.append(entry)
        else:
            final.append((entry, status))
    rows = ctx.store.get_many([e.order_id for e, _ in final])
    # Each order's outcome is its request's: its trace, when tracing.
    carried = handoffs.recall(ctx.redis, list(rows))
    confirmations: list[Transition] = []
    done: list[Inflight] = []
    for entry, status in final:
        row = rows.get(entry.order_id)
        if row is None or row.status != Status.SUBMITTED or row.attempt != entry.attempt:
            done.append(entry)  # settled already, by another tracker or an earlier round
        elif not status.found and not _blockhash_expired(ctx, row):
            # Unknown to the chain: maybe not propagated yet. Only once its
            # blockhash has expired can it never land, and a new attempt is safe.
            waiting.append(entry)
        elif not status.found:
            with handoffs.one_order_work("confirm order", row.order_id, carried):
                attempt_failed(ctx, row, TRANSACTION_DROPPED,
                               "transaction dropped: the chain never saw it before its "
                               "blockhash expired")
            done.append(entry)
        elif status.error_code:
            with handoffs.one_order_work("confirm order", row.order_id, carried):
                attempt_failed(ctx, row, status.error_code, status.error)
            done.append(entry)
        else:
            amount_out = parse_amount(status.amount_out, token(row.output_token).decimals)
            confirmations.append(Transition(
                row.order_id, Status.CONFIRMED,
                Change(signature=entry.signature, amount_out=amount_out), entry.attempt))
            done.append(entry)
    # Every confirmation of the round: one transaction, one publish.
    with handoffs.order_work("confirm order", [c.order_id for c in confirmations], carried):
        advance_many(ctx, confirmations, rows.values())
    reschedule(ctx.redis, waiting, ctx.settings.tracker_poll_seconds)
    forget(ctx.redis, done)
    return len(entries)


def _blockhash_expired(ctx: Context, row: OrderRow) -> bool:
    sent = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return datetime.now(UTC) - sent >= timedelta(seconds=ctx.settings.blockhash_valid_seconds)


def run(stopping: threading.Event) -> None:
    ctx = context()
    next_reconcile = 0.0
    while not stopping.is_set():
        try:
            if time.monotonic() >= next_reconcile:
                reconcile_once(ctx)
                next_reconcile = time.monotonic() + RECONCILE_EVERY_SECONDS
            if check_once(ctx) == BATCH:
                continue  # more may be due right now
        except grpc.RpcError as exc:  # the chain is away: a line, not a traceback a round
            log.warning("tracker: ExecutionService %s; trying again in %.1fs",
                        exc.code().name, UNREACHABLE_RETRY_SECONDS)
            stopping.wait(UNREACHABLE_RETRY_SECONDS)
        except Exception:  # keep tracking: the chain or Redis may be back next round
            log.exception("tracker round failed")
            stopping.wait(UNREACHABLE_RETRY_SECONDS)
        stopping.wait(ctx.settings.tracker_poll_seconds)
