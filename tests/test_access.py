"""Access: API keys for OrderService's callers (over gRPC, HTTP and the
WebSocket), every order its owner's alone, and the internal services
closed to all but the engine's own parts."""

from __future__ import annotations

import json
import logging
import stat
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from orderengine import cli
from orderengine.local.stack import LOCAL_OWNER, local_key
from orderengine.mesh.auth import INTERNAL_TOKEN_HEADER, key_metadata, with_metadata
from orderengine.settings import Settings
from orderengine.store import migrate
from orderengine.store.api_keys import ApiKeys, digest
from orderengine.store.database import create_database_engine
from orderengine.store.models import ApiKeyRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import (
    execution_service_pb2,
    execution_service_pb2_grpc,
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)
from tests.conftest import INTERNAL_TOKEN, OTHER_OWNER, OWNER, GatewayServer, Services
from tests.helpers import SOL_USDC, Submit, rejected


def stub_with(services: Services, key: str | None) -> order_service_pb2_grpc.OrderServiceStub:
    channel = services.bare_channel("order")
    if key is not None:
        channel = with_metadata(channel, key_metadata(key))
    return order_service_pb2_grpc.OrderServiceStub(channel)


def every_call(
    stub: order_service_pb2_grpc.OrderServiceStub, order_id: str
) -> dict[str, Callable[[], Any]]:
    return {
        "SubmitOrder": lambda: stub.SubmitOrder(SOL_USDC, timeout=10),
        "GetOrder": lambda: stub.GetOrder(
            order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10
        ),
        "ListOrders": lambda: stub.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10),
        "CancelOrder": lambda: stub.CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10
        ),
        "WatchOrder": lambda: stub.WatchOrder(
            order_service_pb2.WatchOrderRequest(order_id=order_id), timeout=10
        ),
        "QuoteOrder": lambda: stub.QuoteOrder(
            order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
            timeout=10,
        ),
    }


# -- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", [None, "", "Basic dXNlcjpwYXNz", "oe_not-a-real-key", "not-even-ours", "oe_" + "x" * 500]
)
def test_without_a_good_key_nothing_is_processed(
    services: Services, store: OrderStore, key: str | None
) -> None:
    mine = services.orders().SubmitOrder(SOL_USDC, timeout=10).order
    if key is None:
        stub = stub_with(services, None)
    else:
        metadata = [("authorization", key if key.startswith("Basic") else f"Bearer {key}")]
        stub = order_service_pb2_grpc.OrderServiceStub(
            with_metadata(services.bare_channel("order"), metadata)
        )
    for name, call in every_call(stub, mine.order_id).items():
        error = rejected(call)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert "API key" in (error.details() or ""), name
    # Nothing stored, nothing cancelled.
    assert [r.order_id for r in store.list_page(OWNER, 10)[0]] == [mine.order_id]
    assert store.list_page("", 10)[0] == []
    row = store.get(mine.order_id)
    assert row is not None and row.status == "PENDING"


def test_health_and_reflection_stay_open(services: Services) -> None:
    health = health_pb2_grpc.HealthStub(services.bare_channel("order"))
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_revoked_key_is_refused_once_the_cache_forgets_it(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    store: OrderStore,
) -> None:
    monkeypatch.setenv("API_KEY_CACHE_SECONDS", "0")
    services: Services = request.getfixturevalue("services")
    keys = ApiKeys(store.engine)
    key, info = keys.create("carol")
    stub = stub_with(services, key)
    stub.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10)
    assert [i.key_id for i in keys.revoke(info.prefix)] == [info.key_id]
    error = rejected(lambda: stub.SubmitOrder(SOL_USDC, timeout=10))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "invalid or revoked API key"
    assert store.list_page("carol", 10)[0] == []


def test_a_verified_key_is_cached_for_the_ttl(services: Services, store: OrderStore) -> None:
    # The default TTL (5 s): a key revoked a moment ago still works, without
    # a database query per call; docs/operations.md ("API keys and the internal token") says so.
    keys = ApiKeys(store.engine)
    key, info = keys.create("dave")
    stub = stub_with(services, key)
    stub.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10)
    keys.revoke(info.key_id)
    stub.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10)


