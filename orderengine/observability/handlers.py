"""Something done around every call a grpc.aio server takes, whatever the
call's kind: a call log line, a span. One wrapper for the four kinds of
method handler, and what a finished call is known by (its status code, the
order it names)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from orderengine.mesh import auth
from orderengine.mesh.wrapped_handlers import HandlerInterceptor, WrappedOnce, of_its_kind, writing

S = TypeVar("S")

# Called by anyone (orderengine.mesh.auth): they carry no orders, and calls to them are noise.
OPEN_PREFIXES = auth.OPEN_PREFIXES
HEALTH_PREFIX = "/grpc.health.v1.Health/"


class Around(Protocol[S]):
    """``enter`` before the handler runs, in the call's task; ``exit`` after
    it ended, however. ``request`` is None for client-streaming calls,
    ``response`` for streaming answers and failures."""

    def enter(self, request: Any, context: grpc.aio.ServicerContext, streaming: bool) -> S: ...

    def exit(self, state: S, context: grpc.aio.ServicerContext, request: Any, response: Any,
             error: BaseException | None) -> None: ...


class Observer(Protocol):
    """What watches a server's calls of one method: its hooks, or None to
    leave the method alone."""

    def hooks(self, method: str, handler: grpc.RpcMethodHandler) -> Around[Any] | None: ...


class _NestedHooks:
    """Several observers' hooks of one method run as one, nested: entered
    in order, exited in reverse."""

    __slots__ = ("_hooks",)

    def __init__(self, hooks: list[Around[Any]]) -> None:
        self._hooks = hooks

    def enter(self, request: Any, context: grpc.aio.ServicerContext,
              streaming: bool) -> list[Any]:
        return [hooks.enter(request, context, streaming) for hooks in self._hooks]

    def exit(self, state: list[Any], context: grpc.aio.ServicerContext, request: Any,
             response: Any, error: BaseException | None) -> None:
        for hooks, entered in zip(reversed(self._hooks), reversed(state), strict=True):
            hooks.exit(entered, context, request, response, error)


class ObservedCalls(HandlerInterceptor):
    """Every observer of a server's calls in one wrapper a call: each layer
    of wrapping costs every call a frame, and every open stream its memory."""

    def __init__(self, observers: list[Observer]) -> None:
        self._observers = observers
        # Hooks keep a call's state in what ``enter`` returns, so a method's
        # serve all its calls: chosen on its first call, then looked up.
        self._by_method: dict[str, Around[Any] | None] = {}
        self._wrapped = WrappedOnce()

    async def handler_for(self, details: grpc.HandlerCallDetails,
                          handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        method: str = details.method
        if method in self._by_method:
            chosen = self._by_method[method]
        else:
            hooks = [found for observer in self._observers
                     if (found := observer.hooks(method, handler)) is not None]
            chosen = self._by_method[method] = (
                None if not hooks else hooks[0] if len(hooks) == 1 else _NestedHooks(hooks))
        if chosen is None:
            return handler
        return self._wrapped.get(method, handler, around, chosen)


def around(handler: grpc.RpcMethodHandler, hooks: Around[Any]) -> grpc.RpcMethodHandler:
    """``handler`` with ``hooks`` run around each call."""
    streaming = bool(handler.unary_stream or handler.stream_stream)
    streamed_request = bool(handler.stream_unary or handler.stream_stream)
    call: Any = (writing(handler.unary_stream or handler.stream_stream) if streaming
                 else handler.unary_unary or handler.stream_unary)

    async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        known = None if streamed_request else request
        state = hooks.enter(known, context, streaming)
        response = error = None
        try:
            response = await call(request, context)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            # A stream's responses were written, one by one: none is the answer.
            hooks.exit(state, context, known, None if streaming else response, error)

    return of_its_kind(handler, observed)


def status_code(context: grpc.aio.ServicerContext,
                error: BaseException | None) -> grpc.StatusCode:
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
        return (grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0
                else grpc.StatusCode.CANCELLED)
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
            getattr(message, "order", None), "order_id", None)
        if found:
            return str(found)
    return None
