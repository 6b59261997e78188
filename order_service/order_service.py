"""The OrderService servicer: the public API.

Database and queue calls are blocking (one store for the services and the
workers), so they run on the thread pool; the event loop only waits.

Long on purpose: one method per RPC of the public contract, each with its
own validation and error mapping, read together as the contract's behaviour."""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import NoReturn, TypeVar, cast

import grpc
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from order_service.price_impact import PriceImpactCheck, TooMuchImpact, refusal_of_call
from order_service.rate_limit import retry_hint
from order_service.submissions import (
    MAX_BATCH,
    Precluded,
    QueueFull,
    QueueUnavailable,
    RateLimited,
    Submissions,
    Written,
)
from order_service.wallets import (
    WALLETS_UNAVAILABLE,
    InsufficientFunds,
    Wallets,
    WalletsUnavailable,
)
from order_service.watch_hub import OrderNotFound, ShuttingDown, TooManyStreams, WatchHub
from orderengine.errors import FieldError, ItemFailure, abort, abort_as, abort_invalid
from orderengine.fees import parse_priority_fee
from orderengine.market.prices import format_price, read_prices
from orderengine.mesh.auth import caller
from orderengine.mesh.batches import answer_all, answer_one
from orderengine.mesh.channels import ITEM_REQUEST_IDS, within_deadline
from orderengine.observability import handoffs
from orderengine.observability.call_details import metadata_value
from orderengine.observability.metrics_orders import submits_refused
from orderengine.observability.request_ids import HEADER, WELL_FORMED
from orderengine.order_types import terms_of
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change, NewOrder
from orderengine.store.models import StoredOrder
from orderengine.store.orders import MAX_PAGE_TOKEN_CHARS, OrderStore, PageTokenError
from orderengine.store.wire import order_to_proto
from orderengine.swaps import amount_field, parse_swap, swap_of, token_field
from orderengine.transitions import move
from orderengine.v1 import (
    execution_service_pb2,
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)
from orderengine.wallets import balances_to_proto

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_CLIENT_ORDER_ID = 128
QUOTE_TIMEOUT_SECONDS = 5.0
AIRDROP_TIMEOUT_SECONDS = 5.0


# A client told the queue is full waits about this long before trying again.
QUEUE_FULL_RETRY_SECONDS = 1.0
# Orders in one BatchSubmitOrders: a Submissions batch's worth.
MAX_ORDERS_PER_CALL = MAX_BATCH

SubmitAnswer = order_service_pb2.SubmitOrderResponse | ItemFailure
QUEUE_UNAVAILABLE = ItemFailure(
    grpc.StatusCode.UNAVAILABLE,
    "the order queue is unavailable; nothing was stored, try again",
    "QUEUE_UNAVAILABLE",
)
DATABASE_UNAVAILABLE = ItemFailure(
    grpc.StatusCode.UNAVAILABLE,
    "the order database is unavailable; try again",
    "DATABASE_UNAVAILABLE",
)


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


def _new_order(request: order_service_pb2.SubmitOrderRequest, owner: str) -> NewOrder:
    """The order a request asks for; FieldError when it is not one."""
    swap = (
        parse_swap(
            request.input_token,
            request.output_token,
            request.amount,
            request.slippage_bps,
            output_launched_later=True,
        )
        if request.WhichOneof("order_type") == "sniper"
        else swap_of(request)
    )
    terms = terms_of(request, swap, datetime.now(UTC))
    if len(request.client_order_id) > MAX_CLIENT_ORDER_ID:
        raise FieldError("client_order_id", f"must be at most {MAX_CLIENT_ORDER_ID} characters")
    _printable("client_order_id", request.client_order_id)
    return NewOrder(
        owner=owner,
        input_token=swap.input_token,
        output_token=swap.output_token,
        amount_in=swap.amount_in,
        slippage_bps=swap.slippage_bps,
        client_order_id=request.client_order_id or None,
        priority_fee=parse_priority_fee(request.priority_fee),
        terms=terms,
    )


def _printable(field: str, value: str) -> None:
    """FieldError when ``value`` holds a control, format or separator character."""
    found = _unprintable(value)
    if found is not None:
        raise FieldError(field, f"must not contain control or format characters, found {found}")


def _item_request_ids(header: str | None, count: int) -> list[str | None]:
    """Each item's request id from ITEM_REQUEST_IDS (one per item, comma
    separated): a well-formed one, else None (the call's). Any other count
    is none at all."""
    ids = header.split(",") if header else []
    if len(ids) != count:
        return []
    return [value if value and WELL_FORMED.fullmatch(value) else None for value in ids]