def test_keys_are_stored_hashed_only(store: OrderStore, database_url: str) -> None:
    keys = ApiKeys(store.engine)
    key, info = keys.create("erin")
    assert key.startswith("oe_") and len(key) >= 40
    with store.engine.connect() as connection:
        rows = connection.execute(select(ApiKeyRow)).all()
        dump = json.dumps([[str(v) for v in row] for row in rows])
    assert key not in dump and key[len(info.prefix) :] not in dump
    assert digest(key) in dump and info.prefix == key[:11]
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):  # the file and its WAL
            assert key.encode() not in file.read_bytes()
    assert keys.owner_of(key) == "erin"
    assert keys.owner_of(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


# -- owners ---------------------------------------------------------------------


def test_another_owners_order_is_exactly_not_found(services: Services, store: OrderStore) -> None:
    alice, bob = services.orders(OWNER), services.orders(OTHER_OWNER)
    hers = alice.SubmitOrder(SOL_USDC, timeout=10).order
    nobody = str(uuid.uuid4())
    for name in ("GetOrder", "CancelOrder", "WatchOrder"):
        theirs = rejected(every_call(bob, hers.order_id)[name])
        missing = rejected(every_call(bob, nobody)[name])
        assert theirs.code() == missing.code() == grpc.StatusCode.NOT_FOUND, name
        assert theirs.details() == f"order {hers.order_id} not found"
        assert (theirs.details() or "").replace(hers.order_id, nobody) == missing.details()

        # The machine-readable details too, but for the id asked about.
        def trailers(error: grpc.RpcError, order_id: str) -> list[tuple[str, Any]]:
            pairs: list[Any] = list(error.trailing_metadata() or ())
            return [
                (k, v.replace(order_id.encode(), b"ID") if isinstance(v, bytes) else v)
                for k, v in pairs
            ]

        assert trailers(theirs, hers.order_id) == trailers(missing, nobody)
    # Bob lists only his own; his cancel changed nothing.
    assert list(bob.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10).orders) == []
    listed = alice.ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10).orders
    assert [o.order_id for o in listed] == [hers.order_id]
    row = store.get(hers.order_id)
    assert row is not None and row.status == "PENDING" and row.owner == OWNER
    # The same client_order_id is each owner's own.
    again = bob.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="2", client_order_id="same"),
        timeout=10,
    )
    first = alice.SubmitOrder(
        Submit(input_token="SOL", output_token="USDC", amount="1", client_order_id="same"),
        timeout=10,
    )
    assert not again.already_exists and not first.already_exists
    assert alice.CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=hers.order_id), timeout=10
    ).status


# -- internal services ------------------------------------------------------------


def test_internal_services_take_only_the_internal_token(services: Services) -> None:
    get_quote = quote_service_pb2.GetQuoteRequest(
        input_token="SOL", output_token="USDC", amount="1", slippage_bps=50
    )
    statuses = execution_service_pb2.GetSignatureStatusesRequest(signatures=["x"])
    for metadata, code in [
        ([], grpc.StatusCode.UNAUTHENTICATED),
        ([(INTERNAL_TOKEN_HEADER, "wrong")], grpc.StatusCode.PERMISSION_DENIED),
        ([("authorization", "Bearer wrong")], grpc.StatusCode.PERMISSION_DENIED),
        # A client's API key is no internal token.
        (key_metadata(services.keys[OWNER]), grpc.StatusCode.PERMISSION_DENIED),
    ]:
        quotes = quote_service_pb2_grpc.QuoteServiceStub(
            with_metadata(services.bare_channel("quote"), metadata)
        )
        chain = execution_service_pb2_grpc.ExecutionServiceStub(
            with_metadata(services.bare_channel("execution"), metadata)
        )
        for call in (
            lambda q=quotes: q.GetQuote(get_quote, timeout=10),
            lambda c=chain: c.GetSignatureStatuses(statuses, timeout=10),
        ):
            error = rejected(call)
            assert error.code() == code, metadata
            assert "internal" in (error.details() or "")
    # With the token (as services.quotes() sends it), and as a bearer token.
    assert services.quotes().GetQuote(get_quote, timeout=10).route.amount_out
    bearer = with_metadata(
        services.bare_channel("execution"), [("authorization", f"Bearer {INTERNAL_TOKEN}")]
    )
    execution_service_pb2_grpc.ExecutionServiceStub(bearer).GetSignatureStatuses(
        statuses, timeout=10
    )
    # Health stays open.
    health = health_pb2_grpc.HealthStub(services.bare_channel("quote"))
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1


