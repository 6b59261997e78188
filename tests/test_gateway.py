"""The HTTP + WebSocket gateway, served by a real uvicorn in front of the
real OrderService (in-process, on free ports) and, where orders must run to
the end, the real worker and tracker."""

from __future__ import annotations

import ast
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from orderengine.amounts import format_amount
from orderengine.errors import FieldError, status
from orderengine.settings import Settings
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.conftest import (
    OWNER,
    ROOT,
    GatewayServer,
    LoopThread,
    Processes,
    RecordedHub,
    Services,
    auth,
)
from tests.helpers import PLENTY, eventually, fund

SEED_BODY = {"inputToken": "SOL", "outputToken": "USDC", "amount": 10}
STATUSES = ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def services(hubs: list[RecordedHub], services: Services) -> Services:
    # The conftest's services, made after the hubs are recorded.
    return services


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=15, headers=auth()) as client:
        yield client


def watchers(services: Services, hubs: list[RecordedHub]) -> int:
    """Open WatchOrder streams in OrderService (read on its own loop)."""
    return services.loop.read(lambda: sum(hub.watchers for hub in hubs))


def open_streams(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["openStreams"])


# -- WebSocket helpers --------------------------------------------------------


@dataclass
class Watched:
    messages: list[dict[str, Any]]
    code: int | None
    reason: str


def watch(gateway: GatewayServer, order_id: str, query: str = "", timeout: float = 30) -> Watched:
    """Every message until the gateway closes the socket."""
    messages = []
    with connect(
        f"{gateway.ws_url}/ws/orders/{order_id}{query}", open_timeout=10, additional_headers=auth()
    ) as ws:
        deadline = time.monotonic() + timeout
        try:
            while True:
                messages.append(json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0))))
        except ConnectionClosed:
            pass
        return Watched(messages, ws.close_code, ws.close_reason or "")


def recv(ws: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def submit(http: httpx.Client, **fields: Any) -> str:
    reply = http.post("/api/orders", json={**SEED_BODY, **fields})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["orderId"])


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body = reply.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# -- POST /api/orders ---------------------------------------------------------


def test_seed_body_answers_201_exactly_as_the_seed(http: httpx.Client) -> None:
    reply = http.post("/api/orders", json=SEED_BODY)
    assert reply.status_code == 201
    body = reply.json()
    assert set(body) == {"message", "orderId"}
    assert body["message"] == "Order queued successfully"
    assert uuid.UUID(body["orderId"])
    assert reply.headers["location"] == f"/api/orders/{body['orderId']}"

    order = http.get(f"/api/orders/{body['orderId']}").json()
    assert (order["inputToken"], order["outputToken"], order["amount"]) == ("SOL", "USDC", "10")
    assert order["status"] == "PENDING" and order["slippageBps"] == 50
    assert ISO_UTC.match(order["createTime"]), order


