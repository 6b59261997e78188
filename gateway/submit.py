"""``POST /api/orders``, the gateway's busiest call, by the shortest path.

The route in gateway/orders.py documents it and answers whatever is out of
the ordinary; ``SubmitFastPath`` answers the ordinary submit (a JSON object
that SubmitOrderBody takes) without FastAPI's routing, dependencies and
request objects, which cost more CPU than the rest of the call. Anything else
(bad JSON, a body the model refuses, another content type, a body over the
limit, a client gone) goes on to the route unchanged, its body replayed: it
is answered exactly as before, by the same code."""

from __future__ import annotations

import json

import grpc
from pydantic import ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.amounts import loads
from gateway.errors import RpcFailure
from gateway.models import SubmitOrderBody
from gateway.upstream import Upstream
from orderengine.v1 import order_service_pb2

PATH = "/api/orders"
QUEUED = "Order queued successfully"
ALREADY_QUEUED = "Order already queued with this clientOrderId"
JSON = b"application/json"


def submit_request(body: SubmitOrderBody) -> order_service_pb2.SubmitOrderRequest:
    request = order_service_pb2.SubmitOrderRequest(
        input_token=body.input_token,
        output_token=body.output_token,
        amount=body.amount,
        slippage_bps=body.slippage_bps or 0,
        client_order_id=body.client_order_id or "",
        priority_fee=body.priority_fee or "",
    )
    if body.limit is not None:
        request.limit.min_amount_out = body.limit.min_amount_out
    elif body.stop is not None:
        request.stop.trigger_price = body.stop.trigger_price
    elif body.twap is not None:
        request.twap.slices = body.twap.slices
        request.twap.interval.FromJsonString(body.twap.interval)
    elif body.sniper is not None:
        request.sniper.SetInParent()  # any price: still a sniper
        request.sniper.max_price = body.sniper.max_price or ""
    if body.expire_time is not None:
        request.expire_time.FromDatetime(body.expire_time)
    return request


def submitted(reply: order_service_pb2.SubmitOrderResponse) -> tuple[int, bytes, str]:
    """The answer to a submit: its status, JSON body (SubmitOrderReply, as the
    seed wrote it) and Location."""
    order_id = reply.order.order_id
    body = {"message": ALREADY_QUEUED if reply.already_exists else QUEUED, "orderId": order_id}
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return (200 if reply.already_exists else 201), content, f"/api/orders/{order_id}"


def _headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The first Content-Type and Authorization, as Starlette's Headers.get reads them."""
    content_type = authorization = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            if content_type is None:
                content_type = value
        elif key == b"authorization" and authorization is None:
            authorization = value
    return content_type, authorization


def _is_json(content_type: bytes | None) -> bool:
    # The route reads a body as JSON without a Content-Type too (the seed's
    # clients may send none); any other type is the route's to judge.
    return content_type is None or content_type.partition(b";")[0].strip().lower() == JSON


class _Replay:
    """What was read of the request, handed to the route as if unread."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.messages: list[Message] = []
        self.error: BaseException | None = None

    async def body(self) -> bytes | None:
        """The whole body; None when the client went away or a limit refused it."""
        chunks = []
        while True:
            try:
                message = await self._receive()
            except Exception as exc:  # BodyTooLarge: the route's handler answers it
                self.error = exc
                return None
            self.messages.append(message)
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return await self._receive()


class SubmitFastPath:
    """Answers an ordinary ``POST /api/orders``; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, route: BaseRoute) -> None:
        self.app = app
        # The route it stands in for: the call log and the span name it.
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type, authorization = _headers(scope)
        if not _is_json(content_type):
            await self.app(scope, receive, send)
            return
        replay = _Replay(receive)
        raw = await replay.body()
        body = _valid(raw) if raw else None
        if body is None:
            await self.app(scope, replay.receive, send)
            return
        scope["route"] = self.route  # as the router would have set it
        upstream: Upstream = scope["app"].state.upstream
        try:
            reply = await upstream.submit_order(
                submit_request(body),
                authorization.decode("latin-1") if authorization is not None else None,
            )
        except grpc.aio.AioRpcError as exc:
            await RpcFailure(exc).response()(scope, replay.receive, send)
            return
        status, content, location = submitted(reply)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", JSON),
                    (b"location", location.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def _valid(raw: bytes) -> SubmitOrderBody | None:
    """The body as the route would take it, or None for the route to answer."""
    try:
        parsed = loads(raw)
        if not isinstance(parsed, dict):
            return None
        return SubmitOrderBody.model_validate(parsed)
    except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
        return None
