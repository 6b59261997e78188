"""The gateway's waiting orders: limit and stop bodies, expireTime, what an
order and a quote show, cancel, and bad terms answered 400 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayServer, auth

BODY = {"inputToken": "SOL", "outputToken": "USDC", "amount": "10"}


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=15, headers=auth()) as client:
        yield client


def submit(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post("/api/orders", json={**BODY, **fields})


def test_a_limit_order_with_an_expiry_waits_open_and_is_cancelled(http: httpx.Client) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    reply = submit(
        http,
        limit={"minAmountOut": "1500"},
        expireTime=expires.isoformat().replace("+00:00", "Z"),
    )
    assert reply.status_code == 201, reply.text
    order_id = reply.json()["orderId"]
    order = http.get(f"/api/orders/{order_id}").json()
    assert order["status"] == "OPEN"
    assert order["orderType"] == "limit"
    assert order["limit"] == {"minAmountOut": "1500"}
    assert order["stop"] is None
    assert order["expireTime"] == expires.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    cancelled = http.delete(f"/api/orders/{order_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert http.delete(f"/api/orders/{order_id}").status_code == 409


def test_a_stop_order_and_a_market_order_show_their_types(http: httpx.Client) -> None:
    stop_id = submit(http, stop={"triggerPrice": "140"}).json()["orderId"]
    market_id = submit(http).json()["orderId"]
    stop = http.get(f"/api/orders/{stop_id}").json()
    assert (stop["orderType"], stop["stop"], stop["expireTime"]) == (
        "stop",
        {"triggerPrice": "140"},
        None,
    )
    market = http.get(f"/api/orders/{market_id}").json()
    assert (market["orderType"], market["limit"], market["stop"]) == ("market", None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit": {"minAmountOut": "-1"}}, "limit.minAmountOut"),
        ({"stop": {"triggerPrice": "abc"}}, "stop.triggerPrice"),
        ({"stop": {"triggerPrice": "1"}, "expireTime": "2020-01-01T00:00:00Z"}, "expireTime"),
        ({"stop": {"triggerPrice": "1"}, "expireTime": "tomorrow"}, "expireTime"),
        ({"expireTime": "2099-01-01T00:00:00Z"}, "expireTime"),
    ],
)
def test_bad_terms_are_400_naming_the_field(
    http: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    reply = submit(http, **fields)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == field


def test_limit_and_stop_together_are_refused(http: httpx.Client) -> None:
    reply = submit(http, limit={"minAmountOut": "1"}, stop={"triggerPrice": "1"})
    assert reply.status_code == 400
    assert "one of them at most" in reply.json()["error"]["message"]


def test_a_twap_order_shows_its_slices(http: httpx.Client) -> None:
    reply = submit(http, twap={"slices": 4, "interval": "30s"})
    assert reply.status_code == 201, reply.text
    order = http.get(f"/api/orders/{reply.json()['orderId']}").json()
    assert (order["orderType"], order["twap"]) == ("twap", {"slices": 4, "interval": "30s"})
    bad = submit(http, twap={"slices": 4, "interval": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "twap.interval"
    few = submit(http, twap={"slices": 1, "interval": "1s"})
    assert few.status_code == 400 and few.json()["error"]["field"] == "twap.slices"


def test_a_sniper_for_a_token_not_launched_yet_waits_open(http: httpx.Client) -> None:
    reply = submit(
        http, inputToken="USDC", outputToken="NEWTOKEN", amount="5", sniper={"maxPrice": "0.05"}
    )
    assert reply.status_code == 201, reply.text
    order = http.get(f"/api/orders/{reply.json()['orderId']}").json()
    assert (order["status"], order["orderType"], order["sniper"]) == (
        "OPEN",
        "sniper",
        {"maxPrice": "0.05"},
    )
    any_price = submit(http, inputToken="USDC", outputToken="NEWTOKEN", amount="5", sniper={})
    shown = http.get(f"/api/orders/{any_price.json()['orderId']}").json()
    assert (shown["orderType"], shown["sniper"]) == ("sniper", {"maxPrice": None})
    bad = submit(http, inputToken="USDC", outputToken="NEW TOKEN", amount="5", sniper={})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "outputToken"


def test_a_quote_shows_the_pairs_price(http: httpx.Client) -> None:
    reply = http.get(
        "/api/quote", params={"inputToken": "SOL", "outputToken": "USDC", "amount": "1"}
    )
    price = reply.json()["price"]
    # About 140 USDC a SOL in pools.toml; no swap's output beats its mid price.
    assert 130 < float(price) < 150
    assert float(reply.json()["route"]["amountOut"]) < float(price)
