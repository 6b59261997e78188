"""BatchSubmitOrders: many SubmitOrders in one call, each item answered as
SubmitOrder answers it alone; and the gateway, which gathers concurrent
POST /api/orders of one API key into such calls."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client import REGISTRY
from redis import Redis

from gateway.upstream import Upstream
from order_service.order_service import MAX_ORDERS_PER_CALL
from orderengine.observability import request_ids
from orderengine.order_queue import order_queue, queued_since, take_queued
from orderengine.settings import Settings
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_service_pb2, order_service_pb2_grpc
from tests.conftest import OTHER_OWNER, OWNER, GatewayServer, Services
from tests.helpers import details, eventually, field_violations, item_error_of, rejected

Submit = order_service_pb2.SubmitOrderRequest
Submitted = order_service_pb2.SubmitOrderResponse
Batch = order_service_pb2.BatchSubmitOrdersRequest
QUEUE_DEPTH = 3


def order(amount: str = "1", **fields: Any) -> Submit:
    return Submit(input_token="SOL", output_token="USDC", amount=amount, **fields)


@pytest.fixture
def shallow(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], request: pytest.FixtureRequest
) -> Services:
    """Services whose queue takes QUEUE_DEPTH orders, no worker taking them."""
    monkeypatch.setenv("MAX_QUEUE_DEPTH", str(QUEUE_DEPTH))
    monkeypatch.setenv("SUBMIT_RATE_PER_SECOND", "0")
    services: Services = request.getfixturevalue("services")
    return services


def test_each_item_is_answered_in_order_as_submit_order_would(shallow: Services) -> None:
    orders = shallow.orders()
    first = orders.SubmitOrder(order(client_order_id="a"), timeout=10).order
    items = [
        order(client_order_id="b"),  # stored: 2 waiting
        order(amount="-1"),  # bad field, takes no room
        order(amount="2", client_order_id="a"),  # "a" again for another order
        order(client_order_id="a"),  # a resubmission: the queue is full now
        order(client_order_id="c"),  # refused: full
        order(),  # refused: full
    ]
    results = orders.BatchSubmitOrders(Batch(requests=items), timeout=10).results
    assert [r.WhichOneof("result") for r in results] == [
        "response",
        "error",
        "error",
        "response",
        "error",
        "error",
    ]
    stored = results[0].response
    assert not stored.already_exists and stored.order.client_order_id == "b"
    assert results[3].response.already_exists
    assert results[3].response.order.order_id == first.order_id
    codes = [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    errors = [results[i].error for i in (1, 2, 4, 5)]
    assert [e.code for e in errors] == [code.value[0] for code in codes]
    assert errors[0].field == "amount" and errors[0].reason == "INVALID_FIELD"
    assert errors[1].metadata["order_id"] == first.order_id
    assert errors[2].reason == "QUEUE_FULL" and errors[2].retry_delay.ToMilliseconds() == 1000
    assert errors[2].metadata["orders_waiting"] == str(QUEUE_DEPTH)
    # Nothing of the refused ones was stored.
    listed = orders.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10).orders
    assert sorted(o.client_order_id for o in listed) == ["a", "b"]
    # Alone, each failed item fails SubmitOrder with the very same status (the
    # queue as full as the batch found it: one more order waiting).
    orders.SubmitOrder(order(client_order_id="d"), timeout=10)
    for index in (1, 2, 4, 5):
        item = items[index]
        alone = rejected(lambda: orders.SubmitOrder(item, timeout=10))  # noqa: B023
        assert item_error_of(alone) == results[index].error, index


def test_a_batch_is_the_callers_and_bounded(services: Services, store: OrderStore) -> None:
    mine = services.orders().BatchSubmitOrders(Batch(requests=[order()] * 2), timeout=10)
    theirs = services.orders(OTHER_OWNER).BatchSubmitOrders(Batch(requests=[order()]), timeout=10)

    def owners(reply: order_service_pb2.BatchSubmitOrdersResponse) -> list[str]:
        rows = [store.get(r.response.order.order_id) for r in reply.results]
        return [row.owner for row in rows if row is not None]

    assert owners(mine) == [OWNER, OWNER] and owners(theirs) == [OTHER_OWNER]
    assert services.orders().BatchSubmitOrders(Batch(), timeout=10).results == []
    bare = order_service_pb2_grpc.OrderServiceStub(services.bare_channel("order"))
    assert (
        rejected(lambda: bare.BatchSubmitOrders(Batch(requests=[order()]), timeout=10)).code()
        == grpc.StatusCode.UNAUTHENTICATED
    )
    too_many = rejected(
        lambda: services.orders().BatchSubmitOrders(
            Batch(requests=[order()] * (MAX_ORDERS_PER_CALL + 1)), timeout=10
        )
    )
    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(too_many) == ["requests"] and "at most" in details(too_many)


# -- the gateway ------------------------------------------------------------------


def _calls(method: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_type": "unary",
                "grpc_service": "orderengine.v1.OrderService",
                "grpc_method": method,
                "grpc_code": "OK",
            },
        )
        or 0.0
    )


def _post(gateway: GatewayServer, bodies: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """Every body POSTed at once, each with its key."""

    async def all_at_once() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=gateway.url, timeout=20, limits=limits) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            "/api/orders", json=body, headers={"authorization": f"Bearer {key}"}
                        )
                        for key, body in bodies
                    )
                )
            )

    return asyncio.run(all_at_once())


def _answer(reply: httpx.Response) -> tuple[int, Any, str | None, str | None]:
    return (
        reply.status_code,
        reply.json(),
        reply.headers.get("location"),
        reply.headers.get("retry-after"),
    )


def test_the_gateway_gathers_concurrent_submits_per_api_key(
    services: Services, gateway: GatewayServer, store: OrderStore
) -> None:
    keys = services.keys
    bodies = [
        (
            keys[owner],
            {
                "inputToken": "SOL",
                "outputToken": "USDC",
                "amount": "1",
                "clientOrderId": f"{owner}-{n}",
            },
        )
        for n in range(60)
        for owner in (OWNER, OTHER_OWNER)
    ]
    before = _calls("SubmitOrder") + _calls("BatchSubmitOrders")
    batches = _calls("BatchSubmitOrders")
    replies = _post(gateway, bodies)
    calls = _calls("SubmitOrder") + _calls("BatchSubmitOrders") - before
    assert [r.status_code for r in replies] == [201] * len(bodies)
    assert calls < len(bodies) and _calls("BatchSubmitOrders") > batches
    for (_, body), reply in zip(bodies, replies, strict=True):
        order_id = reply.json()["orderId"]
        assert reply.headers["location"] == f"/api/orders/{order_id}"
        row = store.get(order_id)
        assert row is not None and row.client_order_id == body["clientOrderId"]
        assert row.owner == body["clientOrderId"].rsplit("-", 1)[0]


def test_each_gathered_failure_is_answered_as_it_is_alone(
    services: Services, gateway: GatewayServer
) -> None:
    key = services.keys[OWNER]
    sol = {"inputToken": "SOL", "outputToken": "USDC", "amount": "1"}
    (first,) = _post(gateway, [(key, {**sol, "clientOrderId": "dup"})])
    odd = [
        {**sol, "inputToken": "NOPE"},  # 400 naming inputToken
        {**sol, "amount": "2", "clientOrderId": "dup"},  # 409: reused for another order
        {**sol, "clientOrderId": "dup"},  # 200: the first order
        {**sol, "amount": "1e30"},  # beyond any amount
    ]
    bodies = [(key, body) for body in [sol] * 20 + odd * 5]
    crowd = _post(gateway, bodies)
    assert all(r.status_code == 201 for r in crowd[:20])
    for body, reply in zip([b for _, b in bodies[20:]], crowd[20:], strict=True):
        (alone,) = _post(gateway, [(key, body)])
        assert _answer(reply) == _answer(alone), body
    assert crowd[22].json()["orderId"] == first.json()["orderId"]
    assert crowd[20].json()["error"]["field"] == "inputToken"
    assert crowd[21].status_code == 409


def test_gathered_submits_over_the_rate_get_retry_after(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("SUBMIT_RATE_PER_SECOND", "1")
    monkeypatch.setenv("SUBMIT_BURST", "3")
    services: Services = request.getfixturevalue("services")
    gateway: GatewayServer = request.getfixturevalue("gateway")
    sol = {"inputToken": "SOL", "outputToken": "USDC", "amount": "1"}
    replies = _post(gateway, [(services.keys[OWNER], sol)] * 12)
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] * 3 + [429] * 9
    for reply in replies:
        if reply.status_code == 429:
            error = reply.json()["error"]
            assert (error["code"], error["reason"]) == ("RESOURCE_EXHAUSTED", "RATE_LIMITED")
            assert int(reply.headers["retry-after"]) >= 1


def test_gathered_submits_with_long_request_ids_are_all_taken(
    services: Services, redis: Redis
) -> None:
    """gRPC refuses a call whose metadata is too large (RESOURCE_EXHAUSTED, a
    429 to every caller of the batch): a batch whose request ids would not
    fit goes as several calls, and each order's job still carries its own."""
    ids = [f"{n:03d}" + "r" * 125 for n in range(MAX_ORDERS_PER_CALL)]  # the longest taken

    async def submit(upstream: Upstream, request_id: str) -> Submitted:
        with request_ids.using(request_id):
            return await upstream.submit_order(order("0.01"), f"Bearer {services.keys[OWNER]}")

    async def all_at_once() -> list[Submitted]:
        upstream = Upstream(services.address("order"))
        try:
            return list(await asyncio.gather(*(submit(upstream, i) for i in ids)))
        finally:
            await upstream.close()

    before = _calls("BatchSubmitOrders")
    answers = asyncio.run(all_at_once())
    # Several calls (the server counts each as it ends it).
    eventually(lambda: _calls("BatchSubmitOrders") - before > 1, timeout=5)
    order_ids = [answer.order.order_id for answer in answers]
    # A job follows its order's answer (it is queued once the answer is
    # given), its marker last: once every marker is there, every job is.
    eventually(lambda: len(queued_since(redis, order_ids)) == len(order_ids), timeout=5)
    queue = order_queue(redis, Settings().queue_name)
    taken: list[str] = []
    carried: dict[str, dict[str, str]] = {}
    while True:  # a worker takes a few jobs at a time
        orders, carrying = take_queued(queue, room=len(ids))
        if not orders:
            break
        taken += orders
        carried.update(carrying)
    assert sorted(taken) == sorted(order_ids)
    assert [carried[order_id]["x-request-id"] for order_id in order_ids] == ids
