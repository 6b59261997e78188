"""What one client may hold of the gateway's connections.

Uvicorn bounds the idle time between requests (timeout_keep_alive) but not
the time a client takes to send a request's headers: its keep-alive timer
is reset by every byte, so a client trickling one header line every few
seconds (slowloris) holds its connection for ever, and enough of them use
up the process's file descriptors. ``guarded`` wraps uvicorn's HTTP protocol
(h11, or httptools when installed: only what both share is used) so that

- a connection must deliver a request's line and headers within
  ``header_seconds`` of opening or of its previous response, else it is
  closed (a request being answered, and a WebSocket, are not timed);
- past ``max_connections`` open connections (HTTP and WebSocket), a new one
  is answered 503 with the error body and closed at once, so the process
  never runs out of descriptors and the accept loop never fails.

``connection_cap`` keeps that cap within the process's descriptor limit,
and ``RepeatLimit`` bounds what the event loop logs if accepting fails
anyway: Python 3.11's loop then logs a traceback per pending connection,
and schedules as many retries, each of which logs again at shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger(__name__)

# Descriptors the process needs besides client connections: the listener,
# the channel to OrderService, logs, the event loop's own.
RESERVED_DESCRIPTORS = 64
# Uvicorn's listen backlog. The event loop accepts up to this many pending
# connections in one go before any of them reaches connection_made (and the
# cap), so a burst holds that many descriptors beyond the cap.
BACKLOG = 2048

TOO_MANY_CONNECTIONS = (
    "the gateway holds as many connections as it may (GATEWAY_MAX_CONNECTIONS); try again shortly"
)


def _unavailable_response() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "UNAVAILABLE",
                "message": TOO_MANY_CONNECTIONS,
                "field": None,
                "reason": "TOO_MANY_CONNECTIONS",
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


UNAVAILABLE_RESPONSE = _unavailable_response()


def guarded(
    header_seconds: float, max_connections: int, base: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """Uvicorn's HTTP protocol ``base`` with a header deadline and a cap on
    open connections; pass it as uvicorn's ``http``."""

    class Guarded(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None
        # The request in progress when the deadline was set: the same one
        # when it fires means no new request's headers came meanwhile.
        _waiting_after: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(UNAVAILABLE_RESPONSE)  # type: ignore[attr-defined]
                transport.close()
                return
            self._wait_for_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_deadline()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()

        def _wait_for_headers(self) -> None:
            self._cancel_deadline()
            self._waiting_after = self.cycle
            self._deadline = self.loop.call_later(header_seconds, self._headers_late)

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _headers_late(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket
            cycle = self.cycle
            if cycle is self._waiting_after and (cycle is None or cycle.response_complete):
                self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def connection_cap(wanted: int) -> int:
    """``wanted`` connections, or fewer when even the hard descriptor limit
    cannot hold them: the soft limit is raised as far as needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + BACKLOG + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    cap = max(soft - BACKLOG - RESERVED_DESCRIPTORS, 1)
    log.warning(
        "GATEWAY_MAX_CONNECTIONS %d is more than this process's file descriptor "
        "limit (%d) allows; holding at most %d connections",
        wanted,
        soft,
        cap,
    )
    return cap


class RepeatLimit(logging.Filter):
    """At most one record with the same first line per ``interval`` seconds;
    the next one let through says how many were left out."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        # first line -> (when one was last let through, how many left out since)
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg).partition("\n")[0]
        now = time.monotonic()
        last, dropped = self._seen.get(key, (-self.interval, 0))
        if now - last < self.interval:
            self._seen[key] = (last, dropped + 1)
            return False
        if len(self._seen) > 1000:  # distinct lines must not grow it without end
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg}\n({dropped} more like this in {now - last:.0f}s)"
        return True
