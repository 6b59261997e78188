"""The gateway's one connection to OrderService: a grpc.aio channel opened
for the app's lifetime, the stub, and a count of open WatchOrder streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.mesh.channels import ORDER_SERVICE, aio_channel
from orderengine.v1 import order_service_pb2, order_service_pb2_grpc

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

    async def submit_order(self, request: order_service_pb2.SubmitOrderRequest,
                           authorization: str | None) -> order_service_pb2.SubmitOrderResponse:
        """One SubmitOrder as the caller ``authorization``: the one place every
        submit goes through, so that concurrent ones can be gathered here."""
        return await self.orders.SubmitOrder(request, metadata=caller_metadata(authorization),
                                             timeout=CALL_TIMEOUT_SECONDS)

    async def health(self) -> tuple[str, str | None]:
        """OrderService's standard health status, and why when it is not SERVING."""
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service=ORDER_SERVICE),
                timeout=HEALTH_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details()
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return status, None

    async def close(self) -> None:
        await self.channel.close(None)
