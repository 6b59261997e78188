"""Orders that trickle in are driven together: a worker whose job is small
and alone waits DRIVE_LINGER_SECONDS for the jobs behind it; a backlog, or a
job already large, never waits. Real worker processes, services, Redis and
the database."""

from __future__ import annotations

import time
from datetime import datetime
from functools import partial

import pytest
from redis import Redis
from rq import Worker

from executor.driver.context import Context
from executor.driver.jobs import LINGER_BELOW, _queued_behind
from orderengine.observability.metrics_scrape import scrape
from orderengine.order_queue import enqueue_orders, order_queue
from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.store.changes import NewOrder
from orderengine.store.orders import OrderStore
from tests.conftest import OWNER, Processes, Services
from tests.helpers import SOL_USDC, eventually


def _routing_time(store: OrderStore, order_id: str) -> datetime | None:
    """When the order's first ROUTING was committed, once it was."""
    for event in store.events(order_id):
        if Status.from_proto(event.status) == Status.ROUTING:
            return event.event_time.ToDatetime()
    return None


def _worker_idle(redis: Redis) -> bool:
    """The one worker is up and waiting for a job."""
    return [w.get_state() for w in Worker.all(connection=redis)] == ["idle"]


@pytest.mark.parametrize("linger, driven_together", [("0.5", True), ("0", False)])
def test_orders_submitted_one_at_a_time_are_driven_together_within_the_linger(
    linger: str,
    driven_together: bool,
    services: Services,
    processes: Processes,
    store: OrderStore,
    redis: Redis,
) -> None:
    processes.env["DRIVE_LINGER_SECONDS"] = linger
    metrics = processes.with_metrics("worker")
    stub = services.orders()
    # A first order's drive, then the worker waits for the next job: the
    # trickle's first order is alone when it is taken.
    first = stub.SubmitOrder(SOL_USDC, timeout=10).order.order_id
    eventually(partial(_routing_time, store, first))
    eventually(partial(_worker_idle, redis))

    submitted: list[str] = []
    for _ in range(4):
        submitted.append(stub.SubmitOrder(SOL_USDC, timeout=10).order.order_id)
        time.sleep(0.05)
    times = [eventually(partial(_routing_time, store, i)) for i in submitted]

    # One transaction moves a drive's orders: one ROUTING time for all.
    assert (len(set(times)) == 1) is driven_together, times
    # The worker's figure says the same: the first order's drive, then one
    # for the four, or more.
    samples = scrape([metrics])
    assert samples.get("orderengine_drive_orders_sum") == 5
    assert (samples.get("orderengine_drive_orders_count") == 2) is driven_together


@pytest.mark.parametrize(
    "behind, taken, waits", [(0, 1, True), (1, 1, False), (0, LINGER_BELOW, False)]
)
def test_only_a_small_job_with_nothing_behind_it_waits(
    behind: int, taken: int, waits: bool, ctx: Context
) -> None:
    queued = [f"queued-{i}" for i in range(behind)]
    if queued:
        enqueue_orders(ctx.queue, queued)

    began = time.monotonic()
    orders, _ = _queued_behind(ctx, taken, linger=1.0)

    assert (time.monotonic() - began >= 1) is waits
    assert orders == queued


@pytest.mark.parametrize("at_once", [True, False])
def test_an_order_a_trigger_fired_is_driven_without_waiting(
    at_once: bool, services: Services, processes: Processes, store: OrderStore, redis: Redis
) -> None:
    """The trigger part queues what it fires ``at_once``: its moment is the
    price's, not worth an eighth of a slot of CPU."""
    processes.env["DRIVE_LINGER_SECONDS"] = "1"
    processes.worker()
    eventually(partial(_worker_idle, redis))
    row, _ = store.submit(
        NewOrder(
            owner=OWNER, input_token="SOL", output_token="USDC", amount_in=10**9, slippage_bps=50
        )
    )

    queued = time.monotonic()
    enqueue_orders(order_queue(redis, Settings().queue_name), [row.order_id], at_once=at_once)
    eventually(partial(_routing_time, store, row.order_id))

    assert (time.monotonic() - queued < 1) is at_once


@pytest.mark.parametrize("raw", ["-0.1", "2", "soon", "nan"])
def test_the_linger_is_seconds_from_0_to_1(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIVE_LINGER_SECONDS", raw)
    with pytest.raises(
        ValueError, match="DRIVE_LINGER_SECONDS must be a number of seconds from 0 to 1"
    ):
        Settings()
