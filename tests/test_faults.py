"""The failures real swaps meet, injected by the chain, and what the engine
makes of each: retried with a new quote, or failed at once, never landed
twice."""

from __future__ import annotations

from collections import Counter

import pytest
from redis import Redis

from executor.chain.chain import LANDED_BY_ORDER
from executor.chain.faults import FailureRates, Faults
from orderengine.reasons import Reason
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Services
from tests.helpers import ATTEMPT, statuses, watch_all


def test_fates_follow_the_rates_and_the_seed() -> None:
    rates = FailureRates(blockhash_expired=0.1, dropped=0.2, insufficient_funds=0.05)
    faults = Faults(rates, seed="7")
    fates = Counter(faults.fate() for _ in range(20_000))
    assert fates[""] == pytest.approx(13_000, rel=0.05)
    assert fates[Reason.BLOCKHASH_EXPIRED] == pytest.approx(2_000, rel=0.1)
    assert fates[Reason.TRANSACTION_DROPPED] == pytest.approx(4_000, rel=0.1)
    assert fates[Reason.INSUFFICIENT_FUNDS] == pytest.approx(1_000, rel=0.15)
    first, second = Faults(rates, seed="7"), Faults(rates, seed="7")
    assert [first.fate() for _ in range(50)] == [second.fate() for _ in range(50)]


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="dropped"):
        Faults(FailureRates(dropped=1.5))


def run_order(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, **settings: str
) -> tuple[list[str], list[order_pb2.OrderEvent], int]:
    """One SOL->USDC order through the engine with ``settings``: its
    statuses, its events and how many swaps the chain landed for it."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    services: Services = request.getfixturevalue("services")
    request.getfixturevalue("engine")
    stub = services.orders()
    order = stub.SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
        timeout=10,
    ).order
    events = watch_all(stub, order.order_id, timeout=60)
    redis: Redis = request.getfixturevalue("redis")
    landed = int(redis.hget(LANDED_BY_ORDER, order.order_id) or 0)
    return statuses(events), list(events), landed


def test_insufficient_funds_fails_at_once(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    seen, events, landed = run_order(request, monkeypatch, CHAIN_INSUFFICIENT_FUNDS_RATE="1")
    assert seen == ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "FAILED"]
    failed = events[-1]
    assert failed.reason_code == "INSUFFICIENT_FUNDS"
    assert "insufficient funds" in failed.reason
    assert landed == 0


def test_an_expired_blockhash_is_retried_then_given_up(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    seen, events, landed = run_order(
        request, monkeypatch, CHAIN_BLOCKHASH_EXPIRED_RATE="1", MAX_ATTEMPTS="3"
    )
    attempt = ["ROUTING", "ROUTED", "SUBMITTED"]
    assert seen == ["PENDING", *attempt * 3, "FAILED"]
    retries = [e for e in events if e.status == order_pb2.ORDER_STATUS_ROUTING and e.reason_code]
    assert [(e.attempt, e.reason_code) for e in retries] == [
        (2, "BLOCKHASH_EXPIRED"),
        (3, "BLOCKHASH_EXPIRED"),
    ]
    assert "gave up after 3 attempts" in events[-1].reason
    assert landed == 0


def test_a_lost_rpc_answer_is_sent_again_and_lands_once(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    # Every first send of an attempt times out after the node took it.
    seen, events, landed = run_order(request, monkeypatch, CHAIN_RPC_TIMEOUT_RATE="1")
    assert seen == ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]
    assert events[3].signature == events[4].signature  # the same transaction, sent twice
    assert landed == 1


def test_a_dropped_transaction_is_retried_once_its_blockhash_expired(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    seen, events, landed = run_order(
        request,
        monkeypatch,
        CHAIN_DROPPED_RATE="1",
        CHAIN_BLOCKHASH_VALID_SECONDS="0.5",
        MAX_ATTEMPTS="2",
    )
    assert seen == ["PENDING", *ATTEMPT, *ATTEMPT, "FAILED"]
    submitted, retried = events[3], events[4]
    waited = (retried.event_time.ToDatetime() - submitted.event_time.ToDatetime()).total_seconds()
    assert waited >= 0.5  # not before the blockhash could no longer land
    assert events[-1].reason_code == "TRANSACTION_DROPPED"
    assert landed == 0


def test_mixed_failures_end_every_order_and_land_none_twice(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in {
        "CHAIN_BLOCKHASH_EXPIRED_RATE": "0.15",
        "CHAIN_DROPPED_RATE": "0.1",
        "CHAIN_RPC_TIMEOUT_RATE": "0.2",
        "CHAIN_INSUFFICIENT_FUNDS_RATE": "0.05",
        "CHAIN_BLOCKHASH_VALID_SECONDS": "0.3",
        "CHAIN_SEED": "42",
        "MAX_ATTEMPTS": "4",
    }.items():
        monkeypatch.setenv(name, value)
    services: Services = request.getfixturevalue("services")
    request.getfixturevalue("engine")
    redis: Redis = request.getfixturevalue("redis")
    stub = services.orders()
    ids = [
        stub.SubmitOrder(
            order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount="0.1"
            ),
            timeout=10,
        ).order.order_id
        for _ in range(20)
    ]
    outcomes: Counter[str] = Counter()
    for order_id in ids:
        events = watch_all(stub, order_id, timeout=60)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        final = statuses(events)[-1]
        landed = int(redis.hget(LANDED_BY_ORDER, order_id) or 0)
        assert landed == (1 if final == "CONFIRMED" else 0), (order_id, final)
        outcomes[final] += 1
    assert sum(outcomes.values()) == 20 and outcomes["CONFIRMED"] > 0
