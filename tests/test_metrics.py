"""Live figures: each part of the engine serves Prometheus /metrics, and
what a user would check there is true. The services run in this process
(one page for the three), the worker and the tracker as processes with
pages of their own."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient

from orderengine.local import metrics_targets, ports
from orderengine.local.parts import check_free
from orderengine.observability.buckets import seconds_buckets
from orderengine.observability.metrics import MetricsEndpoint
from orderengine.observability.metrics_scrape import Samples, scrape, time_breakdown
from orderengine.settings import Settings
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.conftest import Processes, Services
from tests.helpers import eventually, statuses, watch_all

ORDERS = "orderengine.v1.OrderService"


@pytest.fixture
def endpoint() -> Any:
    """/metrics of this process: the in-process services'."""
    served = MetricsEndpoint.start("127.0.0.1", 0)
    yield served
    served.stop()


def submit(stub: order_service_pb2_grpc.OrderServiceStub, amount: str = "1") -> str:
    reply = stub.SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount=amount),
        timeout=10,
    )
    return str(reply.order.order_id)


def handled(samples: Samples, method: str, code: str, service: str = ORDERS) -> float:
    return samples.get(
        "grpc_server_handled_total",
        grpc_service=service,
        grpc_method=method,
        grpc_code=code,
        grpc_type="unary",
    )


def test_orders_driven_to_confirmed_show_on_every_part(
    services: Services, processes: Processes, endpoint: MetricsEndpoint
) -> None:
    worker = processes.with_metrics("worker")
    tracker = processes.with_metrics("tracker")
    before = scrape([endpoint.url])
    stub = services.orders()

    ids = [submit(stub) for _ in range(3)]
    with pytest.raises(grpc.RpcError) as refused:
        submit(stub, amount="-1")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for order_id in ids:
        assert statuses(watch_all(stub, order_id))[-1] == "CONFIRMED"

    # The services (this process): calls by method and code, the chain, quotes.
    here = scrape([endpoint.url])
    assert handled(here, "SubmitOrder", "OK") - handled(before, "SubmitOrder", "OK") == 3
    assert (
        handled(here, "SubmitOrder", "InvalidArgument")
        - handled(before, "SubmitOrder", "InvalidArgument")
    ) == 1
    # The refused order, by why: what an operator reads to tell push-back from bad input.
    assert (
        here.get("orderengine_submits_refused_total", reason="INVALID_FIELD")
        - before.get("orderengine_submits_refused_total", reason="INVALID_FIELD")
    ) == 1
    assert here.get("orderengine_submits_refused_total", reason="QUEUE_FULL") == before.get(
        "orderengine_submits_refused_total", reason="QUEUE_FULL"
    )
    submit_seconds = {"grpc_service": ORDERS, "grpc_method": "SubmitOrder"}
    assert (
        here.get("grpc_server_handling_seconds_count", **submit_seconds)
        - before.get("grpc_server_handling_seconds_count", **submit_seconds)
    ) == 4
    assert (
        here.get("orderengine_execution_seconds_count", commitment="processed")
        - before.get("orderengine_execution_seconds_count", commitment="processed")
    ) == 3
    # Each order's route quoted when routed; at submit, the first order's
    # price impact, which the two after it (no larger, within a second)
    # pass on unless the machine held them apart longer than that.
    quoted = here.get("orderengine_quote_seconds_count") - before.get(
        "orderengine_quote_seconds_count"
    )
    assert 3 + 1 <= quoted <= 3 + 3

    # Orders by status, from the database (read at most once a second), and the queue drained.
    def settled() -> Samples | None:
        now = scrape([endpoint.url])
        return now if now.get("orderengine_orders", status="CONFIRMED") == 3 else None

    now = eventually(settled, timeout=5)
    assert now.get("orderengine_orders", status="PENDING") == 0
    assert now.get("orderengine_orders", status="FAILED") == 0
    assert now.get("orderengine_queue_depth", queue="orders") == 0
    assert now.get("orderengine_queue_oldest_job_age_seconds", queue="orders") == 0

    # The worker moved each order through PENDING, ROUTING and ROUTED, with
    # one batch call of each kind per batch of orders (jobs queued together
    # are driven together, so one to three batches); the tracker confirmed them.
    driven = scrape([worker])
    for status in ("PENDING", "ROUTING", "ROUTED"):
        assert driven.get("orderengine_order_status_seconds_count", status=status) == 3, status
    quotes, swaps = (
        driven.get("grpc_client_handled_total", grpc_method=method, grpc_code="OK")
        for method in ("BatchGetQuotes", "BatchSubmitSwaps")
    )
    assert 1 <= quotes <= 3
    assert swaps == quotes
    confirmed = scrape([tracker])
    assert confirmed.get("orderengine_order_status_seconds_count", status="SUBMITTED") == 3
    assert confirmed.get("orderengine_execution_seconds_count", commitment="confirmed") == 3

    # What the benchmark prints, from the same pages: every stage has a time.
    breakdown = time_breakdown(scrape([endpoint.url, worker, tracker]))
    assert list(breakdown) == ["queue wait", "routing (quote)", "submit", "landing", "confirmation"]
    assert all(seconds is not None and 0 <= seconds < 10 for seconds in breakdown.values()), (
        breakdown
    )
    assert breakdown["queue wait"] and breakdown["routing (quote)"]


