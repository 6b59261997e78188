"""One order through everything real: in-process gRPC services on free
ports, a worker and a tracker as processes, Redis and the database."""

from __future__ import annotations

import threading
from decimal import Decimal

from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Processes, Services
from tests.helpers import statuses, watch_all


def test_an_order_goes_to_confirmed_and_watchers_see_every_step(
    services: Services, engine: Processes
) -> None:
    stub = services.orders()
    reply = stub.SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount="10"),
        timeout=10,
    )
    order = reply.order
    assert order.status == order_pb2.ORDER_STATUS_PENDING
    assert order.amount == "10" and order.slippage_bps == 50

    early: list[order_pb2.OrderEvent] = []
    watcher = threading.Thread(target=lambda: early.extend(watch_all(stub, order.order_id)))
    watcher.start()
    watcher.join(30)
    late = watch_all(stub, order.order_id)

    expected = ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]
    assert statuses(early) == expected
    assert [e.sequence for e in early] == [1, 2, 3, 4, 5]
    assert late == early  # the late watcher gets the same history, once

    routed, submitted, confirmed = early[2], early[3], early[4]
    assert {q.pool_id for q in routed.quotes} == {"raydium-sol-usdc", "meteora-sol-usdc"}
    # The route gives at least the best venue (here more: it sells through USDT).
    assert Decimal(routed.route.amount_out) >= max(Decimal(q.amount_out) for q in routed.quotes)
    assert submitted.signature and confirmed.signature == submitted.signature
    assert confirmed.amount_out == routed.route.amount_out  # nothing else moved the pool

    stored = stub.GetOrder(order_service_pb2.GetOrderRequest(order_id=order.order_id))
    assert stored.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert stored.amount_out == confirmed.amount_out
    assert stored.last_sequence == 5