def _order_id(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise FieldError("order_id", f"must be a UUID, got {value[:64]!r}")
    return str(uuid.UUID(value))


class OrderServicer(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        store: OrderStore,
        redis: Redis,
        submissions: Submissions,
        hub: WatchHub,
        quotes: quote_service_pb2_grpc.QuoteServiceAsyncStub,
        wallets: Wallets,
        market: AsyncRedis | None = None,
        check_price_impact: bool = True,
    ) -> None:
        self.store = store
        self.redis = redis
        self.submissions = submissions
        self.hub = hub
        self.quotes = quotes
        self.wallets = wallets
        # The chain's Redis, where the pools are: QuoteOrder's pair price.
        self.market = market
        # SubmitOrder asks QuoteService for each order's price impact (None: not).
        self.price_impact = PriceImpactCheck(quotes) if check_price_impact else None

    async def _blocking(
        self, context: grpc.aio.ServicerContext, fn: Callable[..., T], *args: object
    ) -> T:
        """Runs a store call on the thread pool."""
        return await self._store_call(context, asyncio.to_thread(fn, *args))

    async def _store_call(self, context: grpc.aio.ServicerContext, call: Awaitable[T]) -> T:
        """A store that is down is UNAVAILABLE to the client, never a
        half-done request."""
        try:
            return await call
        except OperationalError as exc:
            await self._database_unavailable(context, exc)

    async def _database_unavailable(
        self, context: grpc.aio.ServicerContext, exc: OperationalError
    ) -> NoReturn:
        log.warning("database unavailable: %s", exc.orig)
        await abort(
            context,
            grpc.StatusCode.UNAVAILABLE,
            "the order database is unavailable; try again",
            "DATABASE_UNAVAILABLE",
        )

    # -- SubmitOrder, BatchSubmitOrders ----------------------------------------

    async def SubmitOrder(
        self, request: order_service_pb2.SubmitOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.SubmitOrderResponse:
        return await answer_one(self.submit_all, request, context)

    async def BatchSubmitOrders(
        self,
        request: order_service_pb2.BatchSubmitOrdersRequest,
        context: grpc.aio.ServicerContext,
    ) -> order_service_pb2.BatchSubmitOrdersResponse:
        item_ids = metadata_value(context.invocation_metadata(), ITEM_REQUEST_IDS)
        return await answer_all(
            lambda requests: self.submit_all(requests, _item_request_ids(item_ids, len(requests))),
            request.requests,
            MAX_ORDERS_PER_CALL,
            order_service_pb2.BatchSubmitOrdersResponse,
            context,
        )

    async def submit_all(
        self,
        requests: Sequence[order_service_pb2.SubmitOrderRequest],
        request_ids: Sequence[str | None] = (),
    ) -> list[SubmitAnswer]:
        """Each request's order, or why it has none, in order, all as the
        caller: the orders share the Submissions batches. ``request_ids``:
        each item's own request id for its job to carry (none: the call's)."""
        owner = caller()
        answers: list[SubmitAnswer | None] = []
        news: list[NewOrder] = []
        carried: list[handoffs.Carrier] = []
        call_carrier = handoffs.capture()
        for index, request in enumerate(requests):
            try:
                news.append(_new_order(request, owner))
            except FieldError as exc:
                answers.append(ItemFailure.invalid(exc))
                continue
            item_id = request_ids[index] if index < len(request_ids) else None
            carried.append(call_carrier if item_id is None else {**call_carrier, HEADER: item_id})
            answers.append(None)
        # Every order of a call is the caller's: one read of one wallet, and
        # an order it cannot pay for is refused before anything is stored.
        precluded: list[Precluded | None] = (
            list(await self.wallets.refusals(owner, news)) if news else []
        )
        if news and self.price_impact is not None:
            # Then QuoteService's word on the price impact of those it can.
            payable = [j for j, refusal in enumerate(precluded) if refusal is None]
            refused = await self.price_impact.refusals([news[j] for j in payable])
            for k, failure in refused.items():
                precluded[payable[k]] = TooMuchImpact(failure)
        outcomes = await self.submissions.submit_many(news, carried, precluded) if news else []
        places = (index for index, answer in enumerate(answers) if answer is None)
        for index, new, outcome in zip(places, news, outcomes, strict=True):
            answers[index] = self._answer(requests[index], new, outcome)
        submits_refused(a.reason for a in answers if isinstance(a, ItemFailure))
        return cast(list[SubmitAnswer], answers)  # every place filled

    def _answer(
        self,
        request: order_service_pb2.SubmitOrderRequest,
        new: NewOrder,
        outcome: Written | BaseException,
    ) -> SubmitAnswer:
        """What SubmitOrder answers for one order, given what Submissions made of it."""
        if isinstance(outcome, QueueFull):
            most = self.submissions.max_queue_depth
            return ItemFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the order queue is full ({outcome.depth} orders waiting, at most "
                f"{most}); nothing was stored, try again in "
                f"{QUEUE_FULL_RETRY_SECONDS:g}s",
                "QUEUE_FULL",
                metadata={
                    "limit": "MAX_QUEUE_DEPTH",
                    "max_queue_depth": str(most),
                    "orders_waiting": str(outcome.depth),
                },
                retry_after=QUEUE_FULL_RETRY_SECONDS,
            )
        if isinstance(outcome, RateLimited):
            limit = outcome.limit
            return ItemFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"SubmitOrder rate limit: {limit.rate:g} orders/s per owner, bursts of "
                f"{limit.burst}; nothing was stored, try again in "
                f"{retry_hint(outcome.retry_after)}",
                "RATE_LIMITED",
                metadata={
                    "limit": "SUBMIT_RATE_PER_SECOND",
                    "rate_per_second": f"{limit.rate:g}",
                    "burst": str(limit.burst),
                },
                retry_after=outcome.retry_after,
            )
        if isinstance(outcome, InsufficientFunds | TooMuchImpact):
            return outcome.failure
        if isinstance(outcome, WalletsUnavailable):
            return WALLETS_UNAVAILABLE
        if isinstance(outcome, QueueUnavailable):
            return QUEUE_UNAVAILABLE
        if isinstance(outcome, OperationalError):
            log.warning("database unavailable: %s", outcome.orig)
            return DATABASE_UNAVAILABLE
        if isinstance(outcome, BaseException):
            raise outcome  # a fault of ours: the call fails, as a unary one would
        row, created = outcome
        if not created and not new.same_as(row):
            # AIP-155: a request id names one request; reusing it for another
            # order is a client bug, not a resubmission.
            return ItemFailure(
                grpc.StatusCode.ALREADY_EXISTS,
                f"client_order_id: {request.client_order_id!r} was used for order "
                f"{row.order_id} with other parameters",
                "CLIENT_ORDER_ID_REUSED",
                field=FieldError("client_order_id", "was used for another order"),
                metadata={"order_id": row.order_id},
            )
        return order_service_pb2.SubmitOrderResponse(
            order=order_to_proto(row), already_exists=not created
        )

    # -- QuoteOrder -------------------------------------------------------------

    async def QuoteOrder(
        self, request: order_service_pb2.QuoteOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.QuoteOrderResponse:
        try:
            swap = swap_of(request)
        except FieldError as exc:
            await abort_invalid(context, exc)
        try:
            quote = await self.quotes.GetQuote(
                quote_service_pb2.GetQuoteRequest(
                    input_token=swap.input_token,
                    output_token=swap.output_token,
                    amount=request.amount.strip(),
                    slippage_bps=swap.slippage_bps,
                ),
                # Never past the caller's deadline: when it passes, this call
                # is cancelled with the handler and QuoteService stops too.
                timeout=within_deadline(context, QUOTE_TIMEOUT_SECONDS),
            )
        except grpc.aio.AioRpcError as exc:
            too_costly = refusal_of_call(exc)
            if too_costly is not None:
                await too_costly.abort(context)
            if exc.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
            ):
                await abort(context, exc.code(), exc.details() or "", Reason.NO_ROUTE)
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "quotes are unavailable right now; try again",
                "QUOTES_UNAVAILABLE",
            )
        return order_service_pb2.QuoteOrderResponse(
            quotes=quote.quotes,
            route=quote.route,
            price=await self._pair_price(swap.input_token, swap.output_token),
        )

    async def _pair_price(self, input_token: str, output_token: str) -> str:
        """The pair's price now (docs/market.md); empty when the pools cannot
        be read: the quote is still worth answering."""
        if self.market is None:
            return ""
        try:
            price = (await read_prices(self.market, [(input_token, output_token)]))[
                (input_token, output_token)
            ]
        except RedisError as exc:
            log.warning("pair price unavailable: %s", exc)
            return ""
        return format_price(price) if price is not None else ""

    # -- GetBalances, RequestAirdrop ---------------------------------------------

    async def GetBalances(
        self, request: order_service_pb2.GetBalancesRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.GetBalancesResponse:
        try:
            symbols = [token_field("tokens", symbol).symbol for symbol in request.tokens]
        except FieldError as exc:
            await abort_invalid(context, exc)
        try:
            held = await self.wallets.holdings(caller())
        except WalletsUnavailable:
            await WALLETS_UNAVAILABLE.abort(context)
        return order_service_pb2.GetBalancesResponse(
            balances=balances_to_proto(held, *([symbols] if symbols else []))
        )

    async def RequestAirdrop(
        self, request: order_service_pb2.RequestAirdropRequest, context: grpc.aio.ServicerContext
    ) -> order_service_pb2.RequestAirdropResponse:
        owner = caller()
        try:
            found = token_field("token", request.token)
            amount_field("amount", request.amount, found)
            if len(request.request_id) > MAX_CLIENT_ORDER_ID:
                raise FieldError("request_id", f"must be at most {MAX_CLIENT_ORDER_ID} characters")
            _printable("request_id", request.request_id)
        except FieldError as exc:
            await abort_invalid(context, exc)
        # The chain gives each request id once: the caller's, scoped to the
        # caller, or one of our own (then every call is an airdrop of its own).
        request_id = f"{owner}:{request.request_id or uuid.uuid4()}"
        try:
            given = await self.wallets.chain.FundWallet(
                execution_service_pb2.FundWalletRequest(
                    owner=owner,
                    token=found.symbol,
                    amount=request.amount.strip(),
                    request_id=request_id,
                ),
                timeout=within_deadline(context, AIRDROP_TIMEOUT_SECONDS),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ):
                await abort_as(context, exc)  # the faucet's own answer, details and all
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the faucet is unavailable; try again"
                + (" with the same request_id" if request.request_id else ""),
                "WALLETS_UNAVAILABLE",
            )
        return order_service_pb2.RequestAirdropResponse(
            balance=given.balance, duplicate=given.duplicate
        )

    # -- GetOrder, ListOrders, CancelOrder -------------------------------------

    async def _owned(self, context: grpc.aio.ServicerContext, raw_id: str) -> StoredOrder:
        try:
            order_id = _order_id(raw_id)
        except FieldError as exc:
            await abort_invalid(context, exc)
        # Another owner's order is exactly an order that does not exist: one
        # query either way, and the same answer.
        row = await self._blocking(context, self.store.get, order_id, caller())
        if row is None:
            await abort(
                context, grpc.StatusCode.NOT_FOUND, f"order {order_id} not found", "ORDER_NOT_FOUND"
            )
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
        if len(request.page_token) > MAX_PAGE_TOKEN_CHARS:
            await abort_invalid(
                context, FieldError("page_token", "is not a token this service gave out")
            )
        try:
            rows, next_token = await self._blocking(
                context, self.store.list_page, caller(), size, request.page_token
            )
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
            context,
            lambda: move(
                self.store,
                self.redis,
                row.order_id,
                Status.CANCELLED,
                Change(reason="cancelled by the owner", reason_code=Reason.CANCELLED),
                current=row,
            ),
        )
        if cancelled is None:
            now = await self._blocking(context, self.store.get, row.order_id)
            status = now.status if now else row.status
            await abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"order {row.order_id} is {status}; only a PENDING or OPEN order can be cancelled",
                "ORDER_NOT_PENDING",
                metadata={"status": status},
            )
        return order_to_proto(cancelled)

    # -- WatchOrder -----------------------------------------------------------

    async def WatchOrder(  # type: ignore[override]  # it writes; the stubs know only yielding
        self, request: order_service_pb2.WatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> None:
        # The watch itself (history, live events, gaps, resyncs) is the
        # hub's. This writes rather than yields, so that the interceptors'
        # wrappers hold no async generator for each of thousands of streams.
        if request.after_sequence < 0:
            await abort_invalid(context, FieldError("after_sequence", "must not be negative"))
        try:
            order_id = _order_id(request.order_id)
        except FieldError as exc:
            await abort_invalid(context, exc)
        events = self.hub.follow(order_id, caller(), request.after_sequence)
        try:
            async for event in events:
                await context.write(event)
                del event  # idle, a stream holds no event
        except TooManyStreams as full:
            await abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"at most {full.limit} WatchOrder streams per owner may be open "
                "on this server at once; end one first",
                "TOO_MANY_STREAMS",
                metadata={"limit": "WATCH_STREAMS_PER_OWNER", "streams": str(full.limit)},
            )
        except OrderNotFound:
            await abort(
                context, grpc.StatusCode.NOT_FOUND, f"order {order_id} not found", "ORDER_NOT_FOUND"
            )
        except ShuttingDown as down:
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; watch again with "
                f"after_sequence {down.after_sequence}",
                "SERVER_SHUTTING_DOWN",
                metadata={"after_sequence": str(down.after_sequence)},
            )
        except OperationalError as exc:
            await self._database_unavailable(context, exc)
        finally:
            # A stream that ends while the hub waits on a write (the client
            # left, the deadline passed) frees its slot now, not when the
            # generator is collected.
            await events.aclose()