def test_internal_services_refuse_to_start_without_a_token(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from executor.main import create_execution_server
    from router_service.main import create_quote_server

    monkeypatch.delenv("INTERNAL_TOKEN")
    for create in (create_quote_server, create_execution_server):
        with pytest.raises(RuntimeError, match="INTERNAL_TOKEN is not set"):
            asyncio.run(create("127.0.0.1:0", Settings()))


# -- logs --------------------------------------------------------------------------


def test_logs_carry_no_key(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = services.keys[OWNER]
    services.orders().SubmitOrder(SOL_USDC, timeout=10)
    bad = "oe_" + "Z" * 43
    error = rejected(lambda: stub_with(services, bad).SubmitOrder(SOL_USDC, timeout=10))
    assert bad not in (error.details() or "")
    for secret in (key, bad, INTERNAL_TOKEN, "Bearer oe_"):
        assert secret not in caplog.text


# -- the gateway -------------------------------------------------------------------


@pytest.fixture
def gateway(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    monkeypatch.setattr("gateway.watch.AUTH_MESSAGE_SECONDS", 1.0)
    server = GatewayServer(services.address("order"))
    yield server
    server.stop()


def test_gateway_answers_401_without_a_good_key(
    gateway: GatewayServer, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = "oe_" + "Q" * 43
    for headers in (
        {},
        {"authorization": f"Bearer {bad}"},
        {"authorization": "Bearer"},
        {"authorization": "Basic dXNlcjpwYXNz"},
    ):
        for method, path in (
            ("GET", "/api/orders"),
            ("POST", "/api/orders"),
            ("GET", f"/api/orders/{uuid.uuid4()}"),
            ("GET", "/api/quote?inputToken=SOL&outputToken=USDC&amount=1"),
        ):
            reply = httpx.request(
                method,
                f"{gateway.url}{path}",
                headers=headers,
                timeout=10,
                json={"inputToken": "SOL", "outputToken": "USDC", "amount": "1"},
            )
            assert reply.status_code == 401, (headers, path, reply.text)
            error = reply.json()["error"]
            assert error["code"] == "UNAUTHENTICATED"
            assert bad not in reply.text
            # HTTP's terms for an HTTP caller: the header to send, not gRPC metadata.
            assert reply.headers["www-authenticate"].startswith("Bearer")
            if headers.get("authorization", "").startswith(f"Bearer {bad}"):
                assert error["message"] == "invalid or revoked API key"
            else:
                assert error["reason"] == "API_KEY_MISSING"
                assert "'Authorization: Bearer <key>'" in error["message"], error
                assert "metadata" not in error["message"]
    assert bad not in caplog.text
    good = {"authorization": f"Bearer {services.keys[OWNER]}"}
    assert httpx.get(f"{gateway.url}/api/orders", headers=good, timeout=10).status_code == 200


def first_message(gateway: GatewayServer, order_id: str, **options: Any) -> tuple[Any, ...]:
    """(first message or None, close code, chosen subprotocol)."""
    send = options.pop("send", None)
    with connect(f"{gateway.ws_url}/ws/orders/{order_id}", open_timeout=10, **options) as ws:
        if send is not None:
            ws.send(send)
        try:
            message = json.loads(ws.recv(timeout=10))
        except ConnectionClosed:
            message = None
        return message, ws.close_code, ws.subprotocol


def test_websocket_takes_the_key_three_ways_and_never_from_the_url(
    gateway: GatewayServer, services: Services
) -> None:
    key = services.keys[OWNER]
    order_id = services.orders().SubmitOrder(SOL_USDC, timeout=10).order.order_id
    header = first_message(gateway, order_id, additional_headers={"authorization": f"Bearer {key}"})
    assert header[0]["sequence"] == 1 and header[1] is None
    protocol = first_message(gateway, order_id, subprotocols=[f"bearer.{key}"])
    assert protocol[0]["sequence"] == 1 and protocol[2] == f"bearer.{key}"
    message = first_message(gateway, order_id, send=json.dumps({"authorization": f"Bearer {key}"}))
    assert message[0]["sequence"] == 1
    # Not the caller's: exactly an unknown order.
    other = first_message(
        gateway,
        order_id,
        additional_headers={"authorization": f"Bearer {services.keys[OTHER_OWNER]}"},
    )
    assert other[:2] == (None, 4404)
    # No key, a bad one, or one in the URL: 4401.
    attempts: list[tuple[bool, dict[str, Any]]] = [
        (False, {}),
        (False, {"send": "hello"}),
        (False, {"additional_headers": {"authorization": "Bearer oe_bad"}}),
        (True, {}),
    ]
    for url_key, options in attempts:
        target = f"{order_id}?authorization=Bearer%20{key}&key={key}" if url_key else order_id
        assert first_message(gateway, target, **options)[:2] == (None, 4401), options
    # A header that holds no bearer key is a missing key, said in the socket's terms.
    with connect(
        f"{gateway.ws_url}/ws/orders/{order_id}",
        open_timeout=10,
        additional_headers={"authorization": "Basic dXNlcjpwYXNz"},
    ) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4401
        assert ws.close_reason is not None
        assert ws.close_reason.startswith("missing API key: send the Authorization header")
        assert "metadata" not in ws.close_reason


# -- the CLI and make run's key file ------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI's exit code, stdout and stderr. An uncaught error (a
    traceback) fails here, not as an exit code."""
    with pytest.raises(SystemExit) as exited:
        cli.main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_cli_keys_create_list_revoke(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], store: OrderStore
) -> None:
    run = partial(run_cli, capsys)
    code, out, err = run("keys", "create", "frank")
    key = out.strip()
    assert code == 0 and key.startswith("oe_") and "shown only now" in err
    assert ApiKeys(store.engine).owner_of(key) == "frank"
    code, out, _ = run("keys", "list")
    assert code == 0 and f"{key[:11]}...  frank" in out and "active" in out and key not in out
    code, out, _ = run("keys", "revoke", key[:11])
    assert code == 0 and f"revoked {key[:11]}... of frank" in out
    assert ApiKeys(store.engine).owner_of(key) is None
    assert run("keys", "revoke", key[:11])[0] == 1
    assert "revoked" in run("keys", "list")[1]


def test_cli_keys_finds_the_projects_database_or_says_where_it_looked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = partial(run_cli, capsys)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the default: var/orderengine.db
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run("keys", "list")
    assert code == 2
    assert f"no database var/orderengine.db in {elsewhere} or above it" in err, err
    assert "DATABASE_URL" in err
    assert list(elsewhere.iterdir()) == [], "it made a database where there was none"
    # One without the schema says how to make it.
    (elsewhere / "var").mkdir()
    (elsewhere / "var" / "orderengine.db").touch()
    code, _, err = run("keys", "list")
    assert code == 2 and "python -m orderengine.store.migrate" in err, err
    # From anywhere inside the project, the project's database.
    database = tmp_path / "project" / "var" / "orderengine.db"
    migrate.upgrade(f"sqlite:///{database}")
    inside = tmp_path / "project" / "docs"
    inside.mkdir()
    monkeypatch.chdir(inside)
    code, out, _ = run("keys", "create", "grace")
    assert code == 0
    engine = create_database_engine(f"sqlite:///{database}")
    try:
        assert ApiKeys(engine).owner_of(out.strip()) == "grace"
    finally:
        engine.dispose()
    assert list(inside.iterdir()) == []


def test_cli_reads_the_key_from_env_or_the_file(
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def orders() -> tuple[int, str]:
        with pytest.raises(SystemExit) as exited:
            cli.main(["orders"])
        out, err = capsys.readouterr()
        return int(exited.value.code or 0), out + err

    mine = services.orders(OTHER_OWNER).SubmitOrder(SOL_USDC, timeout=10).order.order_id
    monkeypatch.delenv("ORDERENGINE_API_KEY")
    monkeypatch.setenv("ORDERENGINE_API_KEY_FILE", str(tmp_path / "nothing-here"))
    code, said = orders()
    assert code == 2 and "no API key" in said
    key_file = tmp_path / "api-key"
    key_file.write_text(services.keys[OTHER_OWNER] + "\n")
    monkeypatch.setenv("ORDERENGINE_API_KEY_FILE", str(key_file))
    code, said = orders()
    assert code == 0 and mine in said
    monkeypatch.setenv("ORDERENGINE_API_KEY", "oe_wrong")
    code, said = orders()
    assert code == 2 and "UNAUTHENTICATED" in said and "oe_wrong" not in said


def test_make_run_key_file_is_made_once_and_replaced_when_revoked(
    env: dict[str, str], store: OrderStore, tmp_path: Path
) -> None:
    key_file = tmp_path / "var" / "api-key"
    settings = Settings()
    made = local_key(settings, key_file)
    assert made is not None and key_file.read_text().strip() == made
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys = ApiKeys(store.engine)
    assert keys.owner_of(made) == LOCAL_OWNER
    # A later start reuses it ...
    assert local_key(settings, key_file) is None
    assert key_file.read_text().strip() == made
    # ... unless it no longer works.
    keys.revoke(made[:11])
    again = local_key(settings, key_file)
    assert again is not None and again != made and key_file.read_text().strip() == again
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
