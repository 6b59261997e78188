"""Who may call: API keys for OrderService's clients, a shared internal
token between the engine's own services. Each server checks with one
guard, in every call's wrapper before its servicer runs; each client adds
its metadata in one channel interceptor. Health and reflection stay open (they carry no orders).

Nothing here logs or echoes a key, a token or an authorization header."""

from __future__ import annotations

import asyncio
import hmac
import sys
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from typing import Any

import grpc

from orderengine.client.keys import AUTHORIZATION
from orderengine.client.keys import key_metadata as key_metadata
from orderengine.errors import ItemFailure
from orderengine.observability.call_details import Metadata, metadata_value
from orderengine.settings import Settings
from orderengine.store.api_keys import KeyCache

INTERNAL_TOKEN_HEADER = "x-internal-token"
# Services that answer anyone: they carry no orders and no prices.

# The owner of the API key of the call being handled; set by
# ApiKeyGuard before the servicer runs.
CALLER: ContextVar[str] = ContextVar("caller")


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


def caller() -> str:
    """The owner of the current call's API key (OrderService handlers only)."""
    return CALLER.get()


# -- servers ------------------------------------------------------------------


# What a guard decides from a call's metadata: go on (None), a refusal, or,
# when it must look further (a key not in the cache), that decision to await.
Verdict = ItemFailure | Awaitable[ItemFailure | None] | None


class Guard:
    """Decides from a call's metadata whether it may reach its handler.
    Consulted inside the call's one wrapper (orderengine.mesh.wrapped_handlers),
    before its request is decoded; the call's task is the handler's, so a
    context variable set by ``check`` is the handler's. Synchronous when it
    can be: most calls need no coroutine of their own for it."""

    def check(self, metadata: Metadata | None) -> Verdict:
        raise NotImplementedError


class ApiKeyGuard(Guard):
    """OrderService: ``authorization: Bearer <key>`` names the caller, whose
    owner the handlers read with ``caller()``; no key or a bad one is
    UNAUTHENTICATED."""

    def __init__(self, keys: KeyCache) -> None:
        self.keys = keys

    def check(self, metadata: Metadata | None) -> Verdict:
        key = bearer(metadata_value(metadata, AUTHORIZATION))
        if key is None:
            return _NO_KEY
        owner = self.keys.cached(key)
        if owner is None:
            return self._verified(key)
        CALLER.set(owner)
        return None

    async def _verified(self, key: str) -> ItemFailure | None:
        owner = await asyncio.to_thread(self.keys.verify, key)
        if owner is None:
            return _BAD_KEY
        CALLER.set(owner)
        return None


# The INTERNAL_TOKEN that docker-compose.yml, .env.example and the
# Kubernetes manifests ship, to be replaced: a secret everyone can read is
# none, so a process given it refuses to start (make run makes its own).
PLACEHOLDER_INTERNAL_TOKEN = "change-me-internal-token"


def refuse_placeholder_token(token: str) -> None:
    """Raises ValueError, naming the setting, when ``token`` is the placeholder."""
    if token == PLACEHOLDER_INTERNAL_TOKEN:
        raise ValueError(
            "INTERNAL_TOKEN is the placeholder shipped in the examples "
            f"({PLACEHOLDER_INTERNAL_TOKEN!r}); set a secret of your own, "
            "e.g. INTERNAL_TOKEN=$(openssl rand -hex 32)"
        )


def exit_on_placeholder_token(process: str) -> None:
    """At a process's start: exits, with the reason on standard error, when
    INTERNAL_TOKEN is the placeholder."""
    try:
        refuse_placeholder_token(Settings().internal_token)
    except ValueError as exc:
        sys.exit(f"{process}: {exc}")


class InternalTokenGuard(Guard):
    """QuoteService and ExecutionService: only the engine's own services,
    which send the shared token as ``x-internal-token`` (or ``authorization:
    Bearer``). No token is UNAUTHENTICATED, a wrong one PERMISSION_DENIED."""

    def __init__(self, token: str) -> None:
        if not token:
            raise RuntimeError(
                "INTERNAL_TOKEN is not set: internal services take calls only from the "
                "engine's own services, which must share that secret (make run makes one)"
            )
        refuse_placeholder_token(token)
        self._token = token.encode()

    def check(self, metadata: Metadata | None) -> Verdict:
        token = metadata_value(metadata, INTERNAL_TOKEN_HEADER) or bearer(
            metadata_value(metadata, AUTHORIZATION)
        )
        if not token:
            return _NO_TOKEN
        if not hmac.compare_digest(token.encode(), self._token):
            return _WRONG_TOKEN
        return None


_NO_KEY = ItemFailure(
    grpc.StatusCode.UNAUTHENTICATED,
    "missing API key: send the metadata 'authorization: Bearer <key>' "
    "(orderengine keys create NAME makes one)",
    "API_KEY_MISSING",
)
_BAD_KEY = ItemFailure(
    grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked API key", "API_KEY_INVALID"
)
_NO_TOKEN = ItemFailure(
    grpc.StatusCode.UNAUTHENTICATED,
    "this is an internal service: calls need the internal token",
    "INTERNAL_TOKEN_MISSING",
)
_WRONG_TOKEN = ItemFailure(
    grpc.StatusCode.PERMISSION_DENIED,
    "this is an internal service: the internal token is wrong",
    "INTERNAL_TOKEN_INVALID",
)


# -- clients ------------------------------------------------------------------


def _with_metadata(details: Any, extra: Sequence[tuple[str, str]]) -> Any:
    return details._replace(metadata=[*(details.metadata or ()), *extra])


class _AddMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
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


def token_metadata(token: str) -> list[tuple[str, str]]:
    return [(INTERNAL_TOKEN_HEADER, token)] if token else []


def with_metadata(channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> grpc.Channel:
    """``channel`` sending ``metadata`` on every call."""
    return grpc.intercept_channel(channel, _AddMetadata(metadata))
