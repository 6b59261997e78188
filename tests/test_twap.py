"""TWAP orders: the amount in equal slices, one every interval, each a
market order of its own; one event per slice with the amount filled so far,
a final total; a cancel mid-way keeps what was filled and starts no more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from redis.asyncio import Redis as AsyncRedis

from executor.driver.context import Context
from executor.triggers.engine import Triggers
from executor.triggers.twap import slice_id
from orderengine.amounts import parse_amount
from orderengine.order_types import slice_amounts
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.models import StoredOrder
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Processes, Services
from tests.helpers import Submit, field_violations, rejected


def twap(services: Services, amount: str, slices: int, interval: timedelta) -> order_pb2.Order:
    every = Duration()
    every.FromTimedelta(interval)
    request = Submit(
        input_token="SOL",
        output_token="USDC",
        amount=amount,
        twap=order_pb2.TwapOrder(slices=slices, interval=every),
    )
    return services.orders().SubmitOrder(request, timeout=10).order


def run_until(
    ctx: Context,
    redis_url: str,
    order_id: str,
    done: str,
    act_after: int = 0,
    act: Callable[[], object] | None = None,
) -> None:
    """Steps a trigger part until the order is ``done`` (a status), doing
    ``act`` once after ``act_after`` slices were recorded."""

    async def go() -> None:
        market = AsyncRedis.from_url(redis_url)
        triggers = Triggers(ctx, market)
        acted = act is None
        deadline = time.monotonic() + 20
        try:
            await triggers.start()
            while time.monotonic() < deadline:
                await triggers.step(20)
                row = ctx.store.get(order_id)
                assert row is not None
                if act is not None and not acted and row.attempt - 1 >= act_after:
                    act()
                    acted = True
                if row.status == done:
                    # A few more rounds: nothing may start after the end.
                    for _ in range(5):
                        await triggers.step(20)
                    return
            raise AssertionError(f"order {order_id} never became {done}")
        finally:
            await market.aclose()

    asyncio.run(go())


def slices_of(ctx: Context, order: order_pb2.Order, count: int) -> list[StoredOrder | None]:
    keys = [("alice", slice_id(order.order_id, n)) for n in range(1, count + 1)]
    found = ctx.store.by_client_ids(set(keys))
    return [found.get(key) for key in keys]


def test_slices_are_equal_and_the_last_takes_the_rest() -> None:
    assert slice_amounts(10, 3) == [3, 3, 4]
    assert slice_amounts(9, 3) == [3, 3, 3]


def test_a_twap_runs_each_slice_as_a_market_order_and_totals_them(
    services: Services, engine: Processes, ctx: Context, redis_url: str
) -> None:
    started = time.monotonic()
    order = twap(services, "3", 3, timedelta(milliseconds=300))
    assert order.status == order_pb2.ORDER_STATUS_OPEN
    assert order.twap.slices == 3 and order.twap.interval.ToMilliseconds() == 300
    run_until(ctx, redis_url, order.order_id, Status.CONFIRMED)
    # The third slice is not due before two intervals have passed.
    assert time.monotonic() - started >= 0.6

    children = slices_of(ctx, order, 4)
    assert children[3] is None  # three slices, no fourth
    confirmed = [c for c in children[:3] if c is not None and c.status == Status.CONFIRMED]
    assert [c.amount_in for c in confirmed] == [10**9] * 3  # 1 SOL each
    outs = [c.amount_out or 0 for c in confirmed]

    events = ctx.store.events(order.order_id)
    assert [Status.from_proto(e.status).value for e in events] == ["OPEN"] * 3 + ["CONFIRMED"]
    assert [e.reason_code for e in events[1:]] == [Reason.SLICE_FILLED] * 3
    filled = [parse_amount(e.amount_out, 6) for e in events[1:]]
    assert filled == [outs[0], outs[0] + outs[1], sum(outs)]
    final = ctx.store.get(order.order_id)
    assert final is not None and final.amount_out == sum(outs)


def test_a_twap_cancelled_mid_way_keeps_what_was_filled_and_starts_no_more(
    services: Services, engine: Processes, ctx: Context, redis_url: str
) -> None:
    order = twap(services, "4", 4, timedelta(milliseconds=400))

    def cancel() -> None:
        services.orders().CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order.order_id), timeout=10
        )

    run_until(ctx, redis_url, order.order_id, Status.CANCELLED, act_after=1, act=cancel)
    children = slices_of(ctx, order, 4)
    assert children[0] is not None and children[0].status == Status.CONFIRMED
    # The cancel came before the second slice was due: it never started.
    assert children[1:] == [None, None, None]
    events = ctx.store.events(order.order_id)
    assert [Status.from_proto(e.status).value for e in events] == ["OPEN", "OPEN", "CANCELLED"]
    assert parse_amount(events[1].amount_out, 6) == children[0].amount_out


@pytest.mark.parametrize(
    ("slices", "interval", "field"),
    [
        (1, timedelta(seconds=1), "twap.slices"),
        (1001, timedelta(seconds=1), "twap.slices"),
        (2, timedelta(milliseconds=50), "twap.interval"),
        (2, timedelta(days=2), "twap.interval"),
    ],
)
def test_bad_twap_terms_are_refused_naming_the_field(
    services: Services, slices: int, interval: timedelta, field: str
) -> None:
    error = rejected(lambda: twap(services, "1", slices, interval))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [field]
