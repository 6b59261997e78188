"""HTTP/2 keepalive, both sides from one policy: a client pings no more often
than the servers allow, so a server never answers a client's pings with
GOAWAY ("too_many_pings") and drops every call on the connection.

Why at all: a peer that vanishes without closing its connection (a killed
container, a cable, a NAT that forgot the flow) leaves a long WatchOrder
stream, or the next unary call, waiting on a dead socket. With pings every
10 s and 5 s to answer, a client notices a dead server within about 15 s
and reconnects (or picks another replica); a server notices a dead client
just as soon and frees its stream."""

from __future__ import annotations

from dataclasses import dataclass

Options = list[tuple[str, int]]


@dataclass(frozen=True)
class KeepalivePolicy:
    # A client pings an idle connection this often...
    client_ping_ms: int = 10_000
    # ...and takes it for dead when an answer takes longer than this.
    ping_timeout_ms: int = 5_000
    # A server refuses pings closer than this (half the client's interval,
    # so that timer jitter never makes an honest client look abusive).
    server_min_ping_interval_ms: int = 5_000
    # Pings closer than the minimum a server tolerates before GOAWAY.
    server_max_ping_strikes: int = 2
    # The server pings its own clients this often (dead gateways, dead CLIs).
    server_ping_ms: int = 10_000

    def __post_init__(self) -> None:
        if self.client_ping_ms < self.server_min_ping_interval_ms:
            raise ValueError("clients would ping faster than the servers allow")

    def _pinging(self, every_ms: int) -> Options:
        """What both sides do alike: ping this often, wait as long for the
        answer, with or without calls and data."""
        return [
            ("grpc.keepalive_time_ms", every_ms),
            ("grpc.keepalive_timeout_ms", self.ping_timeout_ms),
            # Also with no call open: a channel idle between calls still
            # learns that its server is gone before the next call needs it.
            ("grpc.keepalive_permit_without_calls", 1),
            # Unlimited pings while no data flows (an idle watch stream);
            # the default stops pinging after two.
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def client_options(self) -> Options:
        return self._pinging(self.client_ping_ms)

    def server_options(self) -> Options:
        return [
            *self._pinging(self.server_ping_ms),
            ("grpc.http2.min_ping_interval_without_data_ms", self.server_min_ping_interval_ms),
            ("grpc.http2.max_ping_strikes", self.server_max_ping_strikes),
        ]


KEEPALIVE = KeepalivePolicy()
