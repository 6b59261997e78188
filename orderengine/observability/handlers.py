"""Something done around every call a grpc.aio server takes, whatever the
call's kind (a span), and what a finished call is known by (its status
code, the order it names). The one wrapper of each method's handler
(orderengine.mesh.wrapped_handlers) runs them."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

S = TypeVar("S")

# Called by anyone (orderengine.mesh.auth): they carry no orders, and calls to them are noise.
HEALTH_PREFIX = "/grpc.health.v1.Health/"


class Around(Protocol[S]):
    """``enter`` before the handler runs, in the call's task; ``exit`` after
    it ended, however. ``request`` is None for client-streaming calls,
    ``response`` for streaming answers and failures."""

    def enter(self, request: Any, context: grpc.aio.ServicerContext, streaming: bool) -> S: ...

    def exit(
        self,
        state: S,
        context: grpc.aio.ServicerContext,
        request: Any,
        response: Any,
        error: BaseException | None,
    ) -> None: ...


class Observer(Protocol):
    """What watches a server's calls of one method: its hooks, or None to
    leave the method alone."""

    def hooks(self, method: str, handler: grpc.RpcMethodHandler) -> Around[Any] | None: ...


def status_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """How the call ended: the code the handler set or aborted with, OK, or
    what an uncaught error becomes (CANCELLED for a call the client left)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # Left by the client, or ended by its deadline.
        remaining = context.time_remaining()
        return (
            grpc.StatusCode.DEADLINE_EXCEEDED
            if remaining is not None and remaining <= 0
            else grpc.StatusCode.CANCELLED
        )
    return grpc.StatusCode.UNKNOWN


@functools.cache
def _request_type(method: str) -> type[Message] | None:
    """The request message of ``/package.Service/Method``, if this process knows it."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method.lstrip("/").replace("/", "."))
    except KeyError:
        return None
    return message_factory.GetMessageClass(found.input_type)


def order_id(method: str, request: Any, response: Any) -> str | None:
    """The order the answer or the request names (``order_id``, or an
    ``order`` that has one), if any. The request may still be its bytes
    (orderengine.mesh.request_decoding decodes it in the handler): it is read
    only when the answer did not say, which is mostly a failed call."""
    for message in (response, request):
        if isinstance(message, bytes):
            kind = _request_type(method)
            try:
                message = kind.FromString(message) if kind is not None else None
            except DecodeError:
                message = None
        if message is None:
            continue
        found = getattr(message, "order_id", None) or getattr(
            getattr(message, "order", None), "order_id", None
        )
        if found:
            return str(found)
    return None
