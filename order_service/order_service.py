"""The OrderService servicer: the public API.

Database and queue calls are blocking (one store for the services and the
workers), so they run on the thread pool; the event loop only waits."""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from redis import Redis
from sqlalchemy.exc import OperationalError

from order_service.histories import HistoryReads
from order_service.rate_limit import retry_hint
from order_service.submissions import QueueFull, QueueUnavailable, RateLimited, Submissions
from order_service.watch_hub import Inbox, Signal, TooManyStreams, WatchHub
from orderengine.errors import FieldError, abort, abort_invalid, status
from orderengine.mesh.auth import caller
from orderengine.mesh.channels import within_deadline
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.models import OrderRow
from orderengine.store.orders import Change, History, NewOrder, OrderStore, PageTokenError
from orderengine.store.wire import order_to_proto
from orderengine.swaps import parse_swap
from orderengine.transitions import move
from orderengine.v1 import (
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_CLIENT_ORDER_ID = 128
# Ours are ~100 characters; a longer one is not ours, and is not parsed.
MAX_PAGE_TOKEN = 512
QUOTE_TIMEOUT_SECONDS = 5.0


# A client told the queue is full waits about this long before trying again.
QUEUE_FULL_RETRY_SECONDS = 1.0


# ASCII hex, 8-4-4-4-12 or the 32 digits alone: uuid.UUID also takes whitespace,
# underscores and non-ASCII digits (it parses with int(..., 16)).
_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}")
# Control characters (NUL above all) have no place in an id, a log line or
# a PostgreSQL text column; nor format characters (bidirectional overrides,
# zero-width ones), which make one id look like another or reorder a line
# that shows it, nor line and paragraph separators, which break a log line.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _unprintable(value: str) -> str | None:
    """The first control, format or separator character, as U+XXXX."""
    for char in value:
        if unicodedata.category(char) in _UNPRINTABLE:
            return f"U+{ord(char):04X}"
    return None


