"""When a WatchOrder stream breaks, open it again with ``after_sequence`` =
the last event seen: the one policy of the client's ``watch()`` (and so the
CLI's) and the gateway's WebSocket.

A stopping OrderService ends its streams with UNAVAILABLE, one whose grace
ran out cancels them, and a killed one shows as UNAVAILABLE: the channel
balances the new stream onto a replica still serving, or onto the same one
once it is back. Watching resumes after a short back-off, for as long as
OrderService has been away less than ``give_up_seconds``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

import grpc

from orderengine.v1 import order_pb2, order_service_pb2

RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 1.0
# A stream that stayed open this long was being served, even if no event
# came: the outage it ended with is a new one. (An unreachable OrderService
# fails a new stream at once.)
SERVED_SECONDS = 2.0


class Resumption:
    """The back-off and the give-up clock of one watch."""

    def __init__(self, give_up_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.give_up_seconds = give_up_seconds
        self._clock = clock
        self._away_since: float | None = None
        self._delay = FIRST_DELAY_SECONDS

    def opened(self) -> float:
        """Call when a stream opens; pass what it returns to ``ended``."""
        return self._clock()

    def served(self) -> None:
        """An event arrived: OrderService is there."""
        self._away_since = None
        self._delay = FIRST_DELAY_SECONDS

    def ended(self, code: grpc.StatusCode, opened_at: float) -> float | None:
        """The stream opened at ``opened_at`` ended with ``code``: seconds to
        wait before opening it again, or None to give up (not a code to
        resume on, or OrderService away for ``give_up_seconds``)."""
        if code not in RESUMABLE:
            return None
        now = self._clock()
        if now - opened_at >= SERVED_SECONDS:
            self.served()
        if self._away_since is None:
            self._away_since = now
        if now - self._away_since >= self.give_up_seconds:
            return None
        delay = self._delay
        self._delay = min(delay * 2, MAX_DELAY_SECONDS)
        return delay


@dataclass(frozen=True)
class Resuming:
    """What a watch tells its caller when its stream broke and it opens it
    again: the code the stream ended with, the sequence it resumes after,
    and the seconds it waits first."""

    code: grpc.StatusCode
    after_sequence: int
    delay: float


class Watching:
    """One watch's state across its streams, the same for a blocking loop
    and an asyncio one: the request that opens the next stream (after the
    last event seen), and what to do when one breaks."""

    def __init__(
        self,
        order_id: str,
        after_sequence: int,
        give_up_seconds: float,
        on_resume: Callable[[Resuming], None] | None = None,
    ) -> None:
        self.order_id = order_id
        self.after_sequence = after_sequence
        self._resumption = Resumption(give_up_seconds)
        self._on_resume = on_resume
        self._opened_at = 0.0

    def request(self) -> order_service_pb2.WatchOrderRequest:
        """What opens the next stream (call as it opens)."""
        self._opened_at = self._resumption.opened()
        return order_service_pb2.WatchOrderRequest(
            order_id=self.order_id, after_sequence=self.after_sequence
        )

    def seen(self, event: order_pb2.OrderEvent) -> None:
        self._resumption.served()
        self.after_sequence = event.sequence

    def relayed(self, stream: Iterable[order_pb2.OrderEvent]) -> Iterator[order_pb2.OrderEvent]:
        """A blocking stream's events, each noted as seen."""
        for event in stream:
            self.seen(event)
            yield event

    async def relayed_async(
        self, stream: AsyncIterable[order_pb2.OrderEvent]
    ) -> AsyncIterator[order_pb2.OrderEvent]:
        """An asyncio stream's events, each noted as seen."""
        async for event in stream:
            self.seen(event)
            yield event

    def broken(self, error: grpc.RpcError) -> float:
        """The stream ended with ``error``: seconds to wait before the next;
        ``error`` raised again when the watch may not go on."""
        code = error.code()
        delay = self._resumption.ended(code, self._opened_at)
        if delay is None:
            raise error
        if self._on_resume is not None:
            self._on_resume(Resuming(code, self.after_sequence, delay))
        return delay
