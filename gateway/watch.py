"""``/ws/orders/{orderId}``: one WatchOrder stream per WebSocket.

Every socket gets a stream of its own, so any number of clients can watch
one order, and a late one still gets the whole history (OrderService
replays it). Messages are the seed's ``ORDER_UPDATE`` envelope; the socket
closes normally (1000) after the terminal event.

When the client goes away the upstream call is cancelled at once. When
an OrderService replica stops or dies mid-stream (UNAVAILABLE), the stream
is opened again with ``after_sequence`` = the last event sent, on another
replica or on the same one back (orderengine.mesh.resumption), so nothing
repeats and nothing is lost; only when OrderService stays away longer than
``resume_seconds`` does the socket close, with 1011 and the sequence to
resume from."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress

import grpc
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from gateway.errors import MISSING_KEY_REASON, RpcFailure
from gateway.models import TERMINAL, OrderUpdate, status_name
from gateway.upstream import Upstream, watch_metadata
from orderengine.mesh.resumption import RESUMABLE, Resumption
from orderengine.v1 import order_service_pb2

log = logging.getLogger(__name__)

router = APIRouter()

NORMAL = 1000
UPSTREAM_FAILED = 1011
BAD_REQUEST = 4400
UNAUTHENTICATED = 4401
NOT_FOUND = 4404
# RFC 6455's "try again later": the caller's open streams are at their limit.
TRY_AGAIN_LATER = 1013
# How long a socket that brought no key in its headers may take to send
# {"authorization": "Bearer <key>"} as its first message.
AUTH_MESSAGE_SECONDS = 10.0
# A Sec-WebSocket-Protocol value "bearer.<key>" carries the key.
BEARER_PROTOCOL = "bearer."
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 125 bytes with its code
# after_sequence is an int64 on the wire.
MAX_AFTER = 2**63 - 1
MISSING_KEY = (
    "missing API key: send the Authorization header, the subprotocol "
    'bearer.<key>, or first {"authorization": "Bearer <key>"}'
)


def _reason(text: str) -> str:
    return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


class Relay:
    """Upstream events to one socket until the order ends, the client goes
    away, or OrderService stays away longer than ``resume_seconds``."""

    def __init__(
        self,
        socket: WebSocket,
        upstream: Upstream,
        order_id: str,
        after: int,
        resume_seconds: float,
        authorization: str | None = None,
    ) -> None:
        self.socket = socket
        self.metadata = watch_metadata(authorization)
        self.upstream = upstream
        self.order_id = order_id
        self.last = after
        self.resume_seconds = resume_seconds

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump())
        listen = asyncio.create_task(self._until_disconnect())
        try:
            await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancelling the pump cancels its upstream call: no stream
            # outlives its socket.
            for task in (pump, listen):
                task.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
        if not pump.done() or pump.cancelled():
            return  # the client left first
        error = pump.exception()
        if error is not None:
            log.error("watch %s failed", self.order_id, exc_info=error)
            closing: tuple[int, str] | None = (UPSTREAM_FAILED, "internal error")
        else:
            closing = pump.result()
        if closing is not None:
            with suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.socket.close(closing[0], _reason(closing[1]))

    async def _until_disconnect(self) -> None:
        # What the client sends is ignored; only its leaving matters.
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def _pump(self) -> tuple[int, str] | None:
        """Relays events; returns the close code and reason, or None when the
        client is already gone."""
        resumption = Resumption(self.resume_seconds)
        while True:
            opened_at = resumption.opened()
            # Our own cancel (the client left) raises CancelledError, never
            # an AioRpcError: only OrderService's end of a stream resumes.
            call = self.upstream.orders.WatchOrder(
                order_service_pb2.WatchOrderRequest(
                    order_id=self.order_id, after_sequence=self.last
                ),
                metadata=self.metadata,
            )
            self.upstream.open_streams += 1
            try:
                async for event in call:
                    resumption.served()
                    try:
                        await self.socket.send_text(OrderUpdate.of(event).to_json())
                    except (WebSocketDisconnect, RuntimeError, OSError):
                        return None
                    self.last = event.sequence
                    if event.status in TERMINAL:
                        return NORMAL, f"order {status_name(event.status)}"
                return NORMAL, "order already ended"
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or exc.code().name
                if code is grpc.StatusCode.NOT_FOUND:
                    return NOT_FOUND, f"order {self.order_id} not found"
                if code is grpc.StatusCode.UNAUTHENTICATED:
                    # A key OrderService could not read (not "Bearer <key>")
                    # is a missing one: said in the socket's terms, not gRPC's.
                    missing = RpcFailure(exc).reason == MISSING_KEY_REASON
                    return UNAUTHENTICATED, MISSING_KEY if missing else details
                if code is grpc.StatusCode.INVALID_ARGUMENT:
                    return BAD_REQUEST, details
                if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return TRY_AGAIN_LATER, details
                delay = resumption.ended(code, opened_at)
                if delay is None and code not in RESUMABLE:
                    log.warning("watch %s: %s: %s", self.order_id, code.name, details)
                    return UPSTREAM_FAILED, f"{code.name}: {details}"
                if delay is None:
                    return UPSTREAM_FAILED, (
                        f"order service unavailable; reconnect with ?after={self.last}"
                    )
            finally:
                call.cancel()
                self.upstream.open_streams -= 1
            log.info(
                "watch %s: order service unavailable, resuming after #%d", self.order_id, self.last
            )
            await asyncio.sleep(delay)


@router.websocket("/ws/orders/{order_id}")
async def watch_order(socket: WebSocket, order_id: str) -> None:
    """Streams ``ORDER_UPDATE`` messages; ``?after=N`` sends only events
    after sequence N (to resume). The API key comes in the ``Authorization``
    header, as a ``Sec-WebSocket-Protocol`` value ``bearer.<key>`` (echoed),
    or as the first message ``{"authorization": "Bearer <key>"}``; never in
    the URL, which ends up in logs."""
    authorization = socket.headers.get("authorization")
    protocol = next(
        (p for p in socket.scope.get("subprotocols", []) if p.startswith(BEARER_PROTOCOL)), None
    )
    if authorization is None and protocol is not None:
        authorization = f"Bearer {protocol.removeprefix(BEARER_PROTOCOL)}"
    # Accept first: a close code and reason reach a browser only after that.
    await socket.accept(subprotocol=protocol)
    if authorization is None:
        authorization = await _first_message_authorization(socket)
        if authorization is None:
            with suppress(WebSocketDisconnect, RuntimeError, OSError):
                await socket.close(UNAUTHENTICATED, _reason(MISSING_KEY))
            return
    raw_after = socket.query_params.get("after", "0")
    try:
        after = int(raw_after)
    except ValueError:
        after = -1
    if not 0 <= after <= MAX_AFTER:
        await socket.close(
            BAD_REQUEST,
            _reason(
                f"after: must be a sequence number from 0 to {MAX_AFTER}, got {raw_after[:32]!r}"
            ),
        )
        return
    upstream: Upstream = socket.app.state.upstream
    await Relay(
        socket, upstream, order_id, after, socket.app.state.resume_seconds, authorization
    ).run()


async def _first_message_authorization(socket: WebSocket) -> str | None:
    """``authorization`` from the first message, a JSON object; None when the
    client sends something else, nothing in time, or leaves."""
    try:
        message = await asyncio.wait_for(socket.receive(), AUTH_MESSAGE_SECONDS)
    except TimeoutError:
        return None
    text = message.get("text")
    if message["type"] != "websocket.receive" or not isinstance(text, str):
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    value = body.get("authorization") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None