@pytest.mark.parametrize(
    ("raw_amount", "stored"),
    [
        ("0.1", "0.1"),  # a float would be 0.1000000000000000055...
        ("2500.5", "2500.5"),
        ("1e-3", "0.001"),
        ("12345678.123456789", "12345678.123456789"),  # more digits than a double holds
        ('"0.25"', "0.25"),
    ],
)
def test_json_number_amounts_are_read_exactly(
    no_price_impact_limit: None, http: httpx.Client, raw_amount: str, stored: str
) -> None:
    body = f'{{"inputToken": "SOL", "outputToken": "USDC", "amount": {raw_amount}}}'
    reply = http.post("/api/orders", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 201, reply.text
    order = http.get(f"/api/orders/{reply.json()['orderId']}").json()
    assert order["amount"] == stored


@pytest.mark.parametrize("quoted", [False, True])
def test_the_largest_u64_amount_is_taken_exactly_and_one_more_is_refused(
    no_price_impact_limit: None, http: httpx.Client, quoted: bool, redis_url: str
) -> None:
    """SPL amounts are u64: 2**64 - 1 base units of USDC (6 decimals) is an
    order, stored and read back to the last digit, as a JSON number or a
    string; 2**64 is a 400 naming the field and the bound. The wallet holds
    that much USDC, the most a token account holds."""
    fund(redis_url, OWNER, {"USDC": format_amount(2**64 - 1 - int(PLENTY["USDC"]) * 10**6, 6)})

    def post(amount: str) -> httpx.Response:
        raw = f'"{amount}"' if quoted else amount
        body = f'{{"inputToken": "USDC", "outputToken": "SOL", "amount": {raw}}}'
        return http.post("/api/orders", content=body, headers={"content-type": "application/json"})

    taken = post("18446744073709.551615")
    assert taken.status_code == 201, taken.text
    assert http.get(f"/api/orders/{taken.json()['orderId']}").json()["amount"] == (
        "18446744073709.551615"
    )
    refused = post("18446744073709.551616")
    assert refused.status_code == 400, refused.text
    error = error_of(refused)
    assert (error["code"], error["field"]) == ("INVALID_ARGUMENT", "amount")
    assert "too large: at most 18446744073709.551615" in error["message"]


def test_slippage_and_client_order_id(http: httpx.Client) -> None:
    first = http.post(
        "/api/orders", json={**SEED_BODY, "slippageBps": 120, "clientOrderId": "web-1"}
    )
    assert first.status_code == 201
    order_id = first.json()["orderId"]
    order = http.get(f"/api/orders/{order_id}").json()
    assert order["slippageBps"] == 120 and order["clientOrderId"] == "web-1"

    again = http.post(
        "/api/orders", json={**SEED_BODY, "slippageBps": 120, "clientOrderId": "web-1"}
    )
    assert again.status_code == 200
    assert again.json() == {
        "message": "Order already queued with this clientOrderId",
        "orderId": order_id,
    }

    other = http.post("/api/orders", json={**SEED_BODY, "amount": 11, "clientOrderId": "web-1"})
    assert other.status_code == 409
    error = error_of(other)
    assert error["code"] == "ALREADY_EXISTS"
    assert error["field"] == "clientOrderId" and order_id in error["message"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        # The engine's checks, with its message and the field in the JSON's name.
        ({"outputToken": "DOGE"}, "outputToken", "unknown token 'DOGE'"),
        ({"inputToken": "XYZ"}, "inputToken", "unknown token"),
        ({"outputToken": "SOL"}, "outputToken", "must differ"),
        ({"amount": 0}, "amount", "greater than zero"),
        ({"amount": -5}, "amount", "positive decimal"),
        ({"amount": "ten"}, "amount", "positive decimal"),
        ({"amount": "0.0000000001"}, "amount", "decimal places"),
        # Past a u64 of base units.
        ({"amount": "18446744073.709551616"}, "amount", "too large: at most 18446744073.709551615"),
        ({"slippageBps": 9000}, "slippageBps", "1 to 5000"),
        ({"clientOrderId": "x" * 129}, "clientOrderId", "at most 128"),
        # The gateway's own: wrong JSON types.
        ({"amount": True}, "amount", "decimal string or a number"),
        ({"amount": None}, "amount", "decimal string or a number"),
        ({"amount": [1]}, "amount", "decimal string or a number"),
        ({"inputToken": 5}, "inputToken", "valid string"),
        ({"slippageBps": 1.5}, "slippageBps", "integer"),
        ({"slippageBps": -1}, "slippageBps", "greater than or equal to 0"),
    ],
)
def test_bad_orders_are_400_naming_the_field(
    http: httpx.Client, body: dict[str, Any], field: str, words: str
) -> None:
    reply = http.post("/api/orders", json={**SEED_BODY, **body})
    assert reply.status_code == 400, reply.text
    error = error_of(reply)
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["field"] == field
    assert words in error["message"]
    assert http.get("/api/orders").json()["orders"] == []