def _order_id(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise FieldError("order_id", f"must be a UUID, got {value[:64]!r}")
    return str(uuid.UUID(value))


class OrderServicer(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(self, store: OrderStore, redis: Redis, submissions: Submissions,
                 hub: WatchHub, quotes: quote_service_pb2_grpc.QuoteServiceAsyncStub) -> None:
        self.store = store
        self.redis = redis
        self.submissions = submissions
        self.hub = hub
        self.histories = HistoryReads(store)
        self.quotes = quotes

    async def _blocking(self, context: grpc.aio.ServicerContext, fn: Callable[..., T],
                        *args: object) -> T:
        """Runs a store call on the thread pool."""
        return await self._store_call(context, asyncio.to_thread(fn, *args))

    async def _store_call(self, context: grpc.aio.ServicerContext,
                          call: Awaitable[T]) -> T:
        """A store that is down is UNAVAILABLE to the client, never a
        half-done request."""
        try:
            return await call
        except OperationalError as exc:
            log.warning("database unavailable: %s", exc.orig)
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        "the order database is unavailable; try again", "DATABASE_UNAVAILABLE")

    # -- SubmitOrder ----------------------------------------------------------

    async def SubmitOrder(
        self, request: order_service_pb2.SubmitOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.SubmitOrderResponse:
        try:
            swap = parse_swap(request.input_token, request.output_token, request.amount,
                              request.slippage_bps)
            if len(request.client_order_id) > MAX_CLIENT_ORDER_ID:
                raise FieldError("client_order_id",
                                 f"must be at most {MAX_CLIENT_ORDER_ID} characters")
            found = _unprintable(request.client_order_id)
            if found is not None:
                raise FieldError("client_order_id", "must not contain control or format "
                                 f"characters, found {found}")
        except FieldError as exc:
            await abort_invalid(context, exc)
        new = NewOrder(
            owner=caller(), input_token=swap.input_token, output_token=swap.output_token,
            amount_in=swap.amount_in, slippage_bps=swap.slippage_bps,
            client_order_id=request.client_order_id or None,
        )
        try:
            row, created = await self._store_call(context, self.submissions.submit(new))
        except QueueFull as full:
            most = self.submissions.max_queue_depth
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the order queue is full ({full.depth} orders waiting, at most "
                        f"{most}); nothing was stored, try again in "
                        f"{QUEUE_FULL_RETRY_SECONDS:g}s", "QUEUE_FULL",
                        metadata={"limit": "MAX_QUEUE_DEPTH", "max_queue_depth": str(most),
                                  "orders_waiting": str(full.depth)},
                        retry_after=QUEUE_FULL_RETRY_SECONDS)
        except RateLimited as limited:
            limit = limited.limit
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"SubmitOrder rate limit: {limit.rate:g} orders/s per owner, bursts of "
                        f"{limit.burst}; nothing was stored, try again in "
                        f"{retry_hint(limited.retry_after)}", "RATE_LIMITED",
                        metadata={"limit": "SUBMIT_RATE_PER_SECOND",
                                  "rate_per_second": f"{limit.rate:g}",
                                  "burst": str(limit.burst)},
                        retry_after=limited.retry_after)
        except QueueUnavailable:
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        "the order queue is unavailable; nothing was stored, try again",
                        "QUEUE_UNAVAILABLE")
        if not created and not new.same_as(row):
            # AIP-155: a request id names one request; reusing it for another
            # order is a client bug, not a resubmission.
            await context.abort_with_status(status(  # type: ignore[attr-defined]
                grpc.StatusCode.ALREADY_EXISTS,
                f"client_order_id: {request.client_order_id!r} was used for order "
                f"{row.order_id} with other parameters", "CLIENT_ORDER_ID_REUSED",
                field=FieldError("client_order_id", "was used for another order"),
                metadata={"order_id": row.order_id}))
        return order_service_pb2.SubmitOrderResponse(
            order=order_to_proto(row), already_exists=not created
        )

    # -- QuoteOrder -------------------------------------------------------------

    async def QuoteOrder(
        self, request: order_service_pb2.QuoteOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.QuoteOrderResponse:
        try:
            swap = parse_swap(request.input_token, request.output_token, request.amount,
                              request.slippage_bps)
        except FieldError as exc:
            await abort_invalid(context, exc)
        try:
            quote = await self.quotes.GetQuote(
                quote_service_pb2.GetQuoteRequest(
                    input_token=swap.input_token, output_token=swap.output_token,
                    amount=request.amount.strip(), slippage_bps=swap.slippage_bps),
                # Never past the caller's deadline: when it passes, this call
                # is cancelled with the handler and QuoteService stops too.
                timeout=within_deadline(context, QUOTE_TIMEOUT_SECONDS),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.FAILED_PRECONDITION):
                await abort(context, exc.code(), exc.details() or "", Reason.NO_ROUTE)
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        "quotes are unavailable right now; try again", "QUOTES_UNAVAILABLE")
        return order_service_pb2.QuoteOrderResponse(quotes=quote.quotes, route=quote.route)

    # -- GetOrder, ListOrders, CancelOrder -------------------------------------

    async def _owned(self, context: grpc.aio.ServicerContext, raw_id: str) -> OrderRow:
        try:
            order_id = _order_id(raw_id)
        except FieldError as exc:
            await abort_invalid(context, exc)
        # Another owner's order is exactly an order that does not exist: one
        # query either way, and the same answer.
        row = await self._blocking(context, self.store.get, order_id, caller())
        if row is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"order {order_id} not found",
                        "ORDER_NOT_FOUND")
        return row

    async def GetOrder(
        self, request: order_service_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return order_to_proto(await self._owned(context, request.order_id))

    async def ListOrders(
        self, request: order_service_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.ListOrdersResponse:
        if request.page_size < 0:
            await abort_invalid(context, FieldError("page_size", "must not be negative"))
        # AIP-132: 0 means the default; more than the maximum is coerced.
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        if len(request.page_token) > MAX_PAGE_TOKEN:
            await abort_invalid(context, FieldError(
                "page_token", "is not a token this service gave out"))
        try:
            rows, next_token = await self._blocking(
                context, self.store.list_page, caller(), size, request.page_token)
        except PageTokenError as exc:
            await abort_invalid(context, FieldError("page_token", str(exc).split(": ", 1)[-1]))
        return order_service_pb2.ListOrdersResponse(
            orders=[order_to_proto(r) for r in rows], next_page_token=next_token
        )

    async def CancelOrder(
        self, request: order_service_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        row = await self._owned(context, request.order_id)
        # The change, its figures and its publish, on the thread pool: all blocking.
        cancelled = await self._blocking(
            context, lambda: move(self.store, self.redis, row.order_id, Status.CANCELLED,
                                  Change(reason="cancelled by the owner", reason_code=Reason.CANCELLED),
                                  current=row))
        if cancelled is None:
            now = await self._blocking(context, self.store.get, row.order_id)
            status = now.status if now else row.status
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                        f"order {row.order_id} is {status}; only a PENDING order can be "
                        "cancelled", "ORDER_NOT_PENDING", metadata={"status": status})
        return order_to_proto(cancelled)

    # -- WatchOrder -----------------------------------------------------------

    async def WatchOrder(  # type: ignore[override]  # it writes; the stubs know only yielding
        self, request: order_service_pb2.WatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> None:
        # One coroutine, and no more state than this, for each of thousands
        # of idle streams: the history is read by HistoryReads, many at a
        # time. It writes rather than yields, so that neither it nor the
        # interceptors' wrappers hold an async generator for each stream.
        if request.after_sequence < 0:
            await abort_invalid(context, FieldError("after_sequence", "must not be negative"))
        try:
            order_id = _order_id(request.order_id)
        except FieldError as exc:
            await abort_invalid(context, exc)
        owner = caller()
        last = request.after_sequence
        # Register first, then read the history: an event committed between
        # the two arrives live, and duplicates are dropped by sequence. An
        # owner at the cap may still read a finished order's history.
        try:
            inbox: Inbox | None = self.hub.open(order_id, owner)
        except TooManyStreams as exc:
            inbox, full = None, exc
        try:
            history = await self._history(context, order_id, owner, last)
            if inbox is None and not history.terminal:
                await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"at most {full.limit} WatchOrder streams per owner may be open "
                            "on this server at once; end one first", "TOO_MANY_STREAMS",
                            metadata={"limit": "WATCH_STREAMS_PER_OWNER",
                                      "streams": str(full.limit)})
            item: order_pb2.OrderEvent | Signal | None
            while True:
                for item in history.events:
                    if item.sequence > last:
                        await context.write(item)
                        last = item.sequence
                        if Status.from_proto(item.status).terminal:
                            return
                if history.terminal or inbox is None:
                    return  # nothing more will come
                # A client may resume past the order's end (after_sequence
                # beyond its last event): the hub checks the database's last
                # sequence against what this stream has seen, not against that.
                inbox.sent = min(last, history.last_sequence)
                del history
                # Live events in sequence, until one is missing or the hub
                # says to resync; then the database has what was missed.
                while True:
                    item = None  # idle, a stream holds no event: its inbox and position
                    await inbox.ready()
                    if (item := inbox.take()) is None:
                        break
                    if item is Signal.SHUTDOWN:
                        await abort(context, grpc.StatusCode.UNAVAILABLE,
                                    "the server is shutting down; watch again with "
                                    f"after_sequence {last}", "SERVER_SHUTTING_DOWN",
                                    metadata={"after_sequence": str(last)})
                    if item is Signal.RESYNC:
                        break
                    assert isinstance(item, order_pb2.OrderEvent)
                    if item.sequence <= last:
                        # Already sent from the history, or the client asked
                        # past it; but the order's end still ends the stream.
                        if Status.from_proto(item.status).terminal:
                            return
                        if item.sequence == inbox.sent + 1:
                            inbox.sent = item.sequence
                        continue
                    if item.sequence > last + 1:
                        break  # missed one
                    await context.write(item)
                    last = inbox.sent = item.sequence
                    if Status.from_proto(item.status).terminal:
                        return
                inbox.sent = None  # reading the database: nothing for the hub to check
                history = await self._history(context, order_id, owner, last)
        finally:
            if inbox is not None:
                self.hub.release(inbox)

    async def _history(self, context: grpc.aio.ServicerContext, order_id: str, owner: str,
                       after: int) -> History:
        """The caller's order's history after ``after``, or NOT_FOUND."""
        history = await self._store_call(context, self.histories.read(order_id, after))
        # Another owner's order is exactly an order that does not exist.
        if history is None or history.owner != owner:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"order {order_id} not found",
                        "ORDER_NOT_FOUND")
        return history
