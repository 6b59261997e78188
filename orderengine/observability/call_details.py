"""Adding metadata to an outgoing call, for the synchronous channels
(``grpc.intercept_channel``) and for grpc.aio channels, whose call details
are different types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc


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
