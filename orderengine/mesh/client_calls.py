"""What every call a channel of the engine makes carries and reports. On
grpc.aio channels, without grpc.aio client interceptors: its metadata (the caller's
key or the internal token, the current request id) and, for a unary call,
its metrics (metrics_grpc). An intercepted grpc.aio call runs the chain in
a task of its own, a coroutine and a copy of the call's details and
metadata per interceptor; here a call costs one tuple of metadata and, for
a unary call, one small awaitable. The tracing interceptor, when tracing
is on, still runs as grpc.aio's."""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Any

import grpc

from orderengine.observability import request_ids
from orderengine.observability.metrics_grpc import CLIENT_METHODS

Metadata = tuple[tuple[str, str], ...]


def _metadata(fixed: Metadata, given: Any) -> Metadata:
    """The channel's own metadata, the caller's, then the request id."""
    request_id = request_ids.REQUEST_ID.get()
    if given:
        fixed = (*fixed, *given)
    return (*fixed, (request_ids.HEADER, request_id)) if request_id else fixed


class _Measured:
    """A unary call, timed and counted once it is awaited (every caller in
    the engine awaits its calls); anything else is the call's own."""

    __slots__ = ("_began", "_call", "_figures")

    def __init__(self, call: Any, figures: Any, began: float) -> None:
        self._call = call
        self._figures = figures
        self._began = began

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            response = yield from self._call.__await__()
        except grpc.aio.AioRpcError as exc:
            self._figures.done(exc.code(), self._began)
            raise
        except BaseException:  # cancelled by our side
            self._figures.done(grpc.StatusCode.CANCELLED, self._began)
            raise
        self._figures.done(grpc.StatusCode.OK, self._began)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _UnaryUnary:
    __slots__ = ("_figures", "_fixed", "_inner")

    def __init__(self, inner: Any, method: str | bytes, fixed: Metadata) -> None:
        self._inner = inner
        self._fixed = fixed
        self._figures = CLIENT_METHODS.figures(method)

    def __call__(self, request: Any, *, metadata: Any = None, **options: Any) -> Any:
        began = time.perf_counter()
        call = self._inner(request, metadata=_metadata(self._fixed, metadata), **options)
        return _Measured(call, self._figures, began)


class _WithMetadata:
    """A streaming method: only its metadata."""

    __slots__ = ("_fixed", "_inner")

    def __init__(self, inner: Any, fixed: Metadata) -> None:
        self._inner = inner
        self._fixed = fixed

    def __call__(self, request: Any = None, *, metadata: Any = None, **options: Any) -> Any:
        return self._inner(request, metadata=_metadata(self._fixed, metadata), **options)


class ObservedChannel(grpc.aio.Channel):
    """A grpc.aio channel (``inner``) whose calls send ``metadata`` and the
    request id, and whose unary calls are counted and timed."""

    def __init__(self, inner: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self._inner = inner
        self._fixed: Metadata = tuple(metadata)

    # The serializers and options pass through untouched: only the metadata
    # (and, for unary calls, the figures) is ours.
    def unary_unary(self, method: str, *args: Any, **options: Any) -> Any:
        inner = self._inner.unary_unary(method, *args, **options)
        return _UnaryUnary(inner, method, self._fixed)

    def unary_stream(self, method: str, *args: Any, **options: Any) -> Any:
        return _WithMetadata(self._inner.unary_stream(method, *args, **options), self._fixed)

    def stream_unary(self, method: str, *args: Any, **options: Any) -> Any:
        return _WithMetadata(self._inner.stream_unary(method, *args, **options), self._fixed)

    def stream_stream(self, method: str, *args: Any, **options: Any) -> Any:
        return _WithMetadata(self._inner.stream_stream(method, *args, **options), self._fixed)

    async def close(self, grace: float | None = None) -> None:
        await self._inner.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._inner.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._inner.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._inner.channel_ready()

    async def __aenter__(self) -> ObservedChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self._inner.close(None)
        return None


class SyncCalls(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """The same for a synchronous channel, in one interceptor (each layer of
    ``grpc.intercept_channel`` copies the call's details and wraps its
    outcome): ``metadata`` and the request id on every call; unary calls,
    ``.future()`` ones too, timed and counted as each completes."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._fixed: Metadata = tuple(metadata)

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=_metadata(self._fixed, details.metadata))

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        figures = CLIENT_METHODS.figures(client_call_details.method)
        began = time.perf_counter()
        call = continuation(self._details(client_call_details), request)
        call.add_done_callback(lambda done: figures.done(done.code(), began))
        return call

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)