def test_missing_fields_are_named(http: httpx.Client) -> None:
    for missing in ("inputToken", "outputToken", "amount"):
        body = {k: v for k, v in SEED_BODY.items() if k != missing}
        reply = http.post("/api/orders", json=body)
        assert reply.status_code == 400
        assert error_of(reply)["field"] == missing


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("", "application/json"),
        ("", None),
        ("{", "application/json"),
        ('{"amount": 10,}', "application/json"),
        ('{"inputToken": "SOL", "outputToken": "USDC", "amount": NaN}', "application/json"),
        ("[1, 2]", "application/json"),
        ('"SOL"', "application/json"),
        ("inputToken=SOL", "application/x-www-form-urlencoded"),
        ("\xff\xfe", "application/json"),
    ],
)
def test_a_missing_or_malformed_body_is_a_400_not_a_500(
    http: httpx.Client, content: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = http.post("/api/orders", content=content.encode("latin-1"), headers=headers)
    assert reply.status_code == 400, reply.text
    error = error_of(reply)
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["field"] == "body", error
    assert error["message"].startswith("body: ")


# -- GET, list, cancel, quote -------------------------------------------------


def test_get_and_cancel_unknown_or_malformed_orders(http: httpx.Client) -> None:
    unknown = str(uuid.uuid4())
    for method in ("GET", "DELETE"):
        reply = http.request(method, f"/api/orders/{unknown}")
        assert reply.status_code == 404
        assert error_of(reply) == {
            "code": "NOT_FOUND",
            "message": f"order {unknown} not found",
            "field": None,
            "reason": "ORDER_NOT_FOUND",
        }
        reply = http.request(method, "/api/orders/not-an-id")
        assert reply.status_code == 400
        assert error_of(reply)["field"] == "orderId"


def test_cancel_a_pending_order_then_409(http: httpx.Client) -> None:
    order_id = submit(http)  # no worker runs: it stays PENDING
    reply = http.delete(f"/api/orders/{order_id}")
    assert reply.status_code == 200
    assert reply.json()["status"] == "CANCELLED"
    again = http.delete(f"/api/orders/{order_id}")
    assert again.status_code == 409
    error = error_of(again)
    assert error["code"] == "FAILED_PRECONDITION" and "CANCELLED" in error["message"]
    assert error["reason"] == "ORDER_NOT_PENDING"


def test_list_is_paged_newest_first(http: httpx.Client) -> None:
    ids = [submit(http, amount=n) for n in (1, 2, 3)]
    first = http.get("/api/orders", params={"pageSize": 2}).json()
    assert [o["orderId"] for o in first["orders"]] == ids[::-1][:2]
    assert first["nextPageToken"]
    rest = http.get(
        "/api/orders", params={"pageSize": 2, "pageToken": first["nextPageToken"]}
    ).json()
    assert [o["orderId"] for o in rest["orders"]] == ids[:1]
    assert rest["nextPageToken"] is None
    assert len(http.get("/api/orders").json()["orders"]) == 3

    for params, field in (
        ({"pageSize": -1}, "pageSize"),
        ({"pageSize": "x"}, "pageSize"),
        ({"pageToken": "garbage"}, "pageToken"),
    ):
        reply = http.get("/api/orders", params=params)
        assert reply.status_code == 400, reply.text
        assert error_of(reply)["field"] == field


def test_a_split_quote_gives_each_legs_share_of_its_token(http: httpx.Client) -> None:
    # 3000 SOL is split over both SOL/USDC pools and through USDT (docs/market.md).
    reply = http.get(
        "/api/quote", params={"inputToken": "SOL", "outputToken": "USDC", "amount": "3000"}
    )
    assert reply.status_code == 200, reply.text
    legs = reply.json()["route"]["legs"]
    spent: dict[str, Decimal] = {}
    for leg in legs:
        spent[leg["inputToken"]] = spent.get(leg["inputToken"], Decimal(0)) + Decimal(
            leg["amountIn"]
        )
    assert spent["SOL"] == 3000 and len([leg for leg in legs if leg["inputToken"] == "SOL"]) > 1
    shares: dict[str, Decimal] = {}
    for leg in legs:
        # Two decimals, within a hundredth of the leg's part of all the route spends of its token.
        assert re.fullmatch(r"\d{1,3}\.\d\d", leg["sharePct"]), leg
        exact = Decimal(leg["amountIn"]) * 100 / spent[leg["inputToken"]]
        assert abs(Decimal(leg["sharePct"]) - exact) < Decimal("0.01"), leg
        shares[leg["inputToken"]] = shares.get(leg["inputToken"], Decimal(0)) + Decimal(
            leg["sharePct"]
        )
    assert all(total == 100 for total in shares.values()), shares


def test_quote_shows_every_venue(http: httpx.Client) -> None:
    reply = http.get(
        "/api/quote", params={"inputToken": "SOL", "outputToken": "USDC", "amount": "10"}
    )
    assert reply.status_code == 200, reply.text
    quote = reply.json()
    assert {q["venue"] for q in quote["quotes"]} == {"raydium", "meteora"}
    best = quote["quotes"][0]
    # The route gives at least the best venue (it may split or go through another token).
    assert Decimal(quote["route"]["amountOut"]) >= Decimal(best["amountOut"])
    assert Decimal(quote["route"]["minAmountOut"]) < Decimal(quote["route"]["amountOut"])

    # One pool or a path: every leg spends all it holds; the price is the route's.
    for leg in quote["route"]["legs"]:
        assert leg["sharePct"] == "100.00"
    out, spend = Decimal(quote["route"]["amountOut"]), Decimal(10)
    assert Decimal(quote["route"]["price"]) == Context(prec=6).divide(out, spend)
    assert Decimal(quote["route"]["inversePrice"]) == Context(prec=6).divide(spend, out)

    bad = http.get(
        "/api/quote", params={"inputToken": "SOL", "outputToken": "DOGE", "amount": "10"}
    )
    assert bad.status_code == 400 and error_of(bad)["field"] == "outputToken"
    missing = http.get("/api/quote", params={"inputToken": "SOL", "outputToken": "USDC"})
    assert missing.status_code == 400 and error_of(missing)["field"] == "amount"


# -- every gRPC code, from an OrderService that fails on demand ---------------


def _with_retry_info(seconds: float) -> grpc.Status:
    info, retry = any_pb2.Any(), any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="TOO_MANY_ORDERS", domain="orderengine.v1"))
    retry.Pack(
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))
        )
    )
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.RESOURCE_EXHAUSTED, message="slow down", details=[info, retry]
        )
    )


