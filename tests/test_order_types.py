"""Order types at submission: what SubmitOrder takes for limit and stop
orders, what it refuses (naming the field), and that a waiting order is
stored OPEN and never queued, and can be cancelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from redis import Redis

from orderengine.order_queue import QUEUED
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Services
from tests.helpers import Submit, eventually, field_violations, rejected, statuses, watch_all


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def sol_usdc(**fields: object) -> Submit:
    return Submit(input_token="SOL", output_token="USDC", amount="10", **fields)  # type: ignore[arg-type]


def test_a_limit_order_is_stored_open_with_its_minimum_and_not_queued(
    services: Services, redis: Redis
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    order = (
        services.orders()
        .SubmitOrder(
            sol_usdc(
                limit=order_pb2.LimitOrder(min_amount_out="1500.50"),
                expire_time=stamp(expires),
            ),
            timeout=10,
        )
        .order
    )
    assert order.status == order_pb2.ORDER_STATUS_OPEN
    assert order.WhichOneof("order_type") == "limit"
    assert order.limit.min_amount_out == "1500.5"
    assert order.expire_time.ToDatetime(tzinfo=UTC) == expires
    # Waiting, not queued: no worker may route it before its trigger.
    assert redis.hget(QUEUED, order.order_id) is None
    got = services.orders().GetOrder(
        order_service_pb2.GetOrderRequest(order_id=order.order_id), timeout=10
    )
    assert got.limit.min_amount_out == "1500.5" and got.status == order_pb2.ORDER_STATUS_OPEN
    assert got.last_sequence == 1


def test_a_stop_order_keeps_its_trigger_price_exactly(services: Services) -> None:
    order = (
        services.orders()
        .SubmitOrder(sol_usdc(stop=order_pb2.StopOrder(trigger_price="0140.1250")), timeout=10)
        .order
    )
    assert order.status == order_pb2.ORDER_STATUS_OPEN
    assert order.stop.trigger_price == "140.125"
    assert not order.HasField("expire_time")


def test_a_market_order_still_needs_no_order_type(services: Services, redis: Redis) -> None:
    order = services.orders().SubmitOrder(sol_usdc(), timeout=10).order
    assert order.status == order_pb2.ORDER_STATUS_PENDING
    # Queued right after its answer (the answer waits for the commit alone).
    eventually(lambda: redis.hget(QUEUED, order.order_id), timeout=5)
    explicit = (
        services.orders().SubmitOrder(sol_usdc(market=order_pb2.MarketOrder()), timeout=10).order
    )
    assert explicit.status == order_pb2.ORDER_STATUS_PENDING


def test_an_open_order_can_be_cancelled_once(services: Services) -> None:
    stub = services.orders()
    order = stub.SubmitOrder(
        sol_usdc(stop=order_pb2.StopOrder(trigger_price="100")), timeout=10
    ).order
    cancelled = stub.CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=order.order_id), timeout=10
    )
    assert cancelled.status == order_pb2.ORDER_STATUS_CANCELLED
    assert statuses(watch_all(stub, order.order_id)) == ["OPEN", "CANCELLED"]
    error = rejected(
        lambda: stub.CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order.order_id), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_resubmission_with_other_terms_is_another_order(services: Services) -> None:
    stub = services.orders()
    first = sol_usdc(limit=order_pb2.LimitOrder(min_amount_out="1500"), client_order_id="tp-1")
    assert not stub.SubmitOrder(first, timeout=10).already_exists
    assert stub.SubmitOrder(first, timeout=10).already_exists
    other = sol_usdc(limit=order_pb2.LimitOrder(min_amount_out="1600"), client_order_id="tp-1")
    assert rejected(lambda: stub.SubmitOrder(other, timeout=10)).code() == (
        grpc.StatusCode.ALREADY_EXISTS
    )


PAST = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit": order_pb2.LimitOrder(min_amount_out="")}, "limit.min_amount_out"),
        ({"limit": order_pb2.LimitOrder(min_amount_out="-5")}, "limit.min_amount_out"),
        # USDC has 6 decimals.
        ({"limit": order_pb2.LimitOrder(min_amount_out="1.0000001")}, "limit.min_amount_out"),
        ({"stop": order_pb2.StopOrder(trigger_price="")}, "stop.trigger_price"),
        ({"stop": order_pb2.StopOrder(trigger_price="0")}, "stop.trigger_price"),
        ({"stop": order_pb2.StopOrder(trigger_price="1e3")}, "stop.trigger_price"),
        ({"stop": order_pb2.StopOrder(trigger_price="0." + "0" * 18 + "1")}, "stop.trigger_price"),
        (
            {"stop": order_pb2.StopOrder(trigger_price="100"), "expire_time": stamp(PAST)},
            "expire_time",
        ),
        ({"expire_time": stamp(datetime.now(UTC) + timedelta(hours=1))}, "expire_time"),
        ({"sniper": order_pb2.SniperOrder(max_price="0")}, "sniper.max_price"),
        ({"sniper": order_pb2.SniperOrder(max_price="cheap")}, "sniper.max_price"),
        (
            {
                "limit": order_pb2.LimitOrder(min_amount_out="1"),
                "expire_time": stamp(datetime.now(UTC) + timedelta(days=400)),
            },
            "expire_time",
        ),
    ],
)
def test_bad_order_terms_are_refused_naming_the_field(
    services: Services, fields: dict[str, object], field: str
) -> None:
    error = rejected(lambda: services.orders().SubmitOrder(sol_usdc(**fields), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [field]
