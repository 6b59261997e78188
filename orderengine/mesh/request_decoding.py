"""Requests that are not the message they claim to be are bad input.

grpc.aio decodes a request before any handler runs and answers bytes that
do not parse (truncated varints, bad UTF-8 in a string field, a length past
the end) with UNKNOWN "Unexpected DecodeError", as if the server had failed.
This interceptor hands the handler's raw bytes to the handler itself and
decodes them there: what does not parse is INVALID_ARGUMENT, after the
caller's key or token has been checked (the access interceptors run first)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

from orderengine.errors import abort
from orderengine.mesh.wrapped_handlers import HandlerInterceptor, WrappedOnce, writing

MALFORMED_REQUEST = "MALFORMED_REQUEST"
# Quoted from the parser's error; enough to tell what broke.
MAX_DETAIL_CHARS = 200


async def _decoded(decode: Callable[[bytes], Any], raw: bytes,
                   context: grpc.aio.ServicerContext) -> Any:
    try:
        return decode(raw)
    except Exception as exc:  # any failure to parse is the caller's bytes, not us
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed request: {str(exc)[:MAX_DETAIL_CHARS]}",
                    MALFORMED_REQUEST)


def decoding_in_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` taking raw bytes and decoding them itself; handlers this
    cannot wrap (client streams, synchronous behaviours) stay as they are."""
    decode = handler.request_deserializer
    if decode is None:
        return handler
    unary: Any = handler.unary_unary
    if unary is not None and inspect.iscoroutinefunction(unary):

        async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            return await unary(await _decoded(decode, raw, context), context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, None, handler.response_serializer)
    stream: Any = handler.unary_stream
    if stream is not None and (inspect.iscoroutinefunction(stream)
                               or inspect.isasyncgenfunction(stream)):
        write = writing(stream)

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> None:
            await write(await _decoded(decode, raw, context), context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, None, handler.response_serializer)
    return handler


class MalformedRequests(HandlerInterceptor):
    """Innermost on every server (orderengine.mesh.serving): undecodable requests
    are INVALID_ARGUMENT, not UNKNOWN."""

    def __init__(self) -> None:
        self._wrapped = WrappedOnce()

    async def handler_for(self, details: grpc.HandlerCallDetails,
                          handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return self._wrapped.get(details.method, handler, decoding_in_handler)
