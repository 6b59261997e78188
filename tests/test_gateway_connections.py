"""What slow, idle or too many clients may hold of the gateway: a real
``python -m gateway.main`` process on a free port, in front of the real
OrderService, attacked from 127.0.0.1 only, with a bounded number of
sockets for a bounded time."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.config import GatewayConfig
from orderengine.local.ports import free_port
from orderengine.v1 import order_service_pb2
from tests.conftest import ROOT, Services
from tests.helpers import eventually
from tests.test_gateway import auth

HEADER_SECONDS = 2.0
SLOW_CLIENTS = 300


@contextmanager
def gateway_process(log: Path, descriptors: int | None = None, **settings: str) -> Iterator[str]:
    """The gateway as its own process; yields its URL. ``descriptors``
    lowers its file descriptor limit (set in the child itself: grpcio's
    fork hooks rule out a preexec_fn)."""
    url = f"http://127.0.0.1:{free_port()}"
    start = (
        "import resource, runpy; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({descriptors}, {descriptors})); "
        if descriptors
        else "import runpy; "
    ) + "runpy.run_module('gateway.main', run_name='__main__')"
    with log.open("w") as errors:
        gateway = subprocess.Popen(
            [sys.executable, "-c", start],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env={**os.environ, "GATEWAY_ADDRESS": url, "LOG_LEVEL": "WARNING", **settings},
        )
        try:
            eventually(lambda: _healthy(url), timeout=20)
            yield url
        finally:
            gateway.terminate()
            gateway.wait(10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def slow_client(url: str) -> socket.socket:
    """A connection that has sent a request line and one header, and no end."""
    port = int(url.rsplit(":", 1)[1])
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return client


def trickle(clients: list[socket.socket]) -> int:
    """One more header line on each; how many took it."""
    alive = 0
    for client in clients:
        try:
            client.sendall(b"X-Slow: 1\r\n")
            alive += 1
        except OSError:
            pass
    return alive


def closed_by_server(client: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing, or None if it holds the
    connection open past ``timeout``."""
    client.settimeout(timeout)
    received = b""
    try:
        while chunk := client.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return received


def test_slow_clients_are_closed_after_the_header_timeout_and_real_requests_answered(
    services: Services, tmp_path: Path
) -> None:
    with (
        gateway_process(
            tmp_path / "gateway.log",
            GATEWAY_HEADER_TIMEOUT_SECONDS=str(HEADER_SECONDS),
            GATEWAY_KEEP_ALIVE_SECONDS="1",
        ) as url,
        ExitStack() as held,
    ):
        slow = [held.enter_context(slow_client(url)) for _ in range(SLOW_CLIENTS)]
        opened = time.monotonic()
        # While they trickle, every real request is answered, and quickly.
        with httpx.Client(base_url=url, timeout=5) as http:
            while time.monotonic() - opened < HEADER_SECONDS - 0.5:
                assert trickle(slow) == SLOW_CLIENTS
                started = time.monotonic()
                assert http.get("/healthz").json()["status"] == "SERVING"
                assert time.monotonic() - started < 1
                time.sleep(0.2)
        # Past the header timeout the server has closed every one of them.
        for client in slow:
            left = HEADER_SECONDS + 3 - (time.monotonic() - opened)
            assert closed_by_server(client, max(left, 0.1)) is not None
        assert time.monotonic() - opened < HEADER_SECONDS + 3
        assert _healthy(url)

        # A kept-alive connection left idle is closed after GATEWAY_KEEP_ALIVE_SECONDS.
        idle = held.enter_context(slow_client(url))
        idle.sendall(b"\r\n")
        answered = closed_by_server(idle, 3)
        assert answered is not None and answered.startswith(b"HTTP/1.1 200 ")


def test_past_the_cap_new_connections_get_503_and_the_log_stays_small(
    services: Services, tmp_path: Path
) -> None:
    # Too few descriptors for the default cap and the listen backlog's burst
    # (2048): the cap follows the limit (to ~190), so accept() never fails on
    # descriptors and the log never floods.
    log = tmp_path / "gateway.log"
    with (
        gateway_process(
            log, descriptors=2300, GATEWAY_HEADER_TIMEOUT_SECONDS=str(HEADER_SECONDS)
        ) as url,
        ExitStack() as held,
    ):
        slow = [held.enter_context(slow_client(url)) for _ in range(SLOW_CLIENTS)]
        trickle(slow)
        time.sleep(0.5)
        ready, _, _ = select.select(slow, [], [], 0)
        refused = [answer for answer in (closed_by_server(client, 1) for client in ready) if answer]
        assert refused, "no connection was refused past the cap"
        head, _, body = refused[0].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head.lower()
        assert json.loads(body)["error"]["reason"] == "TOO_MANY_CONNECTIONS"
        # The slow ones go at the header timeout; then real requests are served.
        eventually(lambda: _healthy(url), timeout=HEADER_SECONDS + 5)
    lines = log.read_text().splitlines()
    assert len(lines) < 50, lines[:20]
    assert any("holding at most" in line for line in lines)


def test_a_websocket_outlives_the_header_timeout(services: Services, tmp_path: Path) -> None:
    order_id = (
        services.orders()
        .SubmitOrder(
            order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount="1"
            ),
            timeout=10,
        )
        .order.order_id
    )
    with (
        gateway_process(tmp_path / "gateway.log", GATEWAY_HEADER_TIMEOUT_SECONDS="0.5") as url,
        connect(
            f"{url.replace('http', 'ws')}/ws/orders/{order_id}",
            open_timeout=10,
            additional_headers=auth(),
        ) as ws,
    ):
        assert json.loads(ws.recv(timeout=10))["status"] == "PENDING"
        time.sleep(1.5)
        services.orders().CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10
        )
        assert json.loads(ws.recv(timeout=10))["status"] == "CANCELLED"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1000


@pytest.mark.parametrize(
    "name",
    ["GATEWAY_HEADER_TIMEOUT_SECONDS", "GATEWAY_KEEP_ALIVE_SECONDS", "GATEWAY_MAX_CONNECTIONS"],
)
def test_connection_limits_must_be_positive(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ValueError, match=f"^{name}: must be more than 0, got 0"):
        GatewayConfig.from_env()
