"""A Python client of the order engine: OrderService over gRPC, blocking
(``Client``) or for asyncio (``AsyncClient``): submit, get, list, cancel,
quote, and a watch that resumes by itself. The messages it returns are the
generated ones of ``orderengine.v1``. docs/client.md shows how.

The names below are imported on first use, so that the modules that need
no gRPC (settings, keys, version: what the CLI's --help and the engine's
settings read) load without it."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from orderengine.client.version import VERSION

if TYPE_CHECKING:
    from orderengine.client.aio import AsyncClient
    from orderengine.client.blocking import Client
    from orderengine.client.keys import NoApiKey
    from orderengine.client.requests import Amount
    from orderengine.client.resumption import Resuming
    from orderengine.client.tls import Tls

__version__ = VERSION

_WHERE = {
    "AsyncClient": "orderengine.client.aio",
    "Client": "orderengine.client.blocking",
    "NoApiKey": "orderengine.client.keys",
    "Amount": "orderengine.client.requests",
    "Resuming": "orderengine.client.resumption",
    "Tls": "orderengine.client.tls",
}

__all__ = ["VERSION", "Amount", "AsyncClient", "Client", "NoApiKey", "Resuming", "Tls"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'orderengine.client' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
