"""The gateway's /metrics counts its HTTP requests by route template,
method and status, and times them, as prometheus-fastapi-instrumentator
names them; an order's id, an unknown path or an odd method never becomes
a series of its own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from orderengine.observability.metrics import exposition
from orderengine.observability.metrics_http import HttpFigures
from orderengine.observability.metrics_scrape import Samples, parse
from tests.conftest import GatewayServer, auth

UNKNOWN_ORDER = "00000000-0000-4000-8000-000000000000"
ORDER = {"inputToken": "SOL", "outputToken": "USDC", "amount": "1"}


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=15, headers=auth()) as client:
        yield client


def scraped(http: httpx.Client) -> Samples:
    return parse([http.get("/metrics").text])


def test_requests_are_counted_and_timed_by_route_method_and_status(http: httpx.Client) -> None:
    before = scraped(http)
    for _ in range(2):
        assert http.post("/api/orders", json=ORDER).status_code == 201
    order_id = http.post("/api/orders", json=ORDER).json()["orderId"]
    assert http.get(f"/api/orders/{order_id}").status_code == 200
    assert http.get(f"/api/orders/{UNKNOWN_ORDER}").status_code == 404
    assert http.post("/api/orders", json={**ORDER, "amount": "-1"}).status_code == 400
    assert http.get("/no/such/path").status_code == 404
    assert http.put("/api/orders", json=ORDER).status_code == 405
    after = scraped(http)

    def counted(**labels: str) -> float:
        return after.get("http_requests_total", **labels) - before.get(
            "http_requests_total", **labels
        )

    def timed(**labels: str) -> float:
        name = "http_request_duration_seconds_count"
        return after.get(name, **labels) - before.get(name, **labels)

    # Three accepted submits (the direct path counts as the route), one refused.
    assert counted(handler="/api/orders", method="POST", status="201") == 3
    assert counted(handler="/api/orders", method="POST", status="400") == 1
    assert timed(handler="/api/orders", method="POST") == 4
    # By the route's template, never the order's id.
    assert counted(handler="/api/orders/{order_id}", method="GET", status="200") == 1
    assert counted(handler="/api/orders/{order_id}", method="GET", status="404") == 1
    assert not [
        labels for (name, labels) in after.values if order_id in dict(labels).get("handler", "")
    ]
    # What no route serves, and a method the route does not take.
    assert counted(handler="none", method="GET", status="404") == 1
    assert counted(method="PUT", status="405") == 1
    # The latency histogram holds what it timed: a submit takes a moment.
    spent = after.get("http_request_duration_seconds_sum", handler="/api/orders") - before.get(
        "http_request_duration_seconds_sum", handler="/api/orders"
    )
    assert 0 < spent < 60


def test_a_method_http_does_not_have_is_one_series_whatever_it_is() -> None:
    """uvicorn's parser refuses such methods before the app; another server
    may not, and a client must not make series without end."""
    figures = HttpFigures()

    def other() -> float:
        return parse([exposition()[0].decode()]).get(
            "http_requests_total", handler="/teapot", method="other", status="405"
        )

    before = other()
    for method in ("BREW", "WHEN", "brew"):
        figures.record("/teapot", method, 405, 0.001)
    assert other() - before == 3
    assert not parse([exposition()[0].decode()]).get("http_requests_total", method="BREW")
