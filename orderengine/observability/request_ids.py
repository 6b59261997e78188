"""Request ids: one id names everything done for one request, on every hop.
A server takes the caller's ``x-request-id`` (or makes one) in the call's
task before its servicer runs (orderengine.mesh.wrapped_handlers); every
channel sends the current one on; the gateway does the same with HTTP's
``X-Request-Id``; an order's job carries it across the
queue (orderengine.observability.handoffs)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc

from orderengine.observability.call_details import aio_with_metadata, with_metadata

HEADER = "x-request-id"
# What a caller's id may be: it ends up in log lines, so no spaces, no
# control characters, nothing long. Anything else is replaced by a new id.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

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
    if value and _WELL_FORMED.fullmatch(value):
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


def _outgoing() -> list[tuple[str, str]]:
    request_id = REQUEST_ID.get()
    return [(HEADER, request_id)] if request_id else []


class SendRequestId(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Synchronous channels: the current request id goes with every call."""

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                              request: Any) -> Any:
        return continuation(with_metadata(client_call_details, _outgoing()), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                               request: Any) -> Any:
        return continuation(with_metadata(client_call_details, _outgoing()), request)


# grpc.aio files an interceptor under its first kind only: one class a kind.
# The interceptors run in a task made for the call, which copies the
# caller's context: the request id read here is the caller's.
class AioSendRequestId(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(aio_with_metadata(client_call_details, _outgoing()), request)


class AioStreamSendRequestId(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(aio_with_metadata(client_call_details, _outgoing()), request)
