"""Wallets through OrderService: GetBalances, RequestAirdrop within the
faucet's limits, SubmitOrder refusing an order its wallet cannot pay for,
and a landed order moving the wallet by its input, its output and its fees.
Real services over gRPC, a real worker and tracker where orders land."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import grpc
import pytest
from redis import Redis

from executor.chain.wallets import wallet_key
from order_service.wallets import KEPT_SECONDS
from orderengine.store.api_keys import ApiKeys
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.conftest import OWNER, Processes, Services
from tests.helpers import (
    PLENTY,
    Submit,
    details,
    field_violations,
    fund,
    item_error_of,
    rejected,
    watch_all,
)

Balances = order_service_pb2.GetBalancesRequest
Airdrop = order_service_pb2.RequestAirdropRequest


@pytest.fixture
def small_faucet(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A faucet giving at most 2 SOL and 100 USDC a call, 3 SOL and 100 USDC
    an owner, and nothing else (request before services)."""
    monkeypatch.setenv("FAUCET_MAX_PER_CALL", "SOL=2,USDC=100")
    monkeypatch.setenv("FAUCET_MAX_PER_OWNER", "SOL=3,USDC=100")


@pytest.fixture
def carol(
    services: Services, store: OrderStore
) -> Iterator[order_service_pb2_grpc.OrderServiceStub]:
    """A new owner, whose wallet nobody funded."""
    key, _ = ApiKeys(store.engine).create("carol")
    yield order_service_pb2_grpc.OrderServiceStub(services.channel("order", key))


def balances(stub: order_service_pb2_grpc.OrderServiceStub, *tokens: str) -> dict[str, str]:
    reply = stub.GetBalances(Balances(tokens=tokens), timeout=10)
    return {b.token: b.amount for b in reply.balances}


# -- GetBalances ---------------------------------------------------------------------------


def test_a_new_wallet_holds_nothing_of_every_token(
    carol: order_service_pb2_grpc.OrderServiceStub,
) -> None:
    reply = carol.GetBalances(Balances(), timeout=10)
    assert [(b.token, b.amount, b.decimals) for b in reply.balances] == [
        ("SOL", "0", 9),
        ("USDC", "0", 6),
        ("USDT", "0", 6),
        ("JUP", "0", 6),
        ("BONK", "0", 5),
        ("RAY", "0", 6),
    ]


