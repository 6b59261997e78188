"""OrderService over gRPC: what a client sees for good and bad requests."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis import Redis

from orderengine.amounts import format_amount
from orderengine.events import publish
from orderengine.mesh.auth import key_metadata, with_metadata
from orderengine.statuses import Status
from orderengine.store.changes import Change
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.conftest import OWNER, Processes, Services
from tests.helpers import (
    BAD_SWAP_FIELDS,
    PLENTY,
    Submit,
    details,
    eventually,
    field_violations,
    fund,
    rejected,
    statuses,
    watch_all,
)


def submit(services: Services, **fields: object) -> order_pb2.Order:
    request = Submit(**{"input_token": "SOL", "output_token": "USDC", "amount": "1", **fields})  # type: ignore[arg-type]
    return services.orders().SubmitOrder(request, timeout=10).order


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        *BAD_SWAP_FIELDS,
        ({"client_order_id": "x" * 129}, "client_order_id", "at most 128"),
        # Upper-cases to SOL, but token symbols are ASCII.
        ({"input_token": "\u017fol"}, "input_token", "unknown token"),
        # A right-to-left override reorders what a log or a screen shows.
        ({"client_order_id": "paid\u202egnp.exe"}, "client_order_id", "U+202E"),
        ({"client_order_id": "one\u2028two"}, "client_order_id", "U+2028"),
        ({"client_order_id": "zero\u200bwidth"}, "client_order_id", "format characters"),
    ],
)
def test_bad_submissions_name_the_field_and_store_nothing(
    services: Services, store: OrderStore, fields: dict[str, object], field: str, words: str
) -> None:
    error = rejected(lambda: submit(services, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).startswith(f"{field}:")
    assert words in details(error)
    assert field_violations(error) == [field]
    assert store.list_page(OWNER, 10) == ([], "")


def test_submit_returns_at_once_with_a_stored_pending_order(services: Services) -> None:
    order = submit(services, amount="2.5", slippage_bps=120, client_order_id="mine-1")
    assert uuid.UUID(order.order_id)
    assert order.status == order_pb2.ORDER_STATUS_PENDING
    assert (order.input_token, order.output_token, order.amount) == ("SOL", "USDC", "2.5")
    assert order.slippage_bps == 120 and order.client_order_id == "mine-1"
    assert order.attempt == 1 and order.last_sequence == 1
    fetched = services.orders().GetOrder(order_service_pb2.GetOrderRequest(order_id=order.order_id))
    assert fetched.order_id == order.order_id and fetched.status == order.status


def test_the_largest_u64_amount_is_an_order_stored_exactly(
    no_price_impact_limit: None, services: Services, store: OrderStore, redis_url: str
) -> None:
    """SPL amounts are u64: 2**64 - 1 base units (USDC has 6 decimals) is
    taken and read back to the last digit; one more is refused naming the
    field and the bound (in BAD_SWAP_FIELDS). The wallet holds that much
    USDC, the most a token account holds (no wallet holds 2**64 - 1
    lamports and the fee on top, so a SOL order that large is refused)."""
    held = int(PLENTY["USDC"]) * 10**6
    fund(redis_url, OWNER, {"USDC": format_amount(2**64 - 1 - held, 6)})
    order = submit(services, input_token="USDC", output_token="SOL", amount="18446744073709.551615")
    assert order.amount == "18446744073709.551615"
    fetched = services.orders().GetOrder(order_service_pb2.GetOrderRequest(order_id=order.order_id))
    assert fetched.amount == "18446744073709.551615"
    row = store.get(order.order_id)
    assert row is not None and row.amount_in == 2**64 - 1


def test_token_symbols_are_case_insensitive_and_stored_canonical(services: Services) -> None:
    order = submit(services, input_token="sol", output_token="usdc")
    assert (order.input_token, order.output_token) == ("SOL", "USDC")


def test_resubmitting_a_client_order_id_returns_the_first_order(services: Services) -> None:
    stub = services.orders()
    first = stub.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="retry-me")
    )
    again = stub.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="retry-me")
    )
    assert not first.already_exists and again.already_exists
    assert again.order.order_id == first.order.order_id
    listed = stub.ListOrders(order_service_pb2.ListOrdersRequest()).orders
    assert [o.order_id for o in listed] == [first.order.order_id]


def test_racing_resubmissions_make_one_order(services: Services) -> None:
    stub = services.orders()
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def send() -> None:
        barrier.wait()
        reply = stub.SubmitOrder(
            Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="race"),
            timeout=20,
        )
        ids.append(reply.order.order_id)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1


def test_a_client_order_id_reused_for_another_order_is_refused(services: Services) -> None:
    stub = services.orders()
    first = stub.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="once")
    )
    error = rejected(
        lambda: stub.SubmitOrder(
            Submit(input_token="SOL", output_token="USDC", amount="2", client_order_id="once")
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.order.order_id in details(error)
    assert field_violations(error) == ["client_order_id"]
    listed = stub.ListOrders(order_service_pb2.ListOrdersRequest()).orders
    assert [o.amount for o in listed] == ["1"]


@pytest.mark.parametrize(
    ("order_id", "code"),
    [
        ("not-a-uuid", grpc.StatusCode.INVALID_ARGUMENT),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        (str(uuid.uuid4()), grpc.StatusCode.NOT_FOUND),
    ],
)
def test_unknown_or_malformed_order_ids(
    services: Services, order_id: str, code: grpc.StatusCode
) -> None:
    stub = services.orders()
    calls = [
        lambda: stub.GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id)),
        lambda: stub.CancelOrder(order_service_pb2.CancelOrderRequest(order_id=order_id)),
        lambda: list(stub.WatchOrder(order_service_pb2.WatchOrderRequest(order_id=order_id))),
    ]
    for call in calls:
        error = rejected(call)
        assert error.code() == code
        assert "order" in details(error)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert field_violations(error) == ["order_id"]


def test_list_orders_pages_newest_first(services: Services) -> None:
    made = [submit(services, amount=str(i + 1)).order_id for i in range(7)]
    stub = services.orders()
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = stub.ListOrders(order_service_pb2.ListOrdersRequest(page_size=3, page_token=token))
        seen += [o.order_id for o in reply.orders]
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(made))


def test_list_orders_rejects_bad_paging(services: Services) -> None:
    stub = services.orders()
    error = rejected(lambda: stub.ListOrders(order_service_pb2.ListOrdersRequest(page_size=-1)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["page_size"]
    error = rejected(
        lambda: stub.ListOrders(order_service_pb2.ListOrdersRequest(page_token="garbage!"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["page_token"]


def test_cancel_a_pending_order_then_not_again(services: Services) -> None:
    # No worker runs here, so the order stays PENDING until cancelled.
    order = submit(services)
    stub = services.orders()
    cancelled = stub.CancelOrder(order_service_pb2.CancelOrderRequest(order_id=order.order_id))
    assert cancelled.status == order_pb2.ORDER_STATUS_CANCELLED
    events = watch_all(stub, order.order_id)
    assert statuses(events) == ["PENDING", "CANCELLED"]
    error = rejected(
        lambda: stub.CancelOrder(order_service_pb2.CancelOrderRequest(order_id=order.order_id))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CANCELLED" in details(error) and "only a PENDING or OPEN order" in details(error)


def test_a_cancelled_order_is_never_driven(services: Services, processes: Processes) -> None:
    order = submit(services)
    services.orders().CancelOrder(order_service_pb2.CancelOrderRequest(order_id=order.order_id))
    processes.worker()
    processes.tracker()
    # A second order behind it in the queue shows the worker has run past it.
    later = submit(services)
    assert statuses(watch_all(services.orders(), later.order_id))[-1] == "CONFIRMED"
    final = services.orders().GetOrder(order_service_pb2.GetOrderRequest(order_id=order.order_id))
    assert final.status == order_pb2.ORDER_STATUS_CANCELLED
    assert final.last_sequence == 2


def test_watch_resumes_after_a_sequence(services: Services, store: OrderStore) -> None:
    order = submit(services)
    store.transition(order.order_id, Status.ROUTING)
    store.transition(order.order_id, Status.FAILED, Change(reason="test says no"))
    stub = services.orders()
    assert [e.sequence for e in watch_all(stub, order.order_id, after=1)] == [2, 3]
    assert [e.sequence for e in watch_all(stub, order.order_id, after=2)] == [3]
    # Past the terminal event: the stream ends at once, empty.
    assert watch_all(stub, order.order_id, after=3) == []
    failed = watch_all(stub, order.order_id)[-1]
    assert failed.reason == "test says no"


def watched_in_background(
    services: Services, order_id: str
) -> tuple[list[order_pb2.OrderEvent], threading.Thread]:
    """A WatchOrder stream read by a thread into the list, once its first
    event (so it is registered) has arrived."""
    received: list[order_pb2.OrderEvent] = []
    stream = services.orders().WatchOrder(
        order_service_pb2.WatchOrderRequest(order_id=order_id), timeout=30
    )
    reader = threading.Thread(target=lambda: received.extend(stream))
    reader.start()
    eventually(lambda: len(received) == 1)
    return received, reader


def test_watch_streams_live_events_as_they_commit(
    services: Services, store: OrderStore, redis: Redis
) -> None:
    order = submit(services)
    received, reader = watched_in_background(services, order.order_id)
    for status, change in [(Status.ROUTING, Change()), (Status.FAILED, Change(reason="live"))]:
        moved = store.transition(order.order_id, status, change)
        assert moved is not None
        publish(redis, [moved[1]])
    reader.join(10)
    assert statuses(received) == ["PENDING", "ROUTING", "FAILED"]


def test_a_watcher_misses_nothing_when_a_publish_is_lost(
    services: Services, store: OrderStore, redis: Redis
) -> None:
    """An event committed but never published still reaches the watcher,
    when the next one reveals the gap."""
    order = submit(services)
    received, reader = watched_in_background(services, order.order_id)
    store.transition(order.order_id, Status.ROUTING)  # committed, not published
    moved = store.transition(order.order_id, Status.FAILED, Change(reason="gap"))
    assert moved is not None
    publish(redis, [moved[1]])
    reader.join(10)
    assert [e.sequence for e in received] == [1, 2, 3]


@pytest.fixture
def quick_check(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> float:
    """OrderService (made after this fixture) checks its watchers this often."""
    monkeypatch.setenv("WATCH_CHECK_SECONDS", "0.3")
    return 0.3


def test_a_watcher_gets_an_event_whose_publish_was_lost_and_no_event_followed(
    quick_check: float, services: Services, store: OrderStore
) -> None:
    """No later event reveals the gap: the hub's check of the database does."""
    order = submit(services)
    received, reader = watched_in_background(services, order.order_id)
    store.transition(order.order_id, Status.ROUTING)  # committed, never published
    eventually(lambda: len(received) == 2, timeout=10 * quick_check)
    store.transition(order.order_id, Status.FAILED, Change(reason="lost too"))
    reader.join(10 * quick_check)
    assert not reader.is_alive()
    assert [(e.sequence, e.reason) for e in received] == [(1, ""), (2, ""), (3, "lost too")]


