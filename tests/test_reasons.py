"""The failure reason codes are one closed vocabulary (orderengine.reasons):
whatever the chain, the programs, the router and the driver name an order's
failure with is a member, the wire strings stay as clients know them, and
nothing names a failure with a bare string the enum could miss."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from executor.chain import execution_service, faults
from executor.chain.faults import FailureRates, Faults
from executor.driver.retries import RETRYABLE, RetryPolicy
from orderengine.market.routes import RouteError
from orderengine.reasons import Reason
from router_service.routing import NoRouteError

ROOT = Path(__file__).resolve().parent.parent
# Where orders are moved and failures named; the generated stubs aside.
SOURCES = ["executor", "order_service", "router_service", "gateway", "orderengine"]
# A status named CANCELLED is the status, not the reason.
NOT_REASONS = {ROOT / "orderengine" / "statuses.py", ROOT / "orderengine" / "reasons.py"}

# What clients match on: a member may be added, never renamed.
WIRE = {
    "BLOCKHASH_EXPIRED",
    "TRANSACTION_DROPPED",
    "INSUFFICIENT_FUNDS",
    "RPC_TIMEOUT",
    "SLIPPAGE_EXCEEDED",
    "PROGRAM_FAILED",
    "UNKNOWN",
    "ROUTE_INVALID",
    "POOL_OUT_OF_LIQUIDITY",
    "AMOUNT_OVERFLOW",
    "ZERO_AMOUNT_OUT",
    "NO_ROUTE",
    "SWAP_REJECTED",
    "ORDER_INVALID",
    "CANCELLED",
}


def test_the_wire_strings_are_the_ones_clients_know() -> None:
    assert {reason.value for reason in Reason} >= WIRE
    # Name and value alike: a member is its wire string, and a string read
    # off the wire finds its member in a set of them.
    assert all(reason.name == reason.value for reason in Reason)
    assert "AMOUNT_OVERFLOW" in frozenset({Reason.AMOUNT_OVERFLOW})


def test_every_fate_the_chain_injects_is_a_reason() -> None:
    rates = {"blockhash_expired": 0.0, "dropped": 0.0, "insufficient_funds": 0.0}
    for name in rates:
        fate = Faults(FailureRates(**{**rates, name: 1.0})).fate()
        assert isinstance(fate, Reason), name
    assert Faults(FailureRates()).fate() == ""
    assert all(isinstance(code, Reason) for code in faults.REASONS)
    # A lost answer to a submitted swap.
    assert execution_service.TIMED_OUT.reason is Reason.RPC_TIMEOUT


def _subclasses(cls: type) -> list[type]:
    found: list[type] = [cls]
    direct: type
    for direct in cls.__subclasses__():
        found += _subclasses(direct)
    return found


def test_every_route_refusal_is_a_reason() -> None:
    refusals = _subclasses(RouteError) + _subclasses(NoRouteError)
    assert len(refusals) >= 5  # RouteError and its three, NoRouteError
    for refusal in refusals:
        assert isinstance(refusal.code, Reason), refusal  # type: ignore[attr-defined]


def test_the_retryable_set_is_reasons_and_a_string_is_refused() -> None:
    assert RETRYABLE and all(isinstance(code, Reason) for code in RETRYABLE)
    policy = RetryPolicy(max_attempts=3, base_seconds=0.1, factor=2.0, cap_seconds=1.0)
    with pytest.raises(TypeError, match="Reason"):
        policy.should_retry("BLOCKHASH_EXPRIED", 1)  # type: ignore[arg-type]


def test_a_code_from_the_wire_is_its_reason_or_unknown() -> None:
    for reason in Reason:
        assert Reason.of(reason.value) is reason
    assert Reason.of("A_NEWER_CHAINS_CODE") is Reason.UNKNOWN


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_failure_is_named_with_a_bare_string() -> None:
    """A code spelt as a literal would not be checked against the enum."""
    codes = {reason.value for reason in Reason}
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "v1" not in path.relative_to(ROOT).parts and path not in NOT_REASONS
        for line, value in _string_constants(path)
        if value in codes
    ]
    assert found == []


def test_the_api_documents_every_reason() -> None:
    documented = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert [r.value for r in Reason if f"`{r.value}`" not in documented] == []