def test_balances_are_the_callers_and_may_be_asked_for_by_token(services: Services) -> None:
    assert balances(services.orders()) == PLENTY
    assert list(balances(services.orders(), "usdc", "SOL").items()) == [
        ("USDC", PLENTY["USDC"]),
        ("SOL", PLENTY["SOL"]),
    ]
    error = rejected(lambda: services.orders().GetBalances(Balances(tokens=["DOGE"]), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).startswith("tokens: unknown token 'DOGE'")
    assert field_violations(error) == ["tokens"]


# -- RequestAirdrop ------------------------------------------------------------------------


def test_an_airdrop_credits_the_callers_wallet_once_per_request_id(
    small_faucet: None, carol: order_service_pb2_grpc.OrderServiceStub
) -> None:
    first = carol.RequestAirdrop(Airdrop(token="SOL", amount="1.5", request_id="r1"), timeout=10)
    again = carol.RequestAirdrop(Airdrop(token="SOL", amount="1.5", request_id="r1"), timeout=10)
    assert (first.balance.token, first.balance.amount, first.duplicate) == ("SOL", "1.5", False)
    assert (again.balance.amount, again.duplicate) == ("1.5", True)
    # Without a request id every call is an airdrop of its own.
    carol.RequestAirdrop(Airdrop(token="sol", amount="0.5"), timeout=10)
    carol.RequestAirdrop(Airdrop(token="USDC", amount="100"), timeout=10)
    assert balances(carol, "SOL", "USDC", "JUP") == {"SOL": "2", "USDC": "100", "JUP": "0"}


@pytest.mark.parametrize(
    ("request_fields", "code", "field", "reason", "words"),
    [
        ({"token": "SOL", "amount": "2.000000001"}, "INVALID_ARGUMENT", "amount", "FAUCET_LIMIT",
         "the faucet gives at most 2 SOL a call"),
        ({"token": "JUP", "amount": "1"}, "INVALID_ARGUMENT", "token", "INVALID_FIELD",
         "the faucet gives no JUP"),
        ({"token": "DOGE", "amount": "1"}, "INVALID_ARGUMENT", "token", "INVALID_FIELD",
         "unknown token"),
        ({"token": "SOL", "amount": "0"}, "INVALID_ARGUMENT", "amount", "INVALID_FIELD",
         "greater than zero"),
        ({"token": "SOL", "amount": "1", "request_id": "x\u202e"}, "INVALID_ARGUMENT",
         "request_id", "INVALID_FIELD", "U+202E"),
    ],
)  # fmt: skip
def test_a_refused_airdrop_names_the_field_and_gives_nothing(
    small_faucet: None,
    carol: order_service_pb2_grpc.OrderServiceStub,
    request_fields: dict[str, str],
    code: str,
    field: str,
    reason: str,
    words: str,
) -> None:
    error = rejected(lambda: carol.RequestAirdrop(Airdrop(**request_fields), timeout=10))
    found = item_error_of(error)
    assert (error.code().name, found.field, found.reason) == (code, field, reason)
    assert details(error).startswith(f"{field}:") and words in details(error)
    assert set(balances(carol).values()) == {"0"}


def test_the_faucet_gives_one_owner_at_most_its_limit_in_all(
    small_faucet: None, services: Services, carol: order_service_pb2_grpc.OrderServiceStub
) -> None:
    carol.RequestAirdrop(Airdrop(token="SOL", amount="2"), timeout=10)
    error = rejected(lambda: carol.RequestAirdrop(Airdrop(token="SOL", amount="1.1"), timeout=10))
    found = item_error_of(error)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (found.field, found.reason) == ("amount", "FAUCET_LIMIT")
    assert found.metadata["limit"] == "FAUCET_MAX_PER_OWNER"
    assert "it has given you 2, so 1 more at most" in details(error)
    assert carol.RequestAirdrop(Airdrop(token="SOL", amount="1"), timeout=10).balance.amount == "3"
    # The conftest's owner was funded without the faucet: its limit is whole.
    reply = services.orders().RequestAirdrop(Airdrop(token="SOL", amount="2"), timeout=10)
    assert reply.balance.amount == "100000002"


# -- SubmitOrder against the wallet ---------------------------------------------------------


def test_an_order_beyond_the_wallet_is_refused_naming_amount_and_stores_nothing(
    carol: order_service_pb2_grpc.OrderServiceStub, store: OrderStore, redis_url: str
) -> None:
    # 10 SOL and the 5,000-lamport fee: 10.000005 SOL.
    fund(redis_url, "carol", {"SOL": "10.000004999"})
    error = rejected(
        lambda: carol.SubmitOrder(Submit(input_token="SOL", output_token="USDC", amount="10"))
    )
    found = item_error_of(error)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (found.field, found.reason) == ("amount", "INSUFFICIENT_FUNDS")
    assert dict(found.metadata) == {
        "token": "SOL",
        "balance": "10.000004999",
        "required": "10.000005",
    }
    assert details(error) == (
        "amount: the wallet holds 10.000004999 SOL, less than the order needs "
        "(10 SOL and 0.000005 SOL in fees); fund it with RequestAirdrop"
    )
    assert store.list_page("carol", 10) == ([], "")
    fund(redis_url, "carol", {"SOL": "0.000000001"})
    accepted = carol.SubmitOrder(Submit(input_token="SOL", output_token="USDC", amount="10"))
    assert accepted.order.status == order_pb2.ORDER_STATUS_PENDING


def test_an_order_of_another_token_needs_it_and_sol_for_the_fees(
    carol: order_service_pb2_grpc.OrderServiceStub, redis_url: str
) -> None:
    fund(redis_url, "carol", {"USDC": "100", "SOL": "0.000104999"})
    short = rejected(
        lambda: carol.SubmitOrder(Submit(input_token="USDC", output_token="SOL", amount="100.5"))
    )
    assert item_error_of(short).field == "amount"
    assert "holds 100 USDC, less than the order needs (100.5 USDC)" in details(short)
    # The fees: 5,000 lamports and a priority fee of 100,000.
    fees = rejected(
        lambda: carol.SubmitOrder(
            Submit(input_token="USDC", output_token="SOL", amount="100", priority_fee="0.0001")
        )
    )
    found = item_error_of(fees)
    assert (found.field, found.reason) == ("priority_fee", "INSUFFICIENT_FUNDS")
    assert "holds 0.000104999 SOL, less than the order's fees (0.000105 SOL" in details(fees)
    order = carol.SubmitOrder(
        Submit(input_token="USDC", output_token="SOL", amount="100", priority_fee="0.000099999")
    ).order
    assert order.priority_fee == "0.000099999"


@pytest.mark.parametrize(
    ("fee", "words"), [("1.000000001", "at most 1 SOL"), ("-1", "positive decimal")]
)
def test_a_bad_priority_fee_is_refused_naming_it(services: Services, fee: str, words: str) -> None:
    request = Submit(input_token="SOL", output_token="USDC", amount="1", priority_fee=fee)
    error = rejected(lambda: services.orders().SubmitOrder(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["priority_fee"] and words in details(error)


def test_a_stored_order_is_answered_again_though_its_wallet_is_empty_now(
    carol: order_service_pb2_grpc.OrderServiceStub, redis_url: str, redis: Redis
) -> None:
    """Resending is always safe: a resubmission gets its order back even
    once the wallet no longer holds what it needs."""
    fund(redis_url, "carol", {"SOL": "1.00001"})
    request = Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="once")
    first = carol.SubmitOrder(request, timeout=10)
    redis.hset(wallet_key("carol"), "SOL", "0")  # spent, as by a landing
    again = carol.SubmitOrder(request, timeout=10)
    assert (again.order.order_id, again.already_exists) == (first.order.order_id, True)
    # The id reused for another order is that error still, not the wallet's.
    bigger = Submit(input_token="SOL", output_token="USDC", amount="2", client_order_id="once")
    assert rejected(lambda: carol.SubmitOrder(bigger, timeout=10)).code() == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    fresh = Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="twice")
    assert rejected(lambda: carol.SubmitOrder(fresh, timeout=10)).code() == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


def test_a_batch_refuses_only_the_orders_beyond_the_wallet(
    carol: order_service_pb2_grpc.OrderServiceStub, redis_url: str
) -> None:
    fund(redis_url, "carol", {"SOL": "3"})
    items = [
        Submit(input_token="SOL", output_token="USDC", amount="2"),
        Submit(input_token="SOL", output_token="USDC", amount="3"),
        # Each is checked against the balance alone: this one fits too.
        Submit(input_token="SOL", output_token="USDC", amount="2.5"),
    ]
    results = carol.BatchSubmitOrders(
        order_service_pb2.BatchSubmitOrdersRequest(requests=items), timeout=10
    ).results
    assert [r.WhichOneof("result") for r in results] == ["response", "error", "response"]
    assert (results[1].error.field, results[1].error.reason) == ("amount", "INSUFFICIENT_FUNDS")


def test_without_the_chain_a_submit_is_unavailable_and_stores_nothing(
    services: Services, store: OrderStore
) -> None:
    services.loop.run(services.servers["execution"].stop(0))
    error = rejected(
        lambda: services.orders().SubmitOrder(
            Submit(input_token="SOL", output_token="USDC", amount="1"), timeout=20
        )
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert item_error_of(error).reason == "WALLETS_UNAVAILABLE"
    assert store.list_page(OWNER, 10) == ([], "")
    balance = rejected(lambda: services.orders().GetBalances(Balances(), timeout=20))
    assert balance.code() == grpc.StatusCode.UNAVAILABLE


# -- Landed orders move the wallet ----------------------------------------------------------


def test_a_confirmed_order_moves_its_input_output_and_fees(
    carol: order_service_pb2_grpc.OrderServiceStub, engine: Processes, redis_url: str
) -> None:
    fund(redis_url, "carol", {"SOL": "12", "USDC": "3"})
    order = carol.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="10", priority_fee="0.001"),
        timeout=10,
    ).order
    events = watch_all(carol, order.order_id, timeout=60)
    confirmed = events[-1]
    assert confirmed.status == order_pb2.ORDER_STATUS_CONFIRMED, events[-1]
    held = balances(carol, "SOL", "USDC")
    # 12 SOL - 10 SOL - 5,000 lamports - 0.001 SOL of priority fee; 3 USDC
    # and what the order received.
    assert held["SOL"] == "1.998995"
    assert Decimal(held["USDC"]) == 3 + Decimal(confirmed.amount_out) > 1000