def test_watch_streams_cancels_and_refused_calls(
    services: Services, endpoint: MetricsEndpoint
) -> None:
    stub = services.orders()
    order_id = submit(stub)  # no worker: it stays PENDING
    before = scrape([endpoint.url])
    streams = before.get("orderengine_watch_streams")

    events: list[order_pb2.OrderEvent] = []
    watcher = threading.Thread(target=lambda: events.extend(watch_all(stub, order_id)))
    watcher.start()
    eventually(
        lambda: scrape([endpoint.url]).get("orderengine_watch_streams") == streams + 1, timeout=10
    )
    stub.CancelOrder(order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10)
    watcher.join(10)
    assert statuses(events) == ["PENDING", "CANCELLED"]
    watch_seconds = {"grpc_method": "WatchOrder", "grpc_type": "server_stream", "grpc_code": "OK"}

    def ended() -> Samples | None:
        # The server counts a call as it ends it: maybe just after the client has it all.
        now = scrape([endpoint.url])
        done = now.get("grpc_server_handled_total", **watch_seconds)
        return now if done > before.get("grpc_server_handled_total", **watch_seconds) else None

    after = eventually(ended, timeout=5)
    assert after.get("orderengine_watch_streams") == streams
    assert (
        after.get("orderengine_order_status_seconds_count", status="PENDING")
        - before.get("orderengine_order_status_seconds_count", status="PENDING")
    ) == 1
    assert (handled(after, "CancelOrder", "OK") - handled(before, "CancelOrder", "OK")) == 1
    assert (
        after.get("grpc_server_handled_total", **watch_seconds)
        - before.get("grpc_server_handled_total", **watch_seconds)
    ) == 1

    # A call refused before any handler (no API key) counts with its code.
    anonymous = order_service_pb2_grpc.OrderServiceStub(services.bare_channel("order"))
    with pytest.raises(grpc.RpcError):
        anonymous.GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10)
    # The server counts the call as it ends it, which may be just after the
    # client has its answer.
    eventually(
        lambda: (
            handled(scrape([endpoint.url]), "GetOrder", "Unauthenticated")
            - handled(after, "GetOrder", "Unauthenticated")
            == 1
        ),
        timeout=5,
    )
    eventually(
        lambda: scrape([endpoint.url]).get("orderengine_orders", status="CANCELLED") == 1, timeout=5
    )


