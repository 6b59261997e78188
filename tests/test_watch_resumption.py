"""A watch that outlives its OrderService: the policy (orderengine.client.resumption)
and the client's ``watch()`` (the CLI's), blocking and asyncio, through a real
OrderService restart. (The gateway's WebSocket: tests/test_gateway.py;
replicas killed: tests/chaos/test_replicas.py.)"""

from __future__ import annotations

import asyncio
import threading

import grpc

from orderengine.client import AsyncClient, Client, Resuming
from orderengine.client.resumption import (
    FIRST_DELAY_SECONDS,
    MAX_DELAY_SECONDS,
    RESUMABLE,
    Resumption,
)
from orderengine.settings import Settings
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import OWNER, Services
from tests.helpers import eventually

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_resumes_with_back_off_until_away_too_long() -> None:
    clock = Clock()
    resumption = Resumption(5.0, clock)
    opened = resumption.opened()
    delays = []
    while (delay := resumption.ended(UNAVAILABLE, opened)) is not None:
        delays.append(delay)
        clock.now += delay
        opened = resumption.opened()
    assert delays[:4] == [FIRST_DELAY_SECONDS, 0.2, 0.4, 0.8]
    assert set(delays[4:]) == {MAX_DELAY_SECONDS}
    assert 5.0 <= sum(delays) < 5.0 + MAX_DELAY_SECONDS


def test_an_event_or_a_stream_that_lived_starts_the_clock_over() -> None:
    clock = Clock()
    resumption = Resumption(5.0, clock)
    assert resumption.ended(UNAVAILABLE, resumption.opened()) == FIRST_DELAY_SECONDS
    clock.now += 4.9
    opened = resumption.opened()
    resumption.served()  # an event came
    clock.now += 0.2
    assert resumption.ended(UNAVAILABLE, opened) == FIRST_DELAY_SECONDS
    # An idle stream open for minutes, then another outage: a new one.
    clock.now += 1.0
    opened = resumption.opened()
    clock.now += 300.0
    assert resumption.ended(UNAVAILABLE, opened) == FIRST_DELAY_SECONDS


def test_other_codes_end_the_watch() -> None:
    resumption = Resumption(5.0)
    for code in (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INTERNAL,
    ):
        assert resumption.ended(code, resumption.opened()) is None


def restart_order_service(services: Services) -> None:
    """OrderService stops (its streams end with UNAVAILABLE) and comes back
    on the same port."""
    from order_service.main import create_order_server

    port = services.servers["order"].port
    services.loop.run(services.servers["order"].stop(0.5))
    services.servers["order"] = services.loop.run(
        create_order_server(f"127.0.0.1:{port}", Settings())
    )


def cancel(services: Services, order_id: str) -> None:
    # Waits for the channel to reach the new server: CancelOrder is not retried.
    services.orders().CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10, wait_for_ready=True
    )


PENDING_THEN_CANCELLED = [
    (1, order_pb2.ORDER_STATUS_PENDING),
    (2, order_pb2.ORDER_STATUS_CANCELLED),
]


def test_client_watch_resumes_after_an_order_service_restart(services: Services) -> None:
    resumed: list[Resuming] = []
    seen: list[order_pb2.OrderEvent] = []
    with Client(services.address("order"), api_key=services.keys[OWNER]) as orders:
        order = orders.submit("SOL", "USDC", "1").order  # stays PENDING: no worker

        def follow() -> None:
            seen.extend(orders.watch(order.order_id, on_resume=resumed.append))

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        eventually(lambda: len(seen) == 1)
        restart_order_service(services)
        eventually(lambda: len(resumed) >= 1)
        cancel(services, order.order_id)
        watcher.join(20)
        assert not watcher.is_alive()
    # Every event once, in order, across the two streams; each stream after
    # the first opened after the one event seen.
    assert [(e.sequence, e.status) for e in seen] == PENDING_THEN_CANCELLED
    assert {notice.after_sequence for notice in resumed} == {1}
    assert {notice.code for notice in resumed} <= RESUMABLE


def test_async_client_watch_resumes_after_an_order_service_restart(services: Services) -> None:
    resumed: list[Resuming] = []

    async def follow() -> list[order_pb2.OrderEvent]:
        seen: list[order_pb2.OrderEvent] = []
        async with AsyncClient(services.address("order"), api_key=services.keys[OWNER]) as orders:
            order = (await orders.submit("SOL", "USDC", "1")).order
            async for event in orders.watch(order.order_id, on_resume=resumed.append):
                seen.append(event)
                if len(seen) == 1:
                    # The stream breaks while the watch waits here for its
                    # next turn; the cancel lands on the server back.
                    await asyncio.to_thread(restart_order_service, services)
                    await asyncio.to_thread(cancel, services, order.order_id)
        return seen

    seen = asyncio.run(asyncio.wait_for(follow(), 30))
    assert [(e.sequence, e.status) for e in seen] == PENDING_THEN_CANCELLED
    assert {notice.after_sequence for notice in resumed} == {1}