def test_two_orders_racing_for_one_balance_land_one_and_fail_the_other_for_funds(
    carol: order_service_pb2_grpc.OrderServiceStub, engine: Processes, redis_url: str
) -> None:
    """Each fits the wallet alone, so both are accepted; whichever lands
    second finds the first spent the SOL, pays its fee and fails for
    insufficient funds, a failure not retried."""
    fund(redis_url, "carol", {"SOL": "1"})
    items = [Submit(input_token="SOL", output_token="USDC", amount="0.6")] * 2
    results = carol.BatchSubmitOrders(
        order_service_pb2.BatchSubmitOrdersRequest(requests=items), timeout=10
    ).results
    ends = [watch_all(carol, r.response.order.order_id, timeout=60)[-1] for r in results]
    assert sorted(e.status for e in ends) == [
        order_pb2.ORDER_STATUS_CONFIRMED,
        order_pb2.ORDER_STATUS_FAILED,
    ]
    (failed,) = [e for e in ends if e.status == order_pb2.ORDER_STATUS_FAILED]
    assert (failed.reason_code, failed.attempt) == ("INSUFFICIENT_FUNDS", 1)
    assert "the wallet holds 0.39999 SOL, the swap spends 0.6" in failed.reason
    # 1 SOL - 0.6 - two fees of 5,000 lamports.
    assert balances(carol, "SOL") == {"SOL": "0.39999"}


