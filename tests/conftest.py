"""Real parts for every test: a real Redis (embedded, or TEST_REDIS_URL), a
real database (SQLite, or TEST_DATABASE_URL), gRPC servers on free ports and
worker processes. Redis is flushed and the tables emptied before each test."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import uvicorn
from redis import Redis
from sqlalchemy import delete

from executor.driver.context import Context
from gateway.app import create_app
from order_service.watch_hub import WatchHub
from orderengine.local.embedded_redis import EmbeddedRedis
from orderengine.local.ports import free_port
from orderengine.mesh.auth import key_metadata, token_metadata, with_metadata
from orderengine.settings import Settings
from orderengine.store import migrate
from orderengine.store.api_keys import ApiKeys
from orderengine.store.database import create_database_engine
from orderengine.store.models import EventRow, OrderRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import (
    execution_service_pb2_grpc,
    order_pb2,
    order_service_pb2_grpc,
    quote_service_pb2_grpc,
)
from tests.helpers import eventually, fund, worker_context

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent

# The chain lands and confirms at once in tests unless a test says otherwise.
FAST_CHAIN = {
    "CHAIN_SLOT_SECONDS": "0",
    "CHAIN_CONFIRM_SECONDS": "0",
    "TRACKER_POLL_SECONDS": "0.02",
    "RETRY_BASE_SECONDS": "0.05",
    "RETRY_CAP_SECONDS": "0.2",
    "SHUTDOWN_GRACE_SECONDS": "1",
}
# The secret the engine's own services share in tests.
INTERNAL_TOKEN = "test-internal-token"
# The owners the fixtures make a key for; the first is the default caller.
OWNER, OTHER_OWNER = "alice", "bob"


# The fixtures through which a test reaches the backends it is given.
BACKENDS = frozenset({"database_url", "redis_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With TEST_BACKENDS_ONLY=1 (CI's second pass, on PostgreSQL and
    Redis, after a whole pass on the embedded ones) only the tests that
    reach a backend run: through the fixtures, or as the whole stack
    (marked ``stack``, they read TEST_* themselves). The rest would run
    the same code on the same input again."""
    if os.environ.get("TEST_BACKENDS_ONLY") != "1":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        reaches = BACKENDS & set(getattr(item, "fixturenames", ()))
        (keep if reaches or item.get_closest_marker("stack") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis") / "test.db", persist=False)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )
    migrate.upgrade(url)
    return url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def store(database_url: str) -> Iterator[OrderStore]:
    engine = create_database_engine(database_url)
    with engine.begin() as connection:
        connection.execute(delete(EventRow))
        connection.execute(delete(OrderRow))
        # API keys stay: a module's cluster (tests/chaos) keeps its key; each
        # test makes fresh ones (api_keys).
    yield OrderStore(engine)
    engine.dispose()


@pytest.fixture
def api_keys(store: OrderStore) -> dict[str, str]:
    """A fresh API key for each of two owners: {owner: key}."""
    keys = ApiKeys(store.engine)
    return {owner: keys.create(owner)[0] for owner in (OWNER, OTHER_OWNER)}


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    redis: Redis,
    store: OrderStore,
    redis_url: str,
    database_url: str,
    api_keys: dict[str, str],
) -> dict[str, str]:
    """The environment every part of the engine under test reads: clients
    (the CLI, the Node client, the bench) send OWNER's key."""
    values = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **FAST_CHAIN,
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        "ORDERENGINE_API_KEY": api_keys[OWNER],
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


class LoopThread:
    """An event loop in a thread, for the grpc.aio servers under test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def read(self, value: Callable[[], T]) -> T:
        """``value()`` on the loop, where the servers' state may be read."""

        async def on_loop() -> T:
            return value()

        return self.run(on_loop())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Services:
    """The three gRPC services, in this process, on free ports."""

    loop: LoopThread
    servers: dict[str, Any]
    channels: list[grpc.Channel]
    # {owner: API key}; orders() calls as OWNER unless told otherwise.
    keys: dict[str, str]

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"

    def env(self) -> dict[str, str]:
        return {
            "ORDER_SERVICE_ADDRESS": self.address("order"),
            "QUOTE_SERVICE_ADDRESS": self.address("quote"),
            "EXECUTION_SERVICE_ADDRESS": self.address("execution"),
        }

    def bare_channel(self, name: str) -> grpc.Channel:
        """A channel that shows no key and no token."""
        channel = grpc.insecure_channel(self.address(name))
        self.channels.append(channel)
        return channel

    def channel(self, name: str, key: str | None = None) -> grpc.Channel:
        """A channel as the engine's clients have it: OrderService with an
        API key (OWNER's unless ``key``), the internal services with the token."""
        if name == "order":
            metadata = key_metadata(key or self.keys[OWNER])
        else:
            metadata = token_metadata(INTERNAL_TOKEN)
        return with_metadata(self.bare_channel(name), metadata)

    def orders(self, owner: str = OWNER) -> order_service_pb2_grpc.OrderServiceStub:
        return order_service_pb2_grpc.OrderServiceStub(self.channel("order", self.keys[owner]))

    def quotes(self) -> quote_service_pb2_grpc.QuoteServiceStub:
        return quote_service_pb2_grpc.QuoteServiceStub(self.channel("quote"))

    def chain(self) -> execution_service_pb2_grpc.ExecutionServiceStub:
        return execution_service_pb2_grpc.ExecutionServiceStub(self.channel("execution"))


