"""A call's metadata: reading one value of it, and adding to an outgoing
call's, for the synchronous channels (``grpc.intercept_channel``) and for
grpc.aio channels, whose call details are different types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

# Health and reflection: open to every caller, and not an order's call.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Metadata = Iterable[tuple[str, Any]]


def metadata_value(metadata: Metadata | None, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def with_metadata(details: Any, extra: Iterable[tuple[str, str]]) -> Any:
    """Synchronous ``grpc.ClientCallDetails`` (a namedtuple) with ``extra`` added."""
    return details._replace(metadata=[*(details.metadata or ()), *extra])


def aio_with_metadata(
    details: grpc.aio.ClientCallDetails, extra: Iterable[tuple[str, str]]
) -> grpc.aio.ClientCallDetails:
    """``grpc.aio.ClientCallDetails`` with ``extra`` added."""
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in extra:
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )
