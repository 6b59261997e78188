"""The HTTP API: each route is one OrderService call, translated both ways.

``POST /api/orders`` answers exactly as the seed did, so its clients switch
without changing a line."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response, status

from gateway.amounts import Amount, DecimalJSONRoute
from gateway.errors import ErrorBody
from gateway.models import (
    UINT32_MAX,
    OrderJSON,
    OrderListJSON,
    QuoteJSON,
    SubmitOrderBody,
    SubmitOrderReply,
)
from gateway.submit import submit_request, submitted
from gateway.upstream import CALL_TIMEOUT_SECONDS, CallerStub, OrdersStub, Upstream
from orderengine.v1 import order_service_pb2

Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


BAD_INPUT: Responses = {400: _error("bad input; `error.field` names the field")}
# Every route: who calls (401), and whether OrderService answers.
UNAVAILABLE: Responses = {
    401: _error("missing, invalid or revoked API key (`Authorization: Bearer <key>`)"),
    503: _error("OrderService is unavailable; try again"),
    502: _error("OrderService failed in an unexpected way"),
}
UNKNOWN_ORDER: Responses = {404: _error("no such order")}

router = APIRouter(prefix="/api", route_class=DecimalJSONRoute, tags=["orders"])


async def orders_stub(request: Request) -> OrdersStub:
    """OrderService as the caller: their ``Authorization`` header goes along.
    Async: FastAPI runs a plain function in a worker thread, a hop per request."""
    upstream: Upstream = request.app.state.upstream
    return cast(OrdersStub, CallerStub(upstream.orders, request.headers.get("authorization")))


Stub = Annotated[OrdersStub, Depends(orders_stub)]


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=SubmitOrderReply,
    summary="Submit a market, limit, stop or TWAP order",
    responses={
        200: {
            "model": SubmitOrderReply,
            "description": "clientOrderId matched an earlier order: that order",
        },
        409: _error(
            "clientOrderId was used for an order with other parameters; or the wallet "
            "cannot pay for the order (reason INSUFFICIENT_FUNDS, `error.field` amount); or "
            "the route's price impact is above the most allowed (reason "
            "PRICE_IMPACT_TOO_HIGH, `error.field` amount)"
        ),
        **BAD_INPUT,
        **UNAVAILABLE,
    },
)
async def submit_order(body: SubmitOrderBody, request: Request) -> Response:
    """Validates, stores and queues the order, and answers at once; watch it
    on `/ws/orders/{orderId}`."""
    # The ordinary submit is answered by gateway.submit.SubmitFastPath before
    # it gets here; this answers the same way what that one passes on.
    upstream: Upstream = request.app.state.upstream
    reply = await upstream.submit_order(submit_request(body), request.headers.get("authorization"))
    status_code, content, location = submitted(reply)
    # Built here, not by response_model: the model documents the answer.
    return Response(
        content,
        status_code=status_code,
        media_type="application/json",
        headers={"Location": location},
    )


@router.get(
    "/orders",
    response_model=OrderListJSON,
    summary="List orders, newest first",
    responses={**BAD_INPUT, **UNAVAILABLE},
)
async def list_orders(
    stub: Stub,
    page_size: Annotated[
        int, Query(alias="pageSize", ge=0, le=1000, description="at most this many (0: 50)")
    ] = 0,
    page_token: Annotated[
        str, Query(alias="pageToken", description="nextPageToken of the previous page")
    ] = "",
) -> OrderListJSON:
    reply = await stub.ListOrders(
        order_service_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    return OrderListJSON(
        orders=[OrderJSON.of(order) for order in reply.orders],
        next_page_token=reply.next_page_token or None,
    )


@router.get(
    "/orders/{order_id}",
    response_model=OrderJSON,
    summary="One order, as stored now",
    responses={**BAD_INPUT, **UNKNOWN_ORDER, **UNAVAILABLE},
)
async def get_order(order_id: str, stub: Stub) -> OrderJSON:
    order = await stub.GetOrder(
        order_service_pb2.GetOrderRequest(order_id=order_id), timeout=CALL_TIMEOUT_SECONDS
    )
    return OrderJSON.of(order)


@router.delete(
    "/orders/{order_id}",
    response_model=OrderJSON,
    summary="Cancel a PENDING or OPEN order",
    responses={
        **BAD_INPUT,
        **UNKNOWN_ORDER,
        409: _error("the order is no longer PENDING or OPEN"),
        **UNAVAILABLE,
    },
)
async def cancel_order(order_id: str, stub: Stub) -> OrderJSON:
    order = await stub.CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=CALL_TIMEOUT_SECONDS
    )
    return OrderJSON.of(order)


@router.get(
    "/quote",
    response_model=QuoteJSON,
    tags=["quotes"],
    summary="What an order would get now, on each venue",
    responses={
        **BAD_INPUT,
        409: _error(
            "no route: no pool or pair of pools trades the pair in this size; or the route's "
            "price impact is above the most allowed (`PRICE_IMPACT_TOO_HIGH`, field `amount`)"
        ),
        **UNAVAILABLE,
    },
)
async def quote(
    stub: Stub,
    input_token: Annotated[str, Query(alias="inputToken", examples=["SOL"])],
    output_token: Annotated[str, Query(alias="outputToken", examples=["USDC"])],
    amount: Annotated[Amount, Query(examples=["10"])],
    slippage_bps: Annotated[
        int, Query(alias="slippageBps", ge=0, le=UINT32_MAX, description="0: the default, 50")
    ] = 0,
) -> QuoteJSON:
    """Each venue's quote for the whole input and the route the engine would
    take. Nothing is stored; the price may move before an order is routed."""
    reply = await stub.QuoteOrder(
        order_service_pb2.QuoteOrderRequest(
            input_token=input_token,
            output_token=output_token,
            amount=amount,
            slippage_bps=slippage_bps,
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    return QuoteJSON.of(reply)
