"""Who may call: API keys for OrderService's clients, a shared internal
token between the engine's own services. Each server checks in one
interceptor, before any handler runs; each client adds its metadata in one
channel interceptor. Health and reflection stay open (they carry no orders).

Nothing here logs or echoes a key, a token or an authorization header."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from orderengine.errors import abort
from orderengine.mesh.wrapped_handlers import HandlerInterceptor, of_its_kind
from orderengine.store.api_keys import KeyCache

AUTHORIZATION = "authorization"
INTERNAL_TOKEN_HEADER = "x-internal-token"
# Services that answer anyone: they carry no orders and no prices.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# The owner of the API key of the call being handled; set by
# ApiKeyInterceptor before the servicer runs.
CALLER: ContextVar[str] = ContextVar("caller")

Metadata = Iterable[tuple[str, Any]]


def bearer(value: str | bytes | None) -> str | None:
    """The credential in ``Bearer <credential>``, or None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not value:
        return None
    scheme, _, credential = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def metadata_value(metadata: Metadata | None, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def caller() -> str:
    """The owner of the current call's API key (OrderService handlers only)."""
    return CALLER.get()


# -- servers ------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a call may not go on: answered before its handler runs."""

    code: grpc.StatusCode
    message: str
    reason: str


def _refused(handler: grpc.RpcMethodHandler, refusal: Refusal) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind that answers ``refusal`` and nothing else."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await abort(context, refusal.code, refusal.message, refusal.reason)

    return of_its_kind(handler, refuse)


class _Guarded(HandlerInterceptor):
    """Decides from the call's metadata, before its handler exists: an
    accepted call runs its own handler, unwrapped (no frame a call, nothing
    held by an open stream); a refused one a handler that only refuses.
    grpc.aio runs the interceptors and then the handler in one task per call,
    so a context variable set by ``gate`` is the handler's."""

    async def gate(self, metadata: Metadata | None) -> Refusal | None:
        raise NotImplementedError

    async def handler_for(self, details: grpc.HandlerCallDetails,
                          handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if details.method.startswith(OPEN_PREFIXES):
            return handler
        refusal = await self.gate(details.invocation_metadata)
        return handler if refusal is None else _refused(handler, refusal)


class ApiKeyInterceptor(_Guarded):
    """OrderService: ``authorization: Bearer <key>`` names the caller, whose
    owner the handlers read with ``caller()``; no key or a bad one is
    UNAUTHENTICATED."""

    def __init__(self, keys: KeyCache) -> None:
        self.keys = keys

    async def gate(self, metadata: Metadata | None) -> Refusal | None:
        key = bearer(metadata_value(metadata, AUTHORIZATION))
        if key is None:
            return Refusal(grpc.StatusCode.UNAUTHENTICATED,
                           "missing API key: send the metadata 'authorization: Bearer <key>' "
                           "(orderengine keys create NAME makes one)", "API_KEY_MISSING")
        owner = self.keys.cached(key)
        if owner is None:
            owner = await asyncio.to_thread(self.keys.verify, key)
        if owner is None:
            return Refusal(grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked API key",
                           "API_KEY_INVALID")
        CALLER.set(owner)
        return None


class InternalTokenInterceptor(_Guarded):
    """QuoteService and ExecutionService: only the engine's own services,
    which send the shared token as ``x-internal-token`` (or ``authorization:
    Bearer``). No token is UNAUTHENTICATED, a wrong one PERMISSION_DENIED."""

    def __init__(self, token: str) -> None:
        if not token:
            raise RuntimeError(
                "INTERNAL_TOKEN is not set: internal services take calls only from the "
                "engine's own services, which must share that secret (make run makes one)")
        self._token = token.encode()

    async def gate(self, metadata: Metadata | None) -> Refusal | None:
        token = metadata_value(metadata, INTERNAL_TOKEN_HEADER) or bearer(
            metadata_value(metadata, AUTHORIZATION))
        if not token:
            return Refusal(grpc.StatusCode.UNAUTHENTICATED,
                           "this is an internal service: calls need the internal token",
                           "INTERNAL_TOKEN_MISSING")
        if not hmac.compare_digest(token.encode(), self._token):
            return Refusal(grpc.StatusCode.PERMISSION_DENIED,
                           "this is an internal service: the internal token is wrong",
                           "INTERNAL_TOKEN_INVALID")
        return None


# -- clients ------------------------------------------------------------------


def _with_metadata(details: Any, extra: Sequence[tuple[str, str]]) -> Any:
    return details._replace(metadata=[*(details.metadata or ()), *extra])


class _AddMetadata(grpc.UnaryUnaryClientInterceptor,
                   grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor,
                   grpc.StreamStreamClientInterceptor):
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = list(metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_metadata(details, self.metadata), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_metadata(details, self.metadata), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(_with_metadata(details, self.metadata), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(_with_metadata(details, self.metadata), requests)


class _AioMetadata:
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = list(metadata)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        extra = grpc.aio.Metadata(*self.metadata)
        for key, value in details.metadata or ():
            extra.add(key, value)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, extra,
                                          details.credentials, details.wait_for_ready)


# grpc.aio files an interceptor under its first kind only: one class a kind.
class _AioUnaryUnary(_AioMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioUnaryStream(_AioMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


def key_metadata(key: str) -> list[tuple[str, str]]:
    return [(AUTHORIZATION, f"Bearer {key}")]


def token_metadata(token: str) -> list[tuple[str, str]]:
    return [(INTERNAL_TOKEN_HEADER, token)] if token else []


def with_metadata(channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> grpc.Channel:
    """``channel`` sending ``metadata`` on every call."""
    return grpc.intercept_channel(channel, _AddMetadata(metadata))


def aio_interceptors(metadata: Sequence[tuple[str, str]]) -> list[Any]:
    """For ``grpc.aio.*_channel(..., interceptors=...)``: sends ``metadata`` on every call."""
    return [_AioUnaryUnary(metadata), _AioUnaryStream(metadata)]
