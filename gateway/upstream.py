"""The gateway's one connection to OrderService: a grpc.aio channel opened
for the app's lifetime, the stub, and a count of open WatchOrder streams.

Submits are gathered: those of one API key that arrive while its call is in
flight go together in the next, one BatchSubmitOrders (a lone one goes at
once, as SubmitOrder), each answered, or failed with an AioRpcError, exactly
as its own SubmitOrder would have been. The batch call carries the first
order's request id and trace (its client span is the first request's
child, linked to every other request's span when tracing), and each order's
own request id in x-item-request-ids, which OrderService hands to that
order's job. A batch whose ids would not fit one call's metadata goes as
several calls, at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from orderengine.batching import Coalescer
from orderengine.mesh.channels import (
    ITEM_REQUEST_IDS,
    ITEM_REQUEST_IDS_MAX_CHARS,
    ORDER_SERVICE,
    aio_channel,
)
from orderengine.observability import request_ids, tracing
from orderengine.v1 import item_error_pb2, order_service_pb2, order_service_pb2_grpc

if TYPE_CHECKING:
    # The async stub's type exists only in the generated .pyi.
    OrdersStub = order_service_pb2_grpc.OrderServiceAsyncStub
else:
    OrdersStub = order_service_pb2_grpc.OrderServiceStub

# Unary calls: long enough for a slow database, short enough for a browser.
CALL_TIMEOUT_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 1.0


# The caller's API key travels on as this header, unread and never logged:
# OrderService alone decides who it is.
AUTHORIZATION = "authorization"
# A header longer than this is no API key (gRPC metadata has its own limit).
MAX_AUTHORIZATION_CHARS = 512


def caller_metadata(authorization: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that carries the caller's ``Authorization`` to OrderService."""
    if not authorization or len(authorization) > MAX_AUTHORIZATION_CHARS:
        return ()
    if not all(" " <= c <= "~" for c in authorization):
        # gRPC refuses to send such metadata (the call would fail, a 500);
        # no API key has a tab, a control or a non-ASCII character: none sent, a 401.
        return ()
    return ((AUTHORIZATION, authorization),)


def watch_metadata(authorization: str | None) -> tuple[tuple[str, str], ...]:
    """What a WatchOrder call sends besides what the channel adds (the
    current request id): the caller's key."""
    return caller_metadata(authorization)


# Orders in one BatchSubmitOrders: OrderService's limit, one of its batches.
MAX_ORDERS_PER_CALL = 256
# One caller's submit calls on their way at once: the next batch goes while
# one is answered, and OrderService gathers them into its own batches.
SUBMITS_IN_FLIGHT = 2
# API keys with a coalescer at once; past it the oldest goes (its callers
# still get their answers: it only stops taking new ones).
MAX_CALLERS = 1024
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_DOMAIN = item_error_pb2.DESCRIPTOR.package

Submitted = order_service_pb2.SubmitOrderResponse


@dataclass(frozen=True, slots=True)
class _Submit:
    """One caller's order, with its request's id and trace."""

    request: order_service_pb2.SubmitOrderRequest
    request_id: str | None
    context: otel_context.Context


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def item_failure(error: item_error_pb2.ItemError) -> grpc.aio.AioRpcError:
    """An item's error as the failed SubmitOrder call it stands for: its code,
    message, and the google.rpc.Status details in the trailers (ErrorInfo,
    RetryInfo, BadRequest), so it is answered as that call's error is."""
    code = next(c for c in grpc.StatusCode if c.value[0] == error.code)
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=_DOMAIN, metadata=dict(error.metadata)
            )
        )
    ]
    if error.HasField("retry_delay"):
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=error.retry_delay)))
    if error.field:
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=error.field)
                    ]
                )
            )
        )
    status = status_pb2.Status(code=error.code, message=error.message, details=details)
    return grpc.aio.AioRpcError(
        code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
        details=error.message,
        debug_error_string=None,
    )


def _within_metadata(items: list[_Submit]) -> list[list[_Submit]]:
    """``items`` in order, cut into calls whose ITEM_REQUEST_IDS fit."""
    calls: list[list[_Submit]] = [[]]
    chars = 0
    for item in items:
        size = len(item.request_id or "") + 1  # and its comma
        if calls[-1] and chars + size > ITEM_REQUEST_IDS_MAX_CHARS:
            calls.append([])
            chars = 0
        calls[-1].append(item)
        chars += size
    return calls


