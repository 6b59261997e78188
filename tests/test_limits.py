"""Limits (docs/api.md, "Limits"): what one owner may take of the engine. A submit
rate per owner shared by every replica, open watch streams per owner, the
size of a message and of a page, a watcher that never reads, and no secret
in any log or error."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis import Redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from order_service.watch_hub import INBOX_SIZE
from orderengine.events import publish
from orderengine.mesh.auth import INTERNAL_TOKEN_HEADER, with_metadata
from orderengine.settings import Settings
from orderengine.store.changes import NewOrder
from orderengine.store.orders import OrderStore
from orderengine.v1 import (
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)
from tests.conftest import (
    INTERNAL_TOKEN,
    OTHER_OWNER,
    OWNER,
    GatewayServer,
    RecordedHub,
    Services,
    auth,
)
from tests.helpers import SOL_USDC, Submit, details, eventually, field_violations, rejected

# Small enough to meet in a test: 3 orders at once, then one a second; 3 streams.
RATE, BURST, STREAMS = 1, 3, 3
# What the gateway refuses (gateway/limits.py) and a gRPC server takes (orderengine/mesh/serving.py).
MAX_BODY_BYTES = 64 * 1024
CLIENT_LOGGERS = ("websockets.client", "httpx", "httpcore")


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in {
        "SUBMIT_RATE_PER_SECOND": RATE,
        "SUBMIT_BURST": BURST,
        "WATCH_STREAMS_PER_OWNER": STREAMS,
    }.items():
        monkeypatch.setenv(name, str(value))


@pytest.fixture
def services(limits: None, hubs: list[RecordedHub], services: Services) -> Services:
    # The conftest's services, made with this module's limits.
    return services


def error_details(error: grpc.RpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call: ErrorInfo and RetryInfo, as dicts."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found: dict[str, Any] = {}
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found["reason"], found["metadata"] = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found["retry_seconds"] = retry.retry_delay.ToMilliseconds() / 1000
    return found


def stored(store: OrderStore, owner: str = OWNER) -> int:
    return len(store.list_page(owner, 1000)[0])


# -- the submit rate ------------------------------------------------------------


def test_over_the_rate_submit_is_resource_exhausted_with_a_retry_hint(
    services: Services, store: OrderStore
) -> None:
    orders = services.orders()
    for _ in range(BURST):
        orders.SubmitOrder(SOL_USDC, timeout=10)
    error = rejected(lambda: orders.SubmitOrder(SOL_USDC, timeout=10))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit" in details(error) and "nothing was stored" in details(error)
    found = error_details(error)
    assert found["reason"] == "RATE_LIMITED"
    assert found["metadata"]["limit"] == "SUBMIT_RATE_PER_SECOND"
    assert 0 < found["retry_seconds"] <= 1 / RATE
    assert stored(store) == BURST
    # Each owner has a bucket of their own.
    services.orders(OTHER_OWNER).SubmitOrder(SOL_USDC, timeout=10)
    # The hint is good: after it, one more goes.
    time.sleep(found["retry_seconds"])
    orders.SubmitOrder(SOL_USDC, timeout=10)
    assert stored(store) == BURST + 1


def test_concurrent_calls_take_only_the_tokens_there_are(
    services: Services, store: OrderStore
) -> None:
    orders = services.orders()
    calls = [orders.SubmitOrder.future(SOL_USDC, timeout=10) for _ in range(12)]
    accepted, delays = 0, []
    for call in calls:
        try:
            call.result()
            accepted += 1
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            delays.append(error_details(exc)["retry_seconds"])
    # The burst, and at most one more token that refilled meanwhile.
    assert BURST <= accepted <= BURST + 1
    assert stored(store) == accepted
    # Refused together, told to come back one after another, not all at once.
    assert len(set(delays)) > 1


def test_every_replica_draws_on_the_same_bucket(services: Services) -> None:
    from order_service.main import create_order_server

    other = services.loop.run(create_order_server("127.0.0.1:0", Settings()))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            replica = order_service_pb2_grpc.OrderServiceStub(
                with_metadata(channel, [("authorization", f"Bearer {services.keys[OWNER]}")])
            )
            for _ in range(BURST):
                services.orders().SubmitOrder(SOL_USDC, timeout=10)
            error = rejected(lambda: replica.SubmitOrder(SOL_USDC, timeout=10))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        services.loop.run(other.stop(0.5))


def test_the_bucket_survives_redis_forgetting_its_script(services: Services, redis: Redis) -> None:
    orders = services.orders()
    orders.SubmitOrder(SOL_USDC, timeout=10)
    redis.script_flush()  # as after a Redis restart: the next check loads it again
    for _ in range(BURST - 1):
        orders.SubmitOrder(SOL_USDC, timeout=10)
    assert rejected(lambda: orders.SubmitOrder(SOL_USDC, timeout=10)).code() == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )


def test_the_gateway_answers_429_with_retry_after(
    gateway: GatewayServer, services: Services
) -> None:
    body = {"inputToken": "SOL", "outputToken": "USDC", "amount": "1"}
    with httpx.Client(base_url=gateway.url, headers=auth(), timeout=10) as http:
        for _ in range(BURST):
            assert http.post("/api/orders", json=body).status_code == 201
        reply = http.post("/api/orders", json=body)
    assert reply.status_code == 429, reply.text
    assert reply.headers["retry-after"] == "1"
    error = reply.json()["error"]
    assert (error["code"], error["reason"]) == ("RESOURCE_EXHAUSTED", "RATE_LIMITED")


def fill_then_resubmit_the_first(
    orders: order_service_pb2_grpc.OrderServiceStub, count: int
) -> None:
    """Submits ``count`` orders (client order ids mine-0, mine-1, ...), all
    taken, then mine-0 again, as a client that lost the answer and resends
    (as the README tells it to): answered with the first order."""
    first = [
        orders.SubmitOrder(
            Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id=f"mine-{n}"),
            timeout=10,
        ).order
        for n in range(count)
    ]
    again = orders.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="mine-0"),
        timeout=10,
    )
    assert again.already_exists and again.order.order_id == first[0].order_id


def test_a_resubmission_is_answered_while_its_owner_is_rate_limited(
    services: Services, store: OrderStore
) -> None:
    orders = services.orders()
    fill_then_resubmit_the_first(orders, BURST)
    # A new order is still refused, and says why in its reason.
    error = rejected(lambda: orders.SubmitOrder(SOL_USDC, timeout=10))
    assert error_details(error)["reason"] == "RATE_LIMITED"
    assert stored(store) == BURST


# -- the queue's depth ------------------------------------------------------------


@pytest.fixture
def shallow_queue(
    limits: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Services:
    """Services whose queue takes QUEUE_DEPTH orders, with no submit rate limit
    and no worker taking them."""
    monkeypatch.setenv("MAX_QUEUE_DEPTH", str(QUEUE_DEPTH))
    monkeypatch.setenv("SUBMIT_RATE_PER_SECOND", "0")
    services: Services = request.getfixturevalue("services")
    return services


QUEUE_DEPTH = 5


def test_the_queue_depth_counts_orders_not_jobs(
    shallow_queue: Services, store: OrderStore, gateway: GatewayServer
) -> None:
    orders = shallow_queue.orders()
    # Together: they share batches, and so jobs (up to 32 orders each).
    calls = [orders.SubmitOrder.future(SOL_USDC, timeout=10) for _ in range(40)]
    refusals: list[grpc.RpcError] = []
    for call in calls:
        try:
            call.result()
        except grpc.RpcError as exc:
            refusals.append(exc)
    assert stored(store) == QUEUE_DEPTH
    assert len(refusals) == 40 - QUEUE_DEPTH
    error = refusals[0]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"({QUEUE_DEPTH} orders waiting" in details(error), details(error)
    found = error_details(error)
    assert found["reason"] == "QUEUE_FULL" and found["retry_seconds"] > 0
    assert found["metadata"] == {
        "limit": "MAX_QUEUE_DEPTH",
        "max_queue_depth": "5",
        "orders_waiting": "5",
    }
    # The gateway tells a full queue from a rate limit the same way.
    with httpx.Client(base_url=gateway.url, headers=auth(), timeout=10) as http:
        reply = http.post(
            "/api/orders", json={"inputToken": "SOL", "outputToken": "USDC", "amount": "1"}
        )
    assert reply.status_code == 429, reply.text
    assert reply.json()["error"]["reason"] == "QUEUE_FULL"
    assert stored(store) == QUEUE_DEPTH


def test_a_resubmission_is_answered_while_the_queue_is_full(
    shallow_queue: Services, store: OrderStore
) -> None:
    orders = shallow_queue.orders()
    fill_then_resubmit_the_first(orders, QUEUE_DEPTH)
    # The same id for another order is the client's bug, full queue or not.
    reused = rejected(
        lambda: orders.SubmitOrder(
            Submit(input_token="SOL", output_token="USDC", amount="2", client_order_id="mine-1"),
            timeout=10,
        )
    )
    assert reused.code() == grpc.StatusCode.ALREADY_EXISTS
    error = rejected(
        lambda: orders.SubmitOrder(
            Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="new"),
            timeout=10,
        )
    )
    assert error_details(error)["reason"] == "QUEUE_FULL"
    assert stored(store) == QUEUE_DEPTH


# -- open watch streams -----------------------------------------------------------


def open_stream(services: Services, order_id: str, owner: str = OWNER) -> Any:
    """A WatchOrder stream (a grpc call: iterate it, cancel it) that has sent
    its first event, so it is registered."""
    stream: Any = services.orders(owner).WatchOrder(
        order_service_pb2.WatchOrderRequest(order_id=order_id), timeout=30
    )
    assert next(stream).sequence == 1
    return stream


def streams_of(services: Services, hubs: list[RecordedHub], owner: str = OWNER) -> int:
    return services.loop.read(lambda: sum(hub.streams(owner) for hub in hubs))


def test_one_stream_past_the_cap_is_refused_until_one_ends(
    services: Services, hubs: list[RecordedHub]
) -> None:
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    streams = [open_stream(services, order_id) for _ in range(STREAMS)]
    error = rejected(lambda: open_stream(services, order_id))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"at most {STREAMS} WatchOrder streams" in details(error)
    assert error_details(error)["metadata"]["limit"] == "WATCH_STREAMS_PER_OWNER"
    # Another owner's streams are theirs.
    theirs = services.orders(OTHER_OWNER).SubmitOrder(SOL_USDC, timeout=10).order.order_id
    open_stream(services, theirs, OTHER_OWNER).cancel()
    # The client cancels one: its slot is free again.
    streams.pop().cancel()
    eventually(lambda: streams_of(services, hubs) == STREAMS - 1)
    streams.append(open_stream(services, order_id))
    # The order ends: every stream ends, and every slot with it.
    services.orders().CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10
    )
    for stream in streams:
        assert [e.status for e in stream] == [order_pb2.ORDER_STATUS_CANCELLED]
    eventually(lambda: streams_of(services, hubs) == 0)


def test_watches_past_the_end_end_with_the_order_and_free_their_slots(
    services: Services, hubs: list[RecordedHub]
) -> None:
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    past_the_end = order_service_pb2.WatchOrderRequest(order_id=order_id, after_sequence=5)
    # Each holds one of the owner's slots: the owner may watch nothing else.
    streams = [services.orders().WatchOrder(past_the_end, timeout=10) for _ in range(STREAMS)]
    eventually(lambda: streams_of(services, hubs) == STREAMS)
    services.orders().CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10
    )
    # The order has ended: so has every stream, with nothing to send.
    for stream in streams:
        assert list(stream) == []
    eventually(lambda: streams_of(services, hubs) == 0)
    assert list(services.orders().WatchOrder(past_the_end, timeout=10)) == []


def test_a_stopping_server_frees_every_slot(services: Services, hubs: list[RecordedHub]) -> None:
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    streams = [open_stream(services, order_id) for _ in range(STREAMS)]
    # Taken out of the fixture's hands: it is stopped here, once.
    services.loop.run(services.servers.pop("order").stop(0.5))
    for stream in streams:
        with pytest.raises(grpc.RpcError) as ended:
            list(stream)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert streams_of(services, hubs) == 0


def test_the_gateway_closes_a_socket_past_the_cap_with_1013(
    gateway: GatewayServer, services: Services
) -> None:
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    url = f"{gateway.ws_url}/ws/orders/{order_id}"
    with ExitStack() as open_sockets:
        for _ in range(STREAMS):
            ws = open_sockets.enter_context(
                connect(url, additional_headers=auth(), open_timeout=10)
            )
            assert json.loads(ws.recv(timeout=10))["sequence"] == 1
        with (
            connect(url, additional_headers=auth(), open_timeout=10) as extra,
            pytest.raises(ConnectionClosed),
        ):
            extra.recv(timeout=10)
        assert extra.close_code == 1013
        assert "WatchOrder streams" in (extra.close_reason or "")


# -- a watcher that never reads -------------------------------------------------


def test_a_watcher_that_never_reads_holds_a_bounded_inbox(
    services: Services, hubs: list[RecordedHub], redis: Redis
) -> None:
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    # A client that reads nothing: without BDP probing its window stays at
    # HTTP/2's 64 KiB, as a stalled reader's would, so the server must stop.
    channel = grpc.insecure_channel(
        services.address("order"), options=[("grpc.http2.bdp_probe", 0)]
    )
    services.channels.append(channel)
    stub = order_service_pb2_grpc.OrderServiceStub(
        with_metadata(channel, [("authorization", f"Bearer {services.keys[OWNER]}")])
    )
    stream: Any = stub.WatchOrder(
        order_service_pb2.WatchOrderRequest(order_id=order_id), timeout=30
    )
    assert next(stream).sequence == 1  # then nothing read for a while
    hub = hubs[0]
    eventually(hub.subscribed.is_set)  # else what is published now is lost to it
    # Far more than the window: the stream stalls, and what comes meanwhile
    # must be dropped (it is read from the database later), not queued for it.
    published = 1000
    publish(
        redis,
        [
            order_pb2.OrderEvent(
                order_id=order_id,
                sequence=n,
                reason="x" * 2000,
                status=order_pb2.ORDER_STATUS_ROUTING,
            )
            for n in range(2, published + 2)
        ],
    )
    # The bus keeps their order: once the last is delivered, all were.
    eventually(lambda: hub.last.get(order_id) == published + 1)
    assert hub.most_held <= INBOX_SIZE
    # Reading again, the client gets what was in flight and what came after
    # the last drop; the rest was never kept for it. (These events are not in
    # the database: a real watcher would read them there.)
    got: list[int] = []

    def read() -> None:
        with suppress(grpc.RpcError):  # cancelled below
            got.extend(event.sequence for event in stream)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1)
    stream.cancel()
    reader.join(5)
    assert len(got) < published / 2, len(got)

    eventually(lambda: services.loop.read(lambda: hub.watchers) == 0)


# -- sizes --------------------------------------------------------------------------


def test_a_message_larger_than_the_servers_limit_is_refused(
    services: Services, store: OrderStore
) -> None:
    huge = Submit(
        input_token="SOL", output_token="USDC", amount="1", client_order_id="x" * MAX_BODY_BYTES
    )
    error = rejected(lambda: services.orders().SubmitOrder(huge, timeout=10))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stored(store) == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input_token": "S" * 5000}, "input_token"),
        ({"output_token": "U" * 5000}, "output_token"),
        ({"amount": "1" * 5000}, "amount"),
        ({"client_order_id": "c" * 5000}, "client_order_id"),
    ],
)
def test_long_fields_are_refused_naming_the_field_without_echoing_it(
    services: Services, store: OrderStore, fields: dict[str, str], field: str
) -> None:
    request = Submit(**{"input_token": "SOL", "output_token": "USDC", "amount": "1", **fields})  # type: ignore[arg-type]
    error = rejected(lambda: services.orders().SubmitOrder(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [field]
    assert len(details(error)) < 200
    assert stored(store) == 0


def test_a_page_is_at_most_1000_orders(services: Services, store: OrderStore) -> None:
    store.submit_many(
        [
            NewOrder(
                owner=OWNER,
                input_token="SOL",
                output_token="USDC",
                amount_in=n + 1,
                slippage_bps=50,
            )
            for n in range(1001)
        ]
    )
    orders = services.orders()
    first = orders.ListOrders(order_service_pb2.ListOrdersRequest(page_size=100_000), timeout=30)
    assert len(first.orders) == 1000 and first.next_page_token
    rest = orders.ListOrders(
        order_service_pb2.ListOrdersRequest(page_size=100_000, page_token=first.next_page_token),
        timeout=30,
    )
    assert len(rest.orders) == 1 and not rest.next_page_token
    error = rejected(
        lambda: orders.ListOrders(
            order_service_pb2.ListOrdersRequest(page_token="t" * 5000), timeout=10
        )
    )
    assert field_violations(error) == ["page_token"] and len(details(error)) < 200


def test_the_gateway_refuses_a_large_body_with_413(
    gateway: GatewayServer, services: Services, store: OrderStore
) -> None:
    body = json.dumps(
        {
            "inputToken": "SOL",
            "outputToken": "USDC",
            "amount": "1",
            "clientOrderId": "x" * MAX_BODY_BYTES,
        }
    ).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts as it reads
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    with httpx.Client(base_url=gateway.url, headers=auth(), timeout=10) as http:
        for content in (body, chunks()):
            reply = http.post(
                "/api/orders", content=content, headers={"content-type": "application/json"}
            )
            assert reply.status_code == 413, reply.text
            assert f"at most {MAX_BODY_BYTES} bytes" in reply.json()["error"]["message"]
        # Just under the limit is read (and refused for what it says, not its size).
        small = json.dumps(
            {"inputToken": "SOL", "outputToken": "USDC", "amount": "1", "clientOrderId": "x" * 1000}
        ).encode()
        reply = http.post(
            "/api/orders", content=small, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 400 and reply.json()["error"]["field"] == "clientOrderId"
    assert stored(store) == 0


# -- no secret in a log or an error ---------------------------------------------------


def test_no_key_token_or_authorization_header_in_logs_or_errors(
    services: Services, gateway: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = services.keys[OWNER]
    unknown = "oe_" + "U" * 43
    headers = [
        f"Bearer {unknown}",
        f"Bearer {good} trailing",
        f"Basic {good}",
        good,
        f"Bearer {INTERNAL_TOKEN}",
        "Bearer " + "oe_" + "L" * 600,
    ]
    secrets = [good, unknown, INTERNAL_TOKEN, "L" * 600]
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    # A call that makes OrderService use the internal token towards QuoteService.
    services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
        timeout=10,
    )
    said: list[str] = []

    # OrderService over gRPC.
    for header in headers:
        stub = order_service_pb2_grpc.OrderServiceStub(
            with_metadata(services.bare_channel("order"), [("authorization", header)])
        )
        watch = order_service_pb2.WatchOrderRequest(order_id=order_id)
        for call in (
            lambda s=stub: s.SubmitOrder(SOL_USDC, timeout=10),
            lambda s=stub, w=watch: next(s.WatchOrder(w, timeout=10)),
        ):
            error = rejected(call)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, header
            said += [details(error), repr(error.trailing_metadata())]
    # QuoteService with a wrong internal token.
    wrong = "wrong-" + INTERNAL_TOKEN
    secrets.append(wrong)
    quotes = quote_service_pb2_grpc.QuoteServiceStub(
        with_metadata(services.bare_channel("quote"), [(INTERNAL_TOKEN_HEADER, wrong)])
    )
    error = rejected(
        lambda: quotes.GetQuote(
            quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="USDC", amount="1"),
            timeout=10,
        )
    )
    said += [details(error), repr(error.trailing_metadata())]

    # The gateway, over HTTP and the WebSocket.
    for header in headers:
        for method, path in (("POST", "/api/orders"), ("GET", f"/api/orders/{order_id}")):
            reply = httpx.request(
                method,
                f"{gateway.url}{path}",
                timeout=10,
                headers={"authorization": header},
                json={"inputToken": "SOL", "outputToken": "USDC", "amount": "1"},
            )
            assert reply.status_code == 401, (header, reply.text)
            said.append(reply.text + repr(reply.headers))
        for options in (
            {"additional_headers": {"authorization": header}},
            {"send": json.dumps({"authorization": header})},
        ):
            said.append(ws_close_reason(gateway, order_id, **options))

    # What the engine logged: the test's own clients (which log what they
    # send at DEBUG) are not the engine.
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(CLIENT_LOGGERS)
    )
    assert logged  # the engine's own records were caught (its call logs, at least)
    for secret in secrets:
        for text in said:
            assert secret not in text
        assert secret not in logged
    assert "Bearer oe_" not in logged


def ws_close_reason(gateway: GatewayServer, order_id: str, **options: Any) -> str:
    send = options.pop("send", None)
    with connect(f"{gateway.ws_url}/ws/orders/{order_id}", open_timeout=10, **options) as ws:
        if send is not None:
            ws.send(send)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4401
        return ws.close_reason or ""