def test_the_gateway_serves_metrics_on_its_own_port() -> None:
    from gateway.app import create_app

    reply = TestClient(create_app("127.0.0.1:1")).get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert "# TYPE grpc_client_handled_total counter" in reply.text


@pytest.mark.parametrize(
    ("raw", "port"), [("", None), ("off", None), ("OFF", None), ("0", 0), ("9101", 9101)]
)
def test_metrics_port_setting(monkeypatch: pytest.MonkeyPatch, raw: str, port: int | None) -> None:
    monkeypatch.setenv("METRICS_PORT", raw)
    assert Settings().metrics_port == port


def test_a_bad_metrics_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PORT", "nine")
    with pytest.raises(ValueError, match="METRICS_PORT"):
        Settings()
    with pytest.raises(ValueError, match="METRICS_PORT"):
        MetricsEndpoint.start("127.0.0.1", 70000)


def _part(name: str, *args: str) -> Any:
    return SimpleNamespace(name=name, args=["python", *args], env={})


def test_make_run_gives_each_part_its_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parts = [
        _part("OrderService", "-m", "order_service.main"),
        _part("gateway", "-m", "gateway.main"),
        _part("worker-1", "-m", "executor.main", "worker"),
        _part("worker-2", "-m", "executor.main", "worker"),
        _part("market flow", "-m", "orderengine.local.traders"),
    ]
    monkeypatch.setenv("METRICS_PORT", "0")
    targets = metrics_targets.assign(parts, "http://127.0.0.1:8080", "127.0.0.1")
    assert [t.part for t in targets] == ["OrderService", "gateway", "worker-1", "worker-2"]
    ports = [p.env.get("METRICS_PORT") for p in parts]
    assert ports[1] is None and ports[4] is None  # the gateway serves on its own port
    assert len({ports[0], ports[2], ports[3]}) == 3
    assert targets[1].url == "http://127.0.0.1:8080/metrics"
    assert targets[0].url == f"http://127.0.0.1:{ports[0]}/metrics"
    path = tmp_path / metrics_targets.TARGETS_FILE
    metrics_targets.write_targets(path, targets)
    assert metrics_targets.read_targets(path) == targets

    monkeypatch.setenv("METRICS_PORT", "off")
    assert (
        metrics_targets.assign(
            [_part("worker", "-m", "executor.main", "worker")], "http://127.0.0.1:8080", "127.0.0.1"
        )
        == []
    )


def _unclaimed_free_port() -> int:
    """A free port this process has neither given out nor claimed."""
    return next(p for p in range(20_000, 30_000) if ports.available("127.0.0.1", p))


def test_no_metrics_port_is_a_port_a_service_of_the_stack_is_to_bind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stack checks a service's port when it starts, and its server binds
    # it a moment later: in between, nothing listens on it.
    service = _unclaimed_free_port()
    check_free(f"127.0.0.1:{service}", "ORDER_SERVICE_ADDRESS")
    # A free port is picked at random: let the first pick be that one.
    picks = iter([service])
    pick = ports.random.randint
    monkeypatch.setattr(ports.random, "randint", lambda a, b: next(picks, None) or pick(a, b))
    monkeypatch.setenv("METRICS_PORT", "0")
    worker = _part("worker-1", "-m", "executor.main", "worker")
    metrics_targets.assign([worker], "http://127.0.0.1:8080", "127.0.0.1")
    assert int(worker.env["METRICS_PORT"]) != service
    # Counting up from METRICS_PORT, a service's port is skipped too.
    monkeypatch.setenv("METRICS_PORT", str(service))
    metrics_targets.assign([worker], "http://127.0.0.1:8080", "127.0.0.1")
    assert int(worker.env["METRICS_PORT"]) != service


def test_histogram_bounds_run_1_2_5_per_decade_from_low_to_high() -> None:
    assert seconds_buckets(0.0005, 10.0) == (
        *(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
        *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )
    assert seconds_buckets(0.3, 2.0) == (0.5, 1.0)
