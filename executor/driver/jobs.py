"""The RQ job that drives orders: PENDING -> ROUTING -> ROUTED -> SUBMITTED.

One job moves a batch of orders (those submitted together): their quotes
are asked for in one BatchGetQuotes call and their swaps sent in one
BatchSubmitSwaps, and each step of the batch is one transaction and one
publish, so the cost of a job, RQ's own and gRPC's included, is shared. It
never waits for the chain: once a swap is submitted the order is the
confirmation tracker's. Every step is a compare-and-set on the order, so
a job that runs twice, or late, or after a cancel, does nothing the order's
state does not allow; a swap sent again is recognised by the chain through
its attempt key."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from redis.client import Pipeline
from rq import get_current_job

from executor.driver.context import RPC_TIMEOUT_SECONDS, Context, context
from executor.driver.inflight import Inflight, track
from executor.driver.leases import order_leases
from executor.driver.limits import hold_to_limit, limit_short
from executor.driver.progress import attempt_failed
from orderengine.amounts import format_amount
from orderengine.fees import format_sol
from orderengine.market.routes import AmountOverflowError, ZeroAmountOutError
from orderengine.observability import handoffs
from orderengine.observability.metrics_orders import DRIVE_ORDERS
from orderengine.order_queue import (
    AT_ONCE,
    ORDERS_PER_DRIVE,
    enqueue_order,
    picked_up_by_worker,
    take_queued,
)
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change, Transition
from orderengine.store.models import StoredOrder
from orderengine.tokens import token
from orderengine.transitions import move_many
from orderengine.v1 import execution_service_pb2, market_pb2, quote_service_pb2

log = logging.getLogger(__name__)

# A job of this many orders is batch enough: it never waits for more.
LINGER_BELOW = ORDERS_PER_DRIVE // 4

# Answers that are about the order itself. Anything else (UNAVAILABLE, a
# deadline, CANCELLED or UNKNOWN from a peer stopping mid-call) is about the
# peer: both calls are safe to repeat (a quote changes nothing, a swap is
# deduplicated by its attempt key), so the same step runs again later. The
# same holds for one order's item of a batch call.
FINAL = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def drive_orders(order_ids: list[str]) -> None:
    """Moves each order as far as it goes without the chain, each on behalf
    of the request that submitted it (its request id, its trace); with them
    the orders of jobs queued behind this one, as many as one batch takes."""
    ctx = context()
    carried = handoffs.carried_by_job()
    job = get_current_job()
    at_once = job is not None and bool(job.meta.get(AT_ONCE))
    linger = 0.0 if at_once else ctx.settings.drive_linger_seconds
    more, more_carried = _queued_behind(ctx, len(order_ids), linger)
    if more:
        order_ids = list(dict.fromkeys([*order_ids, *more]))
        carried = {**more_carried, **carried}
    DRIVE_ORDERS.observe(len(order_ids))
    with handoffs.order_work("drive order", order_ids, carried):
        _drive(ctx, order_ids)


def _queued_behind(
    ctx: Context, taken: int, linger: float
) -> tuple[list[str], dict[str, handoffs.Carrier]]:
    """The orders of jobs queued behind this one, and what they carry. A
    small job with none behind it waits ``linger`` for more first:
    one order at a time costs the stack about five times the CPU an order
    of a batch does (RQ's job, two calls, the commits, the chain's
    landing), and a twentieth of a second is an eighth of a slot."""
    room = ORDERS_PER_DRIVE - taken
    behind = take_queued(ctx.queue, room)
    if behind[0] or linger <= 0 or taken >= LINGER_BELOW:
        return behind
    time.sleep(linger)
    return take_queued(ctx.queue, room)


def _drive(ctx: Context, order_ids: list[str]) -> None:
    with order_leases(
        ctx.redis,
        order_ids,
        ctx.settings.order_lease_seconds,
        also=lambda pipe: picked_up_by_worker(pipe, order_ids),
    ) as mine:
        # An order leased by another worker is being driven there.
        rows = ctx.store.get_many(mine)
        later: list[str] = []
        routed = _route(
            ctx, [r for r in rows.values() if r.status in (Status.PENDING, Status.ROUTING)], later
        )
        routed += [r for r in rows.values() if r.status == Status.ROUTED]
        # SUBMITTED's events go out in the round trip that hands the swaps
        # to the tracker.
        with ctx.redis.pipeline(transaction=False) as pipe:
            submitted = _submit(ctx, routed, later, pipe)
            # Also those a crash left between SUBMITTED and the tracker.
            submitted += [r for r in rows.values() if r.status == Status.SUBMITTED]
            tracked = [
                Inflight(r.order_id, r.attempt, r.signature) for r in submitted if r.signature
            ]
            handoffs.keep_for_tracker(ctx.redis, [entry.order_id for entry in tracked])
            track(pipe, tracked, due_in=ctx.settings.slot_seconds)
            pipe.execute()
    for order_id in later:
        # A peer was down: the same step again after a pause.
        with handoffs.within_order(order_id):
            enqueue_order(
                ctx.queue, order_id, delay_seconds=ctx.retry.backoff_seconds(ctx.retry.max_attempts)
            )


# google.rpc.Code values (an ItemError's code) as grpc's codes.
_CODES = {code.value[0]: code for code in grpc.StatusCode}


# Codes of the programs' own refusals, which an item's error carries through
# the quote: the order fails with that reason rather than the step's. So
# does the router's refusal of a route whose price impact is above the most
# allowed (the market moved against the order since it was submitted).
_PROGRAM_CODES = frozenset(
    {AmountOverflowError.code, ZeroAmountOutError.code, Reason.PRICE_IMPACT_TOO_HIGH}
)


def _ask_batch(
    ctx: Context,
    rows: list[StoredOrder],
    item: Callable[[StoredOrder], Any],
    send: Callable[[list[Any]], Any],
    name: str,
    later: list[str],
    code: Reason,
    what: str,
) -> list[tuple[StoredOrder, Any]]:
    """Asks for every order in one batch call and returns the orders
    answered, with their answers. An order whose ``item`` (its request)
    cannot be built fails with ORDER_INVALID, alone. When the call fails
    (see FINAL) every order is put in ``later``; an order the peer refused
    (its item's error has a code in FINAL) fails this attempt with ``code``
    (or the program's own code); one whose item failed otherwise (a lost
    answer: RPC_TIMEOUT) is put in ``later``."""
    items: list[Any] = []
    built: list[StoredOrder] = []
    for row in rows:
        try:
            items.append(item(row))
        except Exception as exc:  # this order's fault: the others still go
            log.warning("%s: order %s cannot be sent: %s", name, row.order_id, exc)
            # A request that cannot even be built (a token this engine no
            # longer knows, a stored route that does not parse): no attempt
            # can send it.
            with handoffs.within_order(row.order_id):
                attempt_failed(
                    ctx, row, Reason.ORDER_INVALID, f"{what}: the order cannot be sent: {exc}"
                )
            continue
        built.append(row)
    rows = built
    if not rows:
        return []
    try:
        with handoffs.within_orders(name, [row.order_id for row in rows]):  # the call is theirs
            results = list(send(items).results)
    except grpc.RpcError:
        later.extend(row.order_id for row in rows)
        return []
    if len(results) != len(rows):  # no answer to this call: ask again later
        log.warning("%s: %d answers to %d orders", name, len(results), len(rows))
        later.extend(row.order_id for row in rows)
        return []
    answered: list[tuple[StoredOrder, Any]] = []
    for row, result in zip(rows, results, strict=True):
        kind = result.WhichOneof("result")
        if kind == "response":
            answered.append((row, result.response))
        elif kind == "error" and _CODES.get(result.error.code) in FINAL:
            own = Reason(result.error.reason) if result.error.reason in _PROGRAM_CODES else code
            with handoffs.within_order(row.order_id):  # its retry is the order's
                attempt_failed(ctx, row, own, f"{what}: {result.error.message}")
        else:
            later.append(row.order_id)
    return answered


def _route(ctx: Context, rows: list[StoredOrder], later: list[str]) -> list[StoredOrder]:
    """Quotes the orders; PENDING ones also go through ROUTING, dated when
    routing began, in the same transaction as their ROUTED."""
    began = datetime.now(UTC)

    def item(row: StoredOrder) -> quote_service_pb2.GetQuoteRequest:
        return quote_service_pb2.GetQuoteRequest(
            input_token=row.input_token,
            output_token=row.output_token,
            amount=format_amount(row.amount_in, token(row.input_token).decimals),
            slippage_bps=row.slippage_bps,
        )

    def ask(
        batch: list[quote_service_pb2.GetQuoteRequest],
    ) -> quote_service_pb2.BatchGetQuotesResponse:
        return ctx.quotes.BatchGetQuotes(
            quote_service_pb2.BatchGetQuotesRequest(requests=batch), timeout=RPC_TIMEOUT_SECONDS
        )

    steps: list[Transition] = []
    for row, quote in _ask_batch(
        ctx, rows, item, ask, "quote orders", later, Reason.NO_ROUTE, "no route"
    ):
        if row.min_amount_out is not None:
            short = limit_short(row, quote.route)
            if short:  # the price moved back since the trigger: wait again
                steps.append(
                    Transition(
                        row.order_id,
                        Status.OPEN,
                        Change(reason=short, reason_code=Reason.LIMIT_NOT_MET, next_attempt=True),
                        row.attempt,
                    )
                )
                continue
            hold_to_limit(row, quote.route)
        if row.status == Status.PENDING:
            steps.append(Transition(row.order_id, Status.ROUTING, Change(at=began), row.attempt))
        steps.append(
            Transition(
                row.order_id,
                Status.ROUTED,
                Change(quotes=list(quote.quotes), route=quote.route),
                row.attempt,
            )
        )
    failed: list[Transition] = []
    moved = move_many(ctx.store, ctx.redis, steps, rows, failed=failed)
    later.extend(dict.fromkeys(step.order_id for step in failed))  # the same step again
    return [
        row
        for step, row in zip(steps, moved, strict=True)
        if row is not None and step.target is Status.ROUTED
    ]


def _submit(
    ctx: Context, rows: list[StoredOrder], later: list[str], pipeline: Pipeline
) -> list[StoredOrder]:
    def item(row: StoredOrder) -> execution_service_pb2.SubmitSwapRequest:
        return execution_service_pb2.SubmitSwapRequest(
            attempt_key=f"{row.order_id}:{row.attempt}",
            route=row.route if row.route is not None else market_pb2.Route(),
            # The order's owner signs and pays, from their wallet.
            owner=row.owner,
            priority_fee=format_sol(row.priority_fee) if row.priority_fee else "",
        )

    def send(
        batch: list[execution_service_pb2.SubmitSwapRequest],
    ) -> execution_service_pb2.BatchSubmitSwapsResponse:
        return ctx.chain.BatchSubmitSwaps(
            execution_service_pb2.BatchSubmitSwapsRequest(requests=batch),
            timeout=RPC_TIMEOUT_SECONDS,
        )

    steps = [
        Transition(row.order_id, Status.SUBMITTED, Change(signature=sent.signature), row.attempt)
        for row, sent in _ask_batch(
            ctx, rows, item, send, "submit swaps", later, Reason.SWAP_REJECTED, "swap rejected"
        )
    ]
    failed: list[Transition] = []
    moved = move_many(ctx.store, pipeline, steps, rows, failed=failed)
    later.extend(step.order_id for step in failed)  # the chain dedupes the swap sent again
    return [row for row in moved if row is not None]