class FailingOrders(order_service_pb2_grpc.OrderServiceServicer):
    """GetOrder fails with the code named by the order id; WatchOrder replays
    a failed order."""

    async def GetOrder(
        self, request: order_service_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        code = grpc.StatusCode[request.order_id]
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            await context.abort_with_status(_with_retry_info(2.5))  # type: ignore[attr-defined]
        field = FieldError("order_id", "is wrong") if code.name == "INVALID_ARGUMENT" else None
        await context.abort_with_status(  # type: ignore[attr-defined]
            status(code, f"{code.name} on purpose", f"TEST_{code.name}", field=field)
        )
        raise AssertionError("aborted")

    async def WatchOrder(
        self, request: order_service_pb2.WatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        for sequence, state in enumerate(
            [
                order_pb2.ORDER_STATUS_PENDING,
                order_pb2.ORDER_STATUS_ROUTING,
                order_pb2.ORDER_STATUS_FAILED,
            ],
            start=1,
        ):
            event = order_pb2.OrderEvent(
                order_id=request.order_id, sequence=sequence, status=state, attempt=1
            )
            event.event_time.GetCurrentTime()
            if state == order_pb2.ORDER_STATUS_FAILED:
                event.reason, event.reason_code = "no route for this pair", "NO_ROUTE"
            yield event


@pytest.fixture
def failing_gateway() -> Iterator[GatewayServer]:
    loop = LoopThread()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        # Only GetOrder and WatchOrder are called; the rest stay abstract.
        servicer = FailingOrders()  # type: ignore[abstract]
        order_service_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop.run(start())
    gateway = GatewayServer(f"127.0.0.1:{port}")
    yield gateway
    gateway.stop()
    loop.run(server.stop(0))
    loop.close()


@pytest.mark.parametrize(
    ("code", "http_status", "field"),
    [
        ("INVALID_ARGUMENT", 400, "orderId"),
        ("UNAUTHENTICATED", 401, None),
        ("PERMISSION_DENIED", 403, None),
        ("NOT_FOUND", 404, None),
        ("ALREADY_EXISTS", 409, None),
        ("FAILED_PRECONDITION", 409, None),
        ("UNAVAILABLE", 503, None),
        ("DEADLINE_EXCEEDED", 503, None),
        ("INTERNAL", 502, None),
        ("UNIMPLEMENTED", 502, None),
    ],
)
def test_every_grpc_code_maps_to_an_http_status(
    failing_gateway: GatewayServer, code: str, http_status: int, field: str | None
) -> None:
    reply = httpx.get(f"{failing_gateway.url}/api/orders/{code}", timeout=10)
    assert reply.status_code == http_status
    assert error_of(reply) == {
        "code": code,
        "message": f"{code} on purpose",
        "field": field,
        "reason": f"TEST_{code}",
    }


def test_resource_exhausted_is_429_with_retry_after(failing_gateway: GatewayServer) -> None:
    reply = httpx.get(f"{failing_gateway.url}/api/orders/RESOURCE_EXHAUSTED", timeout=10)
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "3"
    assert error_of(reply) == {
        "code": "RESOURCE_EXHAUSTED",
        "message": "slow down",
        "field": None,
        "reason": "TOO_MANY_ORDERS",
    }


def test_failed_event_carries_its_reason(failing_gateway: GatewayServer) -> None:
    watched = watch(failing_gateway, "any")
    assert [m["status"] for m in watched.messages] == ["PENDING", "ROUTING", "FAILED"]
    failed = watched.messages[-1]
    assert failed["reason"] == "no route for this pair" and failed["reasonCode"] == "NO_ROUTE"
    assert "reason" not in watched.messages[0]
    assert (watched.code, watched.reason) == (1000, "order FAILED")


# -- health, OpenAPI, docs ----------------------------------------------------


def test_healthz_reports_gateway_and_upstream(http: httpx.Client, services: Services) -> None:
    reply = http.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "SERVING",
        "gateway": "SERVING",
        "openStreams": 0,
        "upstream": {
            "service": "orderengine.v1.OrderService",
            "address": services.address("order"),
            "status": "SERVING",
            "message": None,
        },
    }


def test_order_service_down_is_503(env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{s.getsockname()[1]}"
    gateway = GatewayServer(nobody, resume_seconds=0.5)
    try:
        health = httpx.get(f"{gateway.url}/healthz", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "NOT_SERVING"
        assert health.json()["gateway"] == "SERVING"
        assert health.json()["upstream"]["status"] == "UNAVAILABLE"
        assert health.json()["upstream"]["address"] == nobody
        reply = httpx.post(f"{gateway.url}/api/orders", json=SEED_BODY, timeout=10)
        assert reply.status_code == 503
        assert error_of(reply)["code"] == "UNAVAILABLE"
        watched = watch(gateway, str(uuid.uuid4()))
        assert watched.messages == []
        assert watched.code == 1011 and "after=0" in watched.reason
    finally:
        gateway.stop()


def test_openapi_document_and_docs_are_served(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["info"]["title"] == "Order engine gateway"
    assert {"/api/orders", "/api/orders/{order_id}", "/api/quote", "/healthz"} <= set(
        document["paths"]
    )
    submit_op = document["paths"]["/api/orders"]["post"]
    assert {"201", "400", "409", "503"} <= set(submit_op["responses"])
    assert "422" not in json.dumps(document["paths"])
    body = document["components"]["schemas"]["SubmitOrderBody"]
    assert set(body["required"]) == {"inputToken", "outputToken", "amount"}
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert http.get("/redoc").status_code == 200


def test_unknown_paths_get_the_error_body(http: httpx.Client) -> None:
    reply = http.get("/api/nothing")
    assert reply.status_code == 404
    assert error_of(reply)["code"] == "NOT_FOUND"


# -- the WebSocket ------------------------------------------------------------


def test_ws_streams_the_seed_envelope_and_closes_after_the_terminal_event(
    engine: Processes, gateway: GatewayServer, http: httpx.Client
) -> None:
    order_id = submit(http)
    watched = watch(gateway, order_id)
    messages = watched.messages
    assert [m["status"] for m in messages] == STATUSES
    assert [m["sequence"] for m in messages] == [1, 2, 3, 4, 5]
    for message in messages:
        assert message["type"] == "ORDER_UPDATE"
        assert message["orderId"] == order_id
        assert ISO_UTC.match(message["timestamp"]), message
        assert message["attempt"] == 1
    routed, submitted, confirmed = messages[2], messages[3], messages[4]
    assert {q["venue"] for q in routed["quotes"]} == {"raydium", "meteora"}
    assert routed["route"]["legs"][0]["venue"] in ("raydium", "meteora")
    assert routed["route"]["amountIn"] == "10"
    assert confirmed["txHash"] == submitted["txHash"] and len(confirmed["txHash"]) > 40
    assert confirmed["amountOut"]
    assert "txHash" not in routed and "route" not in confirmed
    assert (watched.code, watched.reason) == (1000, "order CONFIRMED")

    order = http.get(f"/api/orders/{order_id}").json()
    assert order["status"] == "CONFIRMED" and order["txHash"] == confirmed["txHash"]
    assert order["amountOut"] == confirmed["amountOut"] and order["lastSequence"] == 5


def test_two_watchers_at_once_and_a_late_one_all_get_every_event(
    engine: Processes, gateway: GatewayServer, http: httpx.Client
) -> None:
    order_id = submit(http)
    results: list[Watched] = []
    threads = [
        threading.Thread(target=lambda: results.append(watch(gateway, order_id))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    late = watch(gateway, order_id)  # the order is CONFIRMED by now
    assert len(results) == 2
    for watched in [*results, late]:
        assert [m["status"] for m in watched.messages] == STATUSES
        assert watched.code == 1000
    assert results[0].messages == results[1].messages == late.messages


def test_ws_after_n_resumes(engine: Processes, gateway: GatewayServer, http: httpx.Client) -> None:
    order_id = submit(http)
    everything = watch(gateway, order_id).messages
    resumed = watch(gateway, order_id, "?after=3")
    assert resumed.messages == everything[3:]
    ended = watch(gateway, order_id, "?after=5")
    assert ended.messages == [] and ended.code == 1000


def test_ws_past_the_end_closes_when_the_order_ends(
    gateway: GatewayServer, http: httpx.Client, services: Services, hubs: list[RecordedHub]
) -> None:
    order_id = submit(http)
    with connect(
        f"{gateway.ws_url}/ws/orders/{order_id}?after=5", open_timeout=10, additional_headers=auth()
    ) as ws:
        eventually(lambda: watchers(services, hubs) == 1)
        assert http.delete(f"/api/orders/{order_id}").status_code == 200
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 1000
    eventually(lambda: watchers(services, hubs) == 0)


def test_ws_unknown_or_malformed_order_closes_with_a_clear_code(
    gateway: GatewayServer, http: httpx.Client
) -> None:
    unknown = str(uuid.uuid4())
    watched = watch(gateway, unknown)
    assert (watched.messages, watched.code) == ([], 4404)
    assert watched.reason == f"order {unknown} not found"

    malformed = watch(gateway, "not-an-id")
    assert malformed.code == 4400 and malformed.reason.startswith("order_id:")

    order_id = submit(http)
    for query in ("?after=x", "?after=-1", f"?after={2**63}", f"?after={'9' * 5000}"):
        bad_after = watch(gateway, order_id, query)
        assert bad_after.code == 4400 and bad_after.reason.startswith("after:")


def test_client_disconnect_cancels_the_upstream_stream(
    services: Services, hubs: list[RecordedHub], gateway: GatewayServer, http: httpx.Client
) -> None:
    order_id = submit(http)  # stays PENDING: the streams stay open until we leave
    url = f"{gateway.ws_url}/ws/orders/{order_id}"
    with (
        connect(url, additional_headers=auth()) as politely,
        connect(url, additional_headers=auth()) as abruptly,
    ):
        for ws in (politely, abruptly):
            assert recv(ws)["status"] == "PENDING"
        assert open_streams(http) == 2
        assert watchers(services, hubs) == 2

        politely.close()
        eventually(lambda: open_streams(http) == 1)
        # A client that vanishes without a close frame (a killed tab, a dropped link).
        abruptly.socket.close()
        eventually(lambda: open_streams(http) == 0)
        eventually(lambda: watchers(services, hubs) == 0)


def test_ws_resumes_when_order_service_restarts(
    services: Services, gateway: GatewayServer, http: httpx.Client
) -> None:
    order_id = submit(http)
    port = services.servers["order"].port
    with connect(f"{gateway.ws_url}/ws/orders/{order_id}", additional_headers=auth()) as ws:
        assert recv(ws)["sequence"] == 1
        # OrderService stops: its streams end with UNAVAILABLE ...
        services.loop.run(services.servers["order"].stop(0.5))
        from order_service.main import create_order_server

        # ... and a new one comes up on the same address.
        services.servers["order"] = services.loop.run(
            create_order_server(f"127.0.0.1:{port}", Settings())
        )
        eventually(lambda: http.get("/healthz").status_code == 200)
        eventually(lambda: open_streams(http) == 1)
        cancelled = http.delete(f"/api/orders/{order_id}")
        assert cancelled.status_code == 200
        update = recv(ws)
        assert (update["sequence"], update["status"]) == (2, "CANCELLED")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1000


def test_ws_moves_to_the_other_replica_when_one_stops(
    services: Services, hubs: list[RecordedHub]
) -> None:
    from order_service.main import create_order_server

    # A second OrderService; the gateway balances over both (hubs[1] is its hub).
    second = services.loop.run(create_order_server("127.0.0.1:0", Settings()))
    replicas = [services.servers["order"], second]
    running = [True, True]
    gateway = GatewayServer(f"{services.address('order')},127.0.0.1:{second.port}")
    try:
        with httpx.Client(base_url=gateway.url, timeout=10, headers=auth()) as http:
            order_id = submit(http)  # stays PENDING: no worker runs here
            url = f"{gateway.ws_url}/ws/orders/{order_id}"
            with (
                connect(url, additional_headers=auth()) as one,
                connect(url, additional_headers=auth()) as two,
            ):
                for ws in (one, two):
                    assert recv(ws)["sequence"] == 1

                def per_replica() -> list[int]:
                    return services.loop.read(lambda: [hub.watchers for hub in hubs])

                eventually(lambda: sum(per_replica()) == 2)
                # Stop a replica that serves a stream: its streams end with
                # UNAVAILABLE and the gateway opens them on the other.
                struck = next(i for i, n in enumerate(per_replica()) if n)
                services.loop.run(replicas[struck].stop(0.5))
                running[struck] = False
                # The fixture stops services.servers["order"]: the one left.
                services.servers["order"] = replicas[1 - struck]
                eventually(lambda: per_replica()[1 - struck] == 2)
                assert open_streams(http) == 2
                cancelled = http.delete(f"/api/orders/{order_id}")
                assert cancelled.status_code == 200
                for ws in (one, two):
                    # The next event once: nothing lost, nothing repeated.
                    update = recv(ws)
                    assert (update["sequence"], update["status"]) == (2, "CANCELLED")
                    with pytest.raises(ConnectionClosed):
                        ws.recv(timeout=10)
                    assert ws.close_code == 1000
    finally:
        gateway.stop()
        for replica, up in zip(replicas, running, strict=True):
            if up and replica is not services.servers["order"]:
                services.loop.run(replica.stop(0))


def test_ws_closes_1011_when_order_service_stays_away(services: Services) -> None:
    gateway = GatewayServer(services.address("order"), resume_seconds=0.5)
    try:
        with httpx.Client(base_url=gateway.url, timeout=10, headers=auth()) as http:
            order_id = submit(http)
            with connect(f"{gateway.ws_url}/ws/orders/{order_id}", additional_headers=auth()) as ws:
                assert recv(ws)["sequence"] == 1
                services.loop.run(services.servers["order"].stop(0.5))
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
                assert ws.close_code == 1011
                assert ws.close_reason == "order service unavailable; reconnect with ?after=1"
            assert open_streams(http) == 0
    finally:
        gateway.stop()


# -- the design rule ------------------------------------------------------------

ENGINE_PACKAGES = {"orderengine", "order_service", "router_service", "executor", "gateway"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_gateway_imports_only_the_stubs_the_settings_the_channels_and_its_framework() -> None:
    # The channel factory is how every client reaches a service (TLS, keepalive,
    # balancing, interceptors); the gateway is one of those clients, nothing more
    # (and resumes a broken watch as every client does: orderengine.mesh.resumption;
    # and serves HTTPS with the engine's certificate: orderengine.mesh.tls; and says
    # its version in the OpenAPI document: orderengine.client.version; and gives
    # its requests ids, log lines and spans as every service its calls:
    # orderengine.observability; and gathers its callers' submits as OrderService
    # gathers its writes: orderengine.batching; and reads a route's shares and
    # price as the CLI prints them: orderengine.client.route_figures).
    for path in (ROOT / "gateway").rglob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] in ENGINE_PACKAGES:
                assert name.split(".")[0] == "gateway" or name.startswith(
                    (
                        "orderengine.v1",
                        "orderengine.client.version",
                        "orderengine.settings",
                        "orderengine.mesh.channels",
                        "orderengine.mesh.resumption",
                        "orderengine.mesh.tls",
                        "orderengine.observability",
                        "orderengine.batching",
                        "orderengine.client.route_figures",
                    )
                ), f"{path}: imports {name}"


def test_nothing_imports_the_gateway() -> None:
    for package in ENGINE_PACKAGES - {"gateway"}:
        for path in (ROOT / package).rglob("*.py"):
            assert not any(name.split(".")[0] == "gateway" for name in _imports(path)), path
