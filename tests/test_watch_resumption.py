"""A watch that outlives its OrderService: the policy (orderengine.mesh.resumption)
and the CLI's ``watch`` through a real OrderService restart. (The gateway's
WebSocket: tests/test_gateway.py; replicas killed: tests/chaos/test_replicas.py.)"""

from __future__ import annotations

import threading
from typing import Any, cast

import grpc

from orderengine.cli.orders import resumed_events
from orderengine.mesh.auth import key_metadata
from orderengine.mesh.channels import ORDER_SERVICE, channel
from orderengine.mesh.resumption import FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS, Resumption
from orderengine.settings import Settings
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
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


class CountingStub:
    """The OrderService stub, noting each WatchOrder's after_sequence."""

    def __init__(self, stub: order_service_pb2_grpc.OrderServiceStub) -> None:
        self.stub = stub
        self.opened_after: list[int] = []

    def WatchOrder(
        self,
        request: order_service_pb2.WatchOrderRequest,  # the stub's name
        **kwargs: Any,
    ) -> Any:
        self.opened_after.append(request.after_sequence)
        return self.stub.WatchOrder(request, **kwargs)


def test_cli_watch_resumes_after_an_order_service_restart(services: Services) -> None:
    from order_service.main import create_order_server

    # The channel the CLI opens.
    opened = channel(
        services.address("order"), key_metadata(services.keys[OWNER]), service=ORDER_SERVICE
    )
    services.channels.append(opened)  # closed by the fixture
    orders = order_service_pb2_grpc.OrderServiceStub(opened)
    order = orders.SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
        timeout=10,
    ).order  # stays PENDING
    counting = CountingStub(orders)
    seen: list[order_pb2.OrderEvent] = []

    def follow() -> None:
        stub = cast(order_service_pb2_grpc.OrderServiceStub, counting)
        seen.extend(resumed_events(stub, order.order_id, 0, give_up_seconds=20))

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    eventually(lambda: len(seen) == 1)
    port = services.servers["order"].port
    # OrderService stops (its streams end with UNAVAILABLE) and comes back.
    services.loop.run(services.servers["order"].stop(0.5))
    services.servers["order"] = services.loop.run(
        create_order_server(f"127.0.0.1:{port}", Settings())
    )
    eventually(lambda: len(counting.opened_after) >= 2)
    # (Waits for the channel to reach the new server: CancelOrder is not retried.)
    orders.CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=order.order_id),
        timeout=10,
        wait_for_ready=True,
    )
    watcher.join(20)
    assert not watcher.is_alive()
    assert [(e.sequence, e.status) for e in seen] == [
        (1, order_pb2.ORDER_STATUS_PENDING),
        (2, order_pb2.ORDER_STATUS_CANCELLED),
    ]
    assert counting.opened_after[0] == 0 and set(counting.opened_after[1:]) == {1}
