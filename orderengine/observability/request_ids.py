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

HEADER = "x-request-id"
# What a caller's id may be: it ends up in log lines, so no spaces, no
# control characters, nothing long. Anything else is replaced by a new id.
WELL_FORMED = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

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
    if value and WELL_FORMED.fullmatch(value):
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