def test_stopping_the_server_ends_open_streams_with_unavailable(services: Services) -> None:
    order = submit(services)
    stream = iter(
        services.orders().WatchOrder(
            order_service_pb2.WatchOrderRequest(order_id=order.order_id), timeout=30
        )
    )
    first = next(stream)
    assert first.sequence == 1
    services.loop.run(services.servers["order"].stop(5))
    error = rejected(lambda: next(stream))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "after_sequence 1" in details(error)


def test_health_and_reflection_are_served(services: Services) -> None:
    channel = services.channel("order")
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "orderengine.v1.OrderService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert "orderengine.v1.OrderService" in names


def test_quote_order_prices_every_venue_and_stores_nothing(
    services: Services, store: OrderStore
) -> None:
    reply = services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(
            input_token="SOL", output_token="USDC", amount="10", slippage_bps=100
        ),
        timeout=10,
    )
    assert {q.pool_id for q in reply.quotes} == {"raydium-sol-usdc", "meteora-sol-usdc"}
    # The route gives at least the best venue (it may split or go through another token).
    assert Decimal(reply.route.amount_out) >= Decimal(reply.quotes[0].amount_out)
    assert reply.route.amount_in == "10"
    assert store.list_page(OWNER, 10) == ([], "")


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"amount": "0"}, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
        # Through SOL, one base unit of JUP pays the first pool's fee and passes nothing on.
        (
            {"input_token": "JUP", "output_token": "BONK", "amount": "0.000001"},
            grpc.StatusCode.FAILED_PRECONDITION,
            None,
        ),
    ],
)
def test_quote_order_refuses_what_cannot_be_quoted(
    services: Services, fields: dict[str, str], code: grpc.StatusCode, field: str | None
) -> None:
    fields = {"input_token": "SOL", "output_token": "USDC", "amount": "1", **fields}
    request = order_service_pb2.QuoteOrderRequest(**fields)  # type: ignore[arg-type]
    error = rejected(lambda: services.orders().QuoteOrder(request, timeout=10))
    assert error.code() == code
    if field:
        assert field_violations(error) == [field]
    else:
        assert "no pool" in details(error)


