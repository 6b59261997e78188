"""Every channel the engine opens to one of its gRPC services: from one
service to another, from the gateway and the benchmark. They are dialed as
every client's (orderengine.client.dialing: the address forms, the
balancing over replicas, the retries, the keepalive, TLS); here they also
send a call's request id and report its metrics and spans
(docs/architecture.md, "Calls between services")."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from orderengine import observability
from orderengine.client.dialing import EXECUTION_SERVICE as EXECUTION_SERVICE
from orderengine.client.dialing import ORDER_SERVICE as ORDER_SERVICE
from orderengine.client.dialing import QUOTE_SERVICE as QUOTE_SERVICE
from orderengine.client.dialing import dial, open_aio_channel, open_channel
from orderengine.client.dialing import is_single_address as is_single_address
from orderengine.mesh.client_calls import ObservedChannel, SyncCalls

Metadata = Sequence[tuple[str, str]]

# BatchSubmitOrders metadata: each item's own request id, comma separated
# in item order, for its order's job to carry (the call has one request id,
# the x-request-id it sends; a gateway's batch gathers several callers').
ITEM_REQUEST_IDS = "x-item-request-ids"
# gRPC servers refuse, at random, a call whose metadata passes 8 KiB in all
# (grpc.max_metadata_size), and every call past 16 KiB: one call's item ids
# stay within this, leaving room for an API key (at most 512 characters),
# the call's request id and trace, and gRPC's own headers.
ITEM_REQUEST_IDS_MAX_CHARS = 6 * 1024


def channel(address: str, metadata: Metadata = (), *, service: str = "") -> grpc.Channel:
    """A channel to ``address`` (any form parse_target takes) sending
    ``metadata`` (a key or the internal token) on every call; ``service``
    (a full name) is the health status its replicas are picked by."""
    raw = open_channel(dial(address, service))
    return observability.traced(grpc.intercept_channel(raw, SyncCalls(metadata)))


def aio_channel(address: str, metadata: Metadata = (), *, service: str = "") -> grpc.aio.Channel:
    """The same for grpc.aio (create it inside the running loop)."""
    inner = open_aio_channel(
        dial(address, service), observability.aio_client_interceptors() or None
    )
    return ObservedChannel(inner, metadata)


def within_deadline(context: grpc.aio.ServicerContext, cap: float) -> float:
    """The timeout of a call made while handling ``context``: ``cap`` at
    most, and never past the deadline of the call being handled."""
    remaining = context.time_remaining()
    return cap if remaining is None else max(0.0, min(cap, remaining))
