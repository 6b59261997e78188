"""Every method handler of an engine server, wrapped once, when the server
registers it (orderengine.mesh.serving), into the one function that runs
for each of its calls: it notes the arrival, takes the request id, opens
the span when tracing, checks access, decodes the request, awaits the
servicer and reports the call (metrics, call log, span).

In place of a chain of server interceptors: each interceptor costs every
call coroutines and a lookup of its own, and one that wraps the handler
another frame; an open stream holds each wrapper's frame. Here a call
costs one frame besides the servicer's, and a server with no interceptor
looks its handler up without a coroutine."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from orderengine.errors import ItemFailure, abort
from orderengine.mesh.arrivals import Arrivals
from orderengine.mesh.auth import Guard
from orderengine.mesh.request_decoding import MALFORMED_REQUEST, MAX_DETAIL_CHARS
from orderengine.observability.call_details import OPEN_PREFIXES, metadata_value
from orderengine.observability.request_ids import HEADER, REQUEST_ID, accepted
from orderengine.observability.server_calls import MethodReport

Writer = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]


def of_its_kind(
    handler: grpc.RpcMethodHandler, behaviour: Callable[..., Any], request_deserializer: Any
) -> grpc.RpcMethodHandler:
    """``behaviour`` as a handler of ``handler``'s kind (unary or streaming
    request and response), with its response serializer."""
    make = (
        grpc.unary_unary_rpc_method_handler
        if handler.unary_unary
        else grpc.stream_unary_rpc_method_handler
        if handler.stream_unary
        else grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    return make(behaviour, request_deserializer, handler.response_serializer)


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


async def _malformed(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    await abort(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"malformed request: {str(exc)[:MAX_DETAIL_CHARS]}",
        MALFORMED_REQUEST,
    )


def wrapped(
    method: str,
    handler: grpc.RpcMethodHandler,
    arrivals: Arrivals,
    guard: Guard | None,
    slow_ms: float,
) -> grpc.RpcMethodHandler:
    """``handler`` of ``method`` as the one function its calls run (above).
    Open methods (health, reflection) skip the guard. A unary request is
    decoded here, after the access check: grpc.aio would decode it first,
    and answer bytes that do not parse with UNKNOWN, as if the server had
    failed (orderengine.mesh.request_decoding)."""
    report = MethodReport(method, handler, slow_ms)
    spans = report.spans
    done = report.done
    if method.startswith(OPEN_PREFIXES):
        guard = None
    check = guard.check if guard is not None else None
    streaming = bool(handler.response_streaming)
    streamed_request = bool(handler.request_streaming)
    call: Any = (
        writing(handler.unary_stream or handler.stream_stream)
        if streaming
        else handler.unary_unary or handler.stream_unary
    )
    decode = handler.request_deserializer
    if streamed_request or not (
        inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    ):
        decode = None  # grpc.aio decodes a stream's requests, and a synchronous handler's
    clock = time.perf_counter
    set_request_id = REQUEST_ID.set

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        began = arrivals.latest = clock()
        metadata = context.invocation_metadata()
        set_request_id(accepted(metadata_value(metadata, HEADER)))
        # A span's hooks see no client stream's requests.
        known = None if streamed_request else request
        spanned = spans.enter(known, context, streaming) if spans is not None else None
        response = error = None
        try:
            if check is not None:
                verdict = check(metadata)
                if verdict is not None:
                    if not isinstance(verdict, ItemFailure):
                        verdict = await verdict
                    if verdict is not None:
                        await verdict.abort(context)
            if decode is not None:
                try:
                    request = known = decode(request)
                except Exception as exc:  # any failure to parse is the caller's bytes
                    await _malformed(context, exc)
            response = await call(request, context)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            # A stream's responses were written, one by one: none is the answer.
            done(context, began, spanned, known, None if streaming else response, error)

    return of_its_kind(
        handler, handle, None if decode is not None else handler.request_deserializer
    )