@pytest.fixture
def no_price_impact_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_PRICE_IMPACT_PCT at 100 (no route refused for its impact), for
    the services a test asks for after this fixture: orders sized for
    something else than the market (the largest amount a token holds)."""
    monkeypatch.setenv("MAX_PRICE_IMPACT_PCT", "100")


@pytest.fixture
def services(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, api_keys: dict[str, str]
) -> Iterator[Services]:
    from executor.main import create_execution_server
    from order_service.main import create_order_server
    from router_service.main import create_quote_server

    settings = Settings()
    loop = LoopThread()
    servers: dict[str, Any] = {}
    running = Services(loop, servers, [], api_keys)
    try:
        servers["quote"] = loop.run(create_quote_server("127.0.0.1:0", settings))
        servers["execution"] = loop.run(create_execution_server("127.0.0.1:0", settings))
        # OrderService calls QuoteService: it needs the address just made.
        monkeypatch.setenv("QUOTE_SERVICE_ADDRESS", running.address("quote"))
        monkeypatch.setenv("EXECUTION_SERVICE_ADDRESS", running.address("execution"))
        servers["order"] = loop.run(create_order_server("127.0.0.1:0", Settings()))
        monkeypatch.setenv("ORDER_SERVICE_ADDRESS", running.address("order"))
        # Both owners' wallets hold plenty, so that their orders are not
        # refused for want of funds unless a test empties them.
        for owner in (OWNER, OTHER_OWNER):
            fund(settings.chain_redis_url, owner)
        yield running
    finally:
        for channel in running.channels:
            channel.close()
        for server in servers.values():
            loop.run(server.stop(0.5))
        loop.close()


class RecordedHub(WatchHub):
    """An OrderService watch hub that records the last sequence it
    delivered of each order, and the most events any inbox ever held right
    after a delivery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last: dict[str, int] = {}
        self.most_held = 0

    def _deliver(self, event: order_pb2.OrderEvent) -> None:
        super()._deliver(event)
        self.last[event.order_id] = event.sequence
        for inbox in self._inboxes.get(event.order_id, ()):
            self.most_held = max(self.most_held, len(inbox))


@pytest.fixture
def hubs(monkeypatch: pytest.MonkeyPatch) -> list[RecordedHub]:
    """Every OrderService watch hub made from now on: a module that asks
    for it makes its ``services`` fixture depend on it."""
    made: list[RecordedHub] = []

    class Recorded(RecordedHub):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr("order_service.main.WatchHub", Recorded)
    return made


class Processes:
    """Engine processes (workers, trackers) started for one test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env)
        self.running.append(process)
        return process

    def worker(self) -> subprocess.Popen[bytes]:
        return self.start("-m", "executor.main", "worker")

    def tracker(self) -> subprocess.Popen[bytes]:
        return self.start("-m", "executor.main", "tracker")

    def with_metrics(self, part: str) -> str:
        """Starts ``executor.main part`` serving /metrics; returns its URL."""
        port = free_port()
        self.env = {**self.env, "METRICS_PORT": str(port)}
        self.start("-m", "executor.main", part)
        return f"http://127.0.0.1:{port}/metrics"

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def ctx(services: Services) -> Iterator[Context]:
    """What a worker, the tracker or the trigger part holds, beside the services."""
    with worker_context() as built:
        yield built


@pytest.fixture
def processes(services: Services) -> Iterator[Processes]:
    # os.environ already carries the test's settings and the servers' addresses.
    running = Processes(dict(os.environ))
    yield running
    running.stop()


@pytest.fixture
def engine(processes: Processes) -> Processes:
    """The whole engine: in-process services, one worker and one tracker."""
    processes.worker()
    processes.tracker()
    return processes


# -- a real uvicorn serving the gateway ---------------------------------------


class GatewayServer:
    """The gateway app under uvicorn, in a thread with its own event loop,
    on a free port."""

    def __init__(self, order_service_address: str, resume_seconds: float = 10.0) -> None:
        self.app = create_app(order_service_address, resume_seconds=resume_seconds)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.port = int(listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=1)
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listener]}, daemon=True
        )
        self.thread.start()
        eventually(lambda: self.server.started, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def gateway(services: Services) -> Iterator[GatewayServer]:
    """The gateway in front of this test's OrderService."""
    server = GatewayServer(services.address("order"))
    yield server
    server.stop()


def auth() -> dict[str, str]:
    """The test's caller: the key the conftest's env names (any key for a
    fake OrderService, which checks none)."""
    return {"authorization": f"Bearer {os.environ.get('ORDERENGINE_API_KEY', 'oe_fake')}"}