def test_a_balance_read_lately_passes_orders_only_while_it_covers_them_all(
    services: Services, carol: order_service_pb2_grpc.OrderServiceStub, redis_url: str, redis: Redis
) -> None:
    """A submit right after another is decided on the balance the first
    read, less what the orders passed on it since need; past that, or once
    it is KEPT_SECONDS old, on a fresh read. A debit made outside
    OrderService goes unseen until then: the chain refuses such an order at
    landing, as it does any order in flight."""
    fund(redis_url, "carol", {"SOL": "1"})
    sol = Submit(input_token="SOL", output_token="USDC", amount="0.4")
    carol.SubmitOrder(sol, timeout=10)  # read: 1 SOL; 0.599995 left to pass on
    redis.hset(wallet_key("carol"), "SOL", "0")  # spent elsewhere
    # Still covered by what is kept: passed without asking the chain.
    assert carol.SubmitOrder(sol, timeout=10).order.status == order_pb2.ORDER_STATUS_PENDING
    # 0.19999 SOL left of it: not enough, so a fresh read decides, and refuses.
    error = rejected(lambda: carol.SubmitOrder(sol, timeout=10))
    assert item_error_of(error).reason == "INSUFFICIENT_FUNDS"
    assert dict(item_error_of(error).metadata)["balance"] == "0"
    # Funded again (not through OrderService): a fresh read sees it.
    fund(redis_url, "carol", {"SOL": "0.5"})
    assert carol.SubmitOrder(sol, timeout=10).order.status == order_pb2.ORDER_STATUS_PENDING
    # Spent elsewhere again: once the kept balance is old, it is read afresh.
    redis.hset(wallet_key("carol"), "SOL", "0")
    time.sleep(KEPT_SECONDS + 0.1)
    assert item_error_of(rejected(lambda: carol.SubmitOrder(sol, timeout=10))).reason == (
        "INSUFFICIENT_FUNDS"
    )
