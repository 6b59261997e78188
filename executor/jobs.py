"""The RQ job that drives an order: PENDING -> ROUTING -> ROUTED -> SUBMITTED.

It never waits for the chain: once the swap is submitted the order is
handed to the confirmation tracker. Every step is a compare-and-set on the
order, so a job that runs twice, or late, or after a cancel, does nothing
the order's state does not allow; a re-submitted swap is recognised by the
chain through its attempt key."""

from __future__ import annotations

import logging

import grpc
from google.protobuf import json_format

from executor.context import RPC_TIMEOUT_SECONDS, Context, context
from executor.inflight import Inflight, track
from executor.leases import order_lease
from executor.progress import advance, attempt_failed
from orderengine.amounts import format_amount
from orderengine.order_queue import enqueue_order, taken
from orderengine.statuses import Status
from orderengine.store.models import OrderRow
from orderengine.store.orders import Change
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2, market_pb2, quote_service_pb2

log = logging.getLogger(__name__)

# A peer that is down or slow: try the same step again later.
TRANSIENT = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
})


def drive_order(order_id: str) -> str:
    """Moves the order as far as it goes without the chain; returns its status."""
    ctx = context()
    taken(ctx.redis, order_id)
    with order_lease(ctx.redis, order_id, ctx.settings.order_lease_seconds) as mine:
        if not mine:
            return "driven by another worker"
        return _drive_leased(ctx, order_id)


def _drive_leased(ctx: Context, order_id: str) -> str:
    row = ctx.store.get(order_id)
    if row is None:
        return "unknown"
    try:
        row = _drive(ctx, row)
    except grpc.RpcError as exc:
        if exc.code() not in TRANSIENT:
            raise
        # Same step again after a pause; the order's state says where it was.
        delay = ctx.retry.backoff_seconds(ctx.retry.max_attempts)
        log.warning("order %s: %s, again in %.1fs", order_id, exc.details(), delay)
        enqueue_order(ctx.queue, order_id, delay_seconds=delay)
    return row.status if row else "moved on"


def _drive(ctx: Context, row: OrderRow | None) -> OrderRow | None:
    if row is not None and row.status == Status.PENDING:
        row = advance(ctx, row.order_id, Status.ROUTING, attempt=row.attempt)
    if row is not None and row.status == Status.ROUTING:
        row = _route(ctx, row)
    if row is not None and row.status == Status.ROUTED:
        row = _submit(ctx, row)
    if row is not None and row.status == Status.SUBMITTED and row.signature:
        # Also when a crash came between SUBMITTED and tracking it.
        track(ctx.redis, Inflight(row.order_id, row.attempt, row.signature),
              due_in=ctx.settings.slot_seconds)
    return row


def _route(ctx: Context, row: OrderRow) -> OrderRow | None:
    request = quote_service_pb2.GetQuoteRequest(
        input_token=row.input_token, output_token=row.output_token,
        amount=format_amount(row.amount_in, token(row.input_token).decimals),
        slippage_bps=row.slippage_bps,
    )
    try:
        quote = ctx.quotes.GetQuote(request, timeout=RPC_TIMEOUT_SECONDS)
    except grpc.RpcError as exc:
        if exc.code() in TRANSIENT:
            raise
        attempt_failed(ctx, row, "NO_ROUTE", f"no route: {exc.details()}")
        return None
    return advance(ctx, row.order_id, Status.ROUTED,
                   Change(quotes=list(quote.quotes), route=quote.route), attempt=row.attempt)


def _submit(ctx: Context, row: OrderRow) -> OrderRow | None:
    route = json_format.ParseDict(row.route or {}, market_pb2.Route())
    request = execution_service_pb2.SubmitSwapRequest(
        attempt_key=f"{row.order_id}:{row.attempt}", route=route)
    try:
        submitted = ctx.chain.SubmitSwap(request, timeout=RPC_TIMEOUT_SECONDS)
    except grpc.RpcError as exc:
        if exc.code() in TRANSIENT:
            raise
        attempt_failed(ctx, row, "SWAP_REJECTED", f"swap rejected: {exc.details()}")
        return None
    return advance(ctx, row.order_id, Status.SUBMITTED,
                   Change(signature=submitted.signature), attempt=row.attempt)
