"""Request ids: one id names everything done for one request, on every hop.
A server takes the caller's ``x-request-id`` (or makes one) before any
handler runs; every channel sends the current one on; the gateway does the
same with HTTP's ``X-Request-Id``; an order's job carries it across the
queue (orderengine.observability.handoffs)."""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc

from orderengine.mesh.auth import metadata_value
from orderengine.observability.call_details import aio_with_metadata, with_metadata

HEADER = "x-request-id"
# What a caller's id may be: it ends up in log lines, so no spaces, no
# control characters, nothing long. Anything else is replaced by a new id.
WELL_FORMED = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def current() -> str | None:
    """The id of the request being handled, if any."""
    return REQUEST_ID.get()


def new() -> str:
    """32 random hex digits. Unique, not secret: the module's generator
    (reseeded in a forked child) costs a tenth of uuid4's system call."""
    return f"{random.getrandbits(128):032x}"


def accepted(value: str | bytes | None) -> str:
    """The caller's id if it is well formed, else a new one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and WELL_FORMED.fullmatch(value):
        return value
    return new()


@contextmanager
def using(request_id: str | None) -> Iterator[None]:
    """Work done inside is done for ``request_id``."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Sets the call's request id. grpc.aio runs the interceptors and then the
    handler in one task per call, so a context variable set here is the
    handler's (and what its own calls send on)."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails],
                                     Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        REQUEST_ID.set(accepted(metadata_value(
            handler_call_details.invocation_metadata, HEADER)))
        return await continuation(handler_call_details)


def outgoing() -> list[tuple[str, str]]:
    """The metadata that sends the current request id on (none outside a request)."""
    request_id = REQUEST_ID.get()
    return [(HEADER, request_id)] if request_id else []


class SendRequestId(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Synchronous channels: the current request id goes with every call."""

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                              request: Any) -> Any:
        return continuation(with_metadata(client_call_details, outgoing()), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                               request: Any) -> Any:
        return continuation(with_metadata(client_call_details, outgoing()), request)


# grpc.aio files an interceptor under its first kind only: one class a kind.
# The interceptors run in a task made for the call, which copies the
# caller's context: the request id read here is the caller's.
class AioSendRequestId(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(aio_with_metadata(client_call_details, outgoing()), request)


class AioStreamSendRequestId(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(aio_with_metadata(client_call_details, outgoing()), request)
