"""The wallet over HTTP: GET /api/balances and POST /api/airdrop through the
gateway to OrderService and the chain, and what POST /api/orders answers for
an order beyond the wallet, each with its documented status and body."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from orderengine.store.api_keys import ApiKeys
from orderengine.store.orders import OrderStore
from tests.conftest import GatewayServer


@pytest.fixture
def http(gateway: GatewayServer, store: OrderStore) -> Iterator[httpx.Client]:
    """A client calling as a new owner, whose wallet nobody funded."""
    key, _ = ApiKeys(store.engine).create("dave")
    with httpx.Client(
        base_url=gateway.url, timeout=15, headers={"authorization": f"Bearer {key}"}
    ) as client:
        yield client


def test_an_airdrop_answers_the_balance_and_balances_list_every_token(http: httpx.Client) -> None:
    funded = http.post("/api/airdrop", json={"token": "USDC", "amount": 12.5, "requestId": "a"})
    assert funded.status_code == 200, funded.text
    assert funded.json() == {
        "balance": {"token": "USDC", "amount": "12.5", "decimals": 6},
        "duplicate": False,
    }
    again = http.post("/api/airdrop", json={"token": "USDC", "amount": "12.5", "requestId": "a"})
    assert again.json()["duplicate"] is True
    listed = http.get("/api/balances")
    assert listed.status_code == 200
    assert [(b["token"], b["amount"]) for b in listed.json()["balances"]] == [
        ("SOL", "0"),
        ("USDC", "12.5"),
        ("USDT", "0"),
        ("JUP", "0"),
        ("BONK", "0"),
        ("RAY", "0"),
    ]
    chosen = http.get("/api/balances", params={"token": ["usdc", "SOL"]})
    assert chosen.json() == {
        "balances": [
            {"token": "USDC", "amount": "12.5", "decimals": 6},
            {"token": "SOL", "amount": "0", "decimals": 9},
        ]
    }


@pytest.mark.parametrize(
    ("body", "status", "code", "field", "reason"),
    [
        ({"token": "SOL", "amount": "101"}, 400, "INVALID_ARGUMENT", "amount", "FAUCET_LIMIT"),
        ({"token": "DOGE", "amount": "1"}, 400, "INVALID_ARGUMENT", "token", "INVALID_FIELD"),
        ({"token": "SOL"}, 400, "INVALID_ARGUMENT", "amount", "INVALID_FIELD"),
    ],
)
def test_a_refused_airdrop_is_a_4xx_naming_the_field(
    http: httpx.Client, body: dict[str, str], status: int, code: str, field: str, reason: str
) -> None:
    reply = http.post("/api/airdrop", json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"], error["reason"]) == (code, field, reason)


def test_the_faucets_limit_per_owner_is_a_429(http: httpx.Client) -> None:
    # The default limits: 100 SOL a call, 1000 SOL an owner.
    for _ in range(10):
        assert http.post("/api/airdrop", json={"token": "SOL", "amount": "100"}).status_code == 200
    reply = http.post("/api/airdrop", json={"token": "SOL", "amount": "0.000000001"})
    assert reply.status_code == 429, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"], error["reason"]) == (
        "RESOURCE_EXHAUSTED",
        "amount",
        "FAUCET_LIMIT",
    )
    assert "it has given you 1000, so 0 more at most" in error["message"]


def test_an_order_beyond_the_wallet_is_a_409_naming_the_amount(http: httpx.Client) -> None:
    http.post("/api/airdrop", json={"token": "SOL", "amount": "2"})
    reply = http.post(
        "/api/orders",
        json={"inputToken": "SOL", "outputToken": "USDC", "amount": "2", "priorityFee": "0.001"},
    )
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"] == {
        "code": "FAILED_PRECONDITION",
        "message": "amount: the wallet holds 2 SOL, less than the order needs "
        "(2 SOL and 0.001005 SOL in fees); fund it with RequestAirdrop",
        "field": "amount",
        "reason": "INSUFFICIENT_FUNDS",
    }
    taken = http.post(
        "/api/orders",
        json={"inputToken": "SOL", "outputToken": "USDC", "amount": 1.9, "priorityFee": 0.001},
    )
    assert taken.status_code == 201, taken.text
    order = http.get(f"/api/orders/{taken.json()['orderId']}").json()
    assert (order["amount"], order["priorityFee"]) == ("1.9", "0.001")


def test_the_wallet_needs_the_api_key(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.url, timeout=15) as anonymous:
        assert anonymous.get("/api/balances").status_code == 401
        assert (
            anonymous.post("/api/airdrop", json={"token": "SOL", "amount": "1"}).status_code == 401
        )