@contextmanager
def _on_behalf_of(items: Sequence[_Submit]) -> Iterator[None]:
    """The call made inside is the first item's (its request id, a child of
    its span); when tracing, linked to every other item's span and theirs to
    it."""
    first = items[0]
    token = otel_context.attach(first.context)
    try:
        with request_ids.using(first.request_id):
            tracer = tracing.tracer()
            if tracer is None or len(items) == 1:
                yield
                return
            others = [trace.get_current_span(item.context) for item in items[1:]]
            links = [
                trace.Link(span.get_span_context())
                for span in others
                if span.get_span_context().is_valid
            ]
            with tracer.start_as_current_span(
                "BatchSubmitOrders batch", links=links, attributes={"order.count": len(items)}
            ) as batch:
                for span in others:
                    span.add_link(batch.get_span_context())
                yield
    finally:
        otel_context.detach(token)


class CallerStub:
    """The OrderService stub's unary calls, each carrying one caller's authorization."""

    def __init__(self, stub: OrdersStub, authorization: str | None) -> None:
        self._stub = stub
        self._metadata = caller_metadata(authorization)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        async def call(request: Any, *, timeout: float) -> Any:
            return await method(request, metadata=self._metadata, timeout=timeout)

        return call


class Upstream:
    def __init__(self, address: str) -> None:
        self.address = address
        # Created inside the running loop (grpc.aio binds to it).
        self.channel = aio_channel(address, service=ORDER_SERVICE)
        self.orders: OrdersStub = order_service_pb2_grpc.OrderServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        # WatchOrder calls open right now: what a client that went away
        # must not leave behind (reported by /healthz).
        self.open_streams = 0
        # Authorization -> the submits gathered for it: a batch has one caller.
        self._submits: dict[str | None, Coalescer[_Submit, Submitted]] = {}

    async def submit_order(
        self, request: order_service_pb2.SubmitOrderRequest, authorization: str | None
    ) -> order_service_pb2.SubmitOrderResponse:
        """One SubmitOrder as the caller ``authorization``: the one place every
        submit goes through, where concurrent ones are gathered. Raises the
        AioRpcError its own SubmitOrder call would have."""
        coalescer = self._submits.get(authorization)
        if coalescer is None:
            if len(self._submits) >= MAX_CALLERS:
                del self._submits[next(iter(self._submits))]
            metadata = caller_metadata(authorization)

            async def send(items: list[_Submit]) -> list[Submitted | Exception]:
                return await self._send(metadata, items)

            coalescer = self._submits[authorization] = Coalescer(
                send, MAX_ORDERS_PER_CALL, in_flight=SUBMITS_IN_FLIGHT
            )
        return await coalescer.submit(
            _Submit(request, request_ids.current(), otel_context.get_current())
        )

    async def _send(
        self, metadata: tuple[tuple[str, str], ...], items: list[_Submit]
    ) -> list[Submitted | Exception]:
        """Each item's answer: one call for ``items``, or several at once
        when their request ids would not fit one call's metadata."""
        calls = _within_metadata(items)
        if len(calls) == 1:
            return await self._call(metadata, items)
        answers = await asyncio.gather(*(self._call(metadata, call) for call in calls))
        return [answer for call in answers for answer in call]

    async def _call(
        self, metadata: tuple[tuple[str, str], ...], items: list[_Submit]
    ) -> list[Submitted | Exception]:
        """One call for ``items``: SubmitOrder for one, else BatchSubmitOrders.
        A call that fails as a whole fails every item with its error."""
        with _on_behalf_of(items):
            try:
                if len(items) == 1:
                    return [
                        await self.orders.SubmitOrder(
                            items[0].request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
                        )
                    ]
                reply = await self.orders.BatchSubmitOrders(
                    order_service_pb2.BatchSubmitOrdersRequest(
                        requests=[item.request for item in items]
                    ),
                    metadata=(
                        *metadata,
                        (ITEM_REQUEST_IDS, ",".join(item.request_id or "" for item in items)),
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError as exc:
                return [exc] * len(items)
        return [
            result.response
            if result.WhichOneof("result") == "response"
            else item_failure(result.error)
            for result in reply.results
        ]

    async def health(self) -> tuple[str, str | None]:
        """OrderService's standard health status, and why when it is not SERVING."""
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service=ORDER_SERVICE), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details()
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return status, None

    async def close(self) -> None:
        await self.channel.close(None)
