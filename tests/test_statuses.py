"""The order state machine: which status may follow which, and its wire form."""

from __future__ import annotations

from itertools import pairwise

import pytest

from orderengine.statuses import TERMINAL, TRANSITIONS, Status, sources
from orderengine.v1 import order_pb2
from tests.helpers import is_legal

HAPPY_PATH = [Status.PENDING, Status.ROUTING, Status.ROUTED, Status.SUBMITTED, Status.CONFIRMED]
NON_TERMINAL = [s for s in Status if not s.terminal]


def test_the_happy_path_is_legal_step_by_step() -> None:
    for current, target in pairwise(HAPPY_PATH):
        assert is_legal(current, target), f"{current} -> {target}"


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.PENDING, Status.ROUTED),
        (Status.PENDING, Status.SUBMITTED),
        (Status.PENDING, Status.CONFIRMED),
        (Status.ROUTING, Status.SUBMITTED),
        (Status.ROUTING, Status.CONFIRMED),
        (Status.ROUTED, Status.CONFIRMED),
        (Status.ROUTING, Status.PENDING),
        (Status.SUBMITTED, Status.PENDING),
    ],
)
def test_skipping_or_going_back_to_pending_is_illegal(current: Status, target: Status) -> None:
    assert not is_legal(current, target)


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.OPEN])
def test_no_status_may_follow_itself(status: Status) -> None:
    assert not is_legal(status, status)


def test_an_open_twap_records_each_slice_as_open_again() -> None:
    assert is_legal(Status.OPEN, Status.OPEN)


def test_routing_follows_pending_a_trigger_or_a_retry_from_routed_or_submitted() -> None:
    assert sources(Status.ROUTING) == {
        Status.PENDING,
        Status.OPEN,
        Status.ROUTED,
        Status.SUBMITTED,
    }


def test_a_limit_order_missing_its_minimum_goes_back_to_open_before_it_lands() -> None:
    assert sources(Status.OPEN) == {Status.ROUTING, Status.ROUTED, Status.SUBMITTED, Status.OPEN}


def test_only_an_open_order_expires() -> None:
    assert sources(Status.EXPIRED) == {Status.OPEN}


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_every_step_before_confirmed_may_fail(status: Status) -> None:
    assert is_legal(status, Status.FAILED)


def test_terminal_statuses_are_confirmed_failed_cancelled_and_expired() -> None:
    assert (
        {s for s in Status if s.terminal}
        == TERMINAL
        == {Status.CONFIRMED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
    )


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_have_no_exits(status: Status) -> None:
    assert TRANSITIONS[status] == frozenset()
    assert not any(is_legal(status, target) for target in Status)


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_non_terminal_statuses_have_a_way_out(status: Status) -> None:
    assert TRANSITIONS[status]


def test_cancelled_only_from_pending_or_open() -> None:
    assert sources(Status.CANCELLED) == {Status.PENDING, Status.OPEN}


def test_confirmed_from_submitted_or_a_twap_whose_last_slice_is_done() -> None:
    assert sources(Status.CONFIRMED) == {Status.SUBMITTED, Status.OPEN}


def test_every_status_has_a_transition_entry() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_orders_start_pending_or_open_and_every_status_is_reachable_from_them() -> None:
    assert sources(Status.PENDING) == frozenset()
    reached, frontier = {Status.PENDING, Status.OPEN}, [Status.PENDING, Status.OPEN]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(Status)


def test_sources_is_the_inverse_of_transitions() -> None:
    for target in Status:
        expected = {s for s in Status if target in TRANSITIONS[s]}
        assert sources(target) == expected
        assert all(is_legal(s, target) for s in sources(target))
    pairs_forward = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
    pairs_backward = {(s, t) for t in Status for s in sources(t)}
    assert pairs_forward == pairs_backward


@pytest.mark.parametrize("status", list(Status))
def test_proto_round_trip(status: Status) -> None:
    assert Status.from_proto(status.proto) == status
    assert order_pb2.OrderStatus.Name(status.proto) == f"ORDER_STATUS_{status.value}"


def test_every_proto_status_but_unspecified_maps_to_a_status() -> None:
    proto_values = [
        v for v in order_pb2.OrderStatus.values() if v != order_pb2.ORDER_STATUS_UNSPECIFIED
    ]
    assert sorted(Status.from_proto(v) for v in proto_values) == sorted(Status)
    assert len(proto_values) == len(Status)


@pytest.mark.parametrize("value", [order_pb2.ORDER_STATUS_UNSPECIFIED, 99])
def test_unspecified_or_unknown_proto_status_is_refused(value: int) -> None:
    with pytest.raises(ValueError):
        Status.from_proto(value)
