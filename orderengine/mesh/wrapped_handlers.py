"""Method handlers wrapped once per method, not on every call.

An interceptor that wraps the handler it is given (to observe a call, to
decode its request) would otherwise make the wrapper's functions anew for
each call, and every open stream would hold its own."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Writer = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]


class HandlerInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that answers with another handler for a method
    (wrapped, or one that refuses); methods this server does not serve pass
    through untouched."""

    async def handler_for(self, details: grpc.HandlerCallDetails,
                          handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails],
                                     Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return await self.handler_for(handler_call_details, handler)


class WrappedOnce:
    """The last wrapping of each method's handler; wrapped again whenever a
    call comes with another handler (an interceptor's refusal)."""

    __slots__ = ("_by_method",)

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler,
            wrap: Callable[..., grpc.RpcMethodHandler], *args: Any) -> grpc.RpcMethodHandler:
        """``wrap(handler, *args)``, made once while ``handler`` stays the same."""
        known = self._by_method.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = wrap(handler, *args)
        self._by_method[method] = (handler, wrapped)
        return wrapped


def of_its_kind(handler: grpc.RpcMethodHandler,
                behaviour: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """``behaviour`` as a handler of ``handler``'s kind (unary or streaming
    request and response), with its (de)serializers."""
    make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler if handler.stream_unary
            else grpc.unary_stream_rpc_method_handler if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler)
    return make(behaviour, handler.request_deserializer, handler.response_serializer)


def writing(stream: Any) -> Writer:
    """A streaming handler as one that writes its responses with
    ``context.write``. A wrapper awaiting it holds one coroutine for each
    open stream; re-yielding what it yields would hold an async generator,
    its pending ``asend`` and asyncio's weak reference to it."""
    if not inspect.isasyncgenfunction(stream):
        return stream  # it writes already

    async def write(request: Any, context: grpc.aio.ServicerContext) -> None:
        async for response in stream(request, context):
            await context.write(response)

    return write