def test_a_full_queue_pushes_back_and_stores_nothing(
    env: dict[str, str],
    store: OrderStore,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    monkeypatch.setenv("MAX_QUEUE_DEPTH", "2")
    services: Services = request.getfixturevalue("services")
    first, second = submit(services), submit(services)
    error = rejected(lambda: submit(services))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue is full" in details(error) and "nothing was stored" in details(error)
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    rows, _ = store.list_page(OWNER, 10)
    assert {r.order_id for r in rows} == {first.order_id, second.order_id}


def test_with_redis_down_submit_is_unavailable_and_stores_nothing(
    env: dict[str, str],
    store: OrderStore,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from order_service.main import create_order_server
    from orderengine.local.embedded_redis import EmbeddedRedis
    from orderengine.settings import Settings
    from tests.conftest import LoopThread

    doomed = EmbeddedRedis(tmp_path / "doomed.db", persist=False)
    monkeypatch.setenv("REDIS_URL", doomed.url)
    loop = LoopThread()
    server = loop.run(create_order_server("127.0.0.1:0", Settings()))
    try:
        doomed.stop()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(
                with_metadata(channel, key_metadata(env["ORDERENGINE_API_KEY"]))
            )
            error = rejected(
                lambda: stub.SubmitOrder(
                    Submit(input_token="SOL", output_token="USDC", amount="1"), timeout=10
                )
            )
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "nothing was stored" in details(error)
        assert store.list_page(OWNER, 10) == ([], "")
    finally:
        loop.run(server.stop(0.5))
        loop.close()
