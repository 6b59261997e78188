"""The RQ job that drives orders: PENDING -> ROUTING -> ROUTED -> SUBMITTED.

One job moves a batch of orders (those submitted together): their quotes
and swaps are asked for side by side, and each step of the batch is one
transaction and one publish, so the cost of a job, RQ's own included, is
shared. It never waits for the chain: once a swap is submitted the order is
the confirmation tracker's. Every step is a compare-and-set on the order, so
a job that runs twice, or late, or after a cancel, does nothing the order's
state does not allow; a swap sent again is recognised by the chain through
its attempt key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format

from executor.context import RPC_TIMEOUT_SECONDS, Context, context
from executor.inflight import Inflight, track
from executor.leases import order_leases
from executor.progress import advance_many, attempt_failed
from orderengine.amounts import format_amount
from orderengine.observability import handoffs
from orderengine.order_queue import enqueue_order, taken
from orderengine.statuses import Status
from orderengine.store.models import OrderRow
from orderengine.store.orders import Change, Transition
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2, market_pb2, quote_service_pb2

log = logging.getLogger(__name__)

# Answers that are about the order itself. Anything else (UNAVAILABLE, a
# deadline, CANCELLED or UNKNOWN from a peer stopping mid-call) is about the
# peer: both calls are safe to repeat (a quote changes nothing, a swap is
# deduplicated by its attempt key), so the same step runs again later.
FINAL = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE,
})


def drive_orders(order_ids: list[str]) -> None:
    """Moves each order as far as it goes without the chain, each on behalf
    of the request that submitted it (its request id, its trace)."""
    ctx = context()
    taken(ctx.redis, order_ids)
    with handoffs.order_work("drive order", order_ids, handoffs.carried_by_job()):
        _drive(ctx, order_ids)


def _drive(ctx: Context, order_ids: list[str]) -> None:
    with order_leases(ctx.redis, order_ids, ctx.settings.order_lease_seconds) as mine:
        # An order leased by another worker is being driven there.
        rows = ctx.store.get_many(mine)
        later: list[str] = []
        routed = _route(ctx, [r for r in rows.values()
                              if r.status in (Status.PENDING, Status.ROUTING)], later)
        routed += [r for r in rows.values() if r.status == Status.ROUTED]
        submitted = _submit(ctx, routed, later)
        # Also those a crash left between SUBMITTED and the tracker.
        submitted += [r for r in rows.values() if r.status == Status.SUBMITTED]
        tracked = [Inflight(r.order_id, r.attempt, r.signature) for r in submitted if r.signature]
        handoffs.remember(ctx.redis, [entry.order_id for entry in tracked])
        track(ctx.redis, tracked, due_in=ctx.settings.slot_seconds)
    for order_id in later:
        # A peer was down: the same step again after a pause.
        with handoffs.within_order(order_id):
            enqueue_order(ctx.queue, order_id,
                          delay_seconds=ctx.retry.backoff_seconds(ctx.retry.max_attempts))


def _ask_all(
    ctx: Context, rows: list[OrderRow], send: Callable[[OrderRow], grpc.Future],
    later: list[str], code: str, what: str,
) -> list[tuple[OrderRow, Any]]:
    """Sends one call per order at once and returns the orders answered. An
    order whose peer failed is put in ``later``; one the peer refused fails
    this attempt with ``code``."""
    futures = []
    for row in rows:
        with handoffs.within_order(row.order_id):  # the call is the order's
            futures.append((row, send(row)))
    answered: list[tuple[OrderRow, Any]] = []
    for row, future in futures:
        try:
            answered.append((row, future.result()))
        except grpc.RpcError as exc:
            if exc.code() in FINAL:
                with handoffs.within_order(row.order_id):  # so is its retry
                    attempt_failed(ctx, row, code, f"{what}: {exc.details()}")
            else:
                later.append(row.order_id)
    return answered


def _route(ctx: Context, rows: list[OrderRow], later: list[str]) -> list[OrderRow]:
    """Quotes the orders; PENDING ones also go through ROUTING, dated when
    routing began, in the same transaction as their ROUTED."""
    began = datetime.now(UTC)

    def ask(row: OrderRow) -> grpc.Future:
        return ctx.quotes.GetQuote.future(quote_service_pb2.GetQuoteRequest(
            input_token=row.input_token, output_token=row.output_token,
            amount=format_amount(row.amount_in, token(row.input_token).decimals),
            slippage_bps=row.slippage_bps), timeout=RPC_TIMEOUT_SECONDS)

    steps: list[Transition] = []
    for row, quote in _ask_all(ctx, rows, ask, later, "NO_ROUTE", "no route"):
        if row.status == Status.PENDING:
            steps.append(Transition(row.order_id, Status.ROUTING, Change(at=began), row.attempt))
        steps.append(Transition(row.order_id, Status.ROUTED,
                                Change(quotes=list(quote.quotes), route=quote.route),
                                row.attempt))
    moved = advance_many(ctx, steps, rows)
    return [row for step, row in zip(steps, moved, strict=True)
            if row is not None and step.target is Status.ROUTED]


def _submit(ctx: Context, rows: list[OrderRow], later: list[str]) -> list[OrderRow]:
    def send(row: OrderRow) -> grpc.Future:
        route = json_format.ParseDict(row.route or {}, market_pb2.Route())
        return ctx.chain.SubmitSwap.future(execution_service_pb2.SubmitSwapRequest(
            attempt_key=f"{row.order_id}:{row.attempt}", route=route),
            timeout=RPC_TIMEOUT_SECONDS)

    steps = [Transition(row.order_id, Status.SUBMITTED, Change(signature=sent.signature),
                        row.attempt)
             for row, sent in _ask_all(ctx, rows, send, later, "SWAP_REJECTED",
                                       "swap rejected")]
    return [row for row in advance_many(ctx, steps, rows) if row is not None]
