"""A service whose server fails to start part-way (its port is taken) closes
what it had opened: Redis clients, the database engine, background tasks."""

from __future__ import annotations

import asyncio
import importlib
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine, event

from orderengine.mesh.serving import Server
from orderengine.settings import Settings
from orderengine.store.database import create_database_engine
from tests.conftest import LoopThread

CreateServer = Callable[[str, Settings], Coroutine[Any, Any, Server]]


@pytest.fixture
def busy_address() -> Iterator[str]:
    """An address another socket listens on (without SO_REUSEPORT, so gRPC
    cannot share it)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield f"127.0.0.1:{taken.getsockname()[1]}"


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    # A loop that outlives the failed start: asyncio.run would cancel what
    # the server left running and hide it.
    running = LoopThread()
    yield running
    running.close()


class Opened:
    """Every Redis client and database engine a service's module makes,
    and which of them it closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
        self.redis_clients: list[Any] = []
        self.closed_clients: list[Any] = []
        self.engines: list[Engine] = []
        self.disposed: list[Engine] = []
        opened = self

        class SyncRedis(Redis):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                opened.redis_clients.append(self)

            def close(self) -> None:
                opened.closed_clients.append(self)
                super().close()

        class AioRedis(AsyncRedis):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                opened.redis_clients.append(self)

            async def aclose(self, close_connection_pool: bool | None = None) -> None:
                opened.closed_clients.append(self)
                await super().aclose(close_connection_pool)

        def engine(url: str) -> Engine:
            made = create_database_engine(url)
            self.engines.append(made)
            event.listen(made, "engine_disposed", lambda *_: self.disposed.append(made))
            return made

        made = importlib.import_module(module)
        for name in ("Redis", "AsyncRedis"):
            if hasattr(made, name):
                asynchronous = issubclass(getattr(made, name), AsyncRedis)
                monkeypatch.setattr(made, name, AioRedis if asynchronous else SyncRedis)
        if hasattr(made, "async_redis"):
            monkeypatch.setattr(made, "async_redis", AioRedis.from_url)
        if hasattr(made, "create_database_engine"):
            monkeypatch.setattr(made, "create_database_engine", engine)

    def left_open(self) -> list[Any]:
        return [c for c in self.redis_clients if not any(c is d for d in self.closed_clients)] + [
            e for e in self.engines if not any(e is d for d in self.disposed)
        ]


def tasks_left(loop: LoopThread) -> set[asyncio.Task[Any]]:
    return loop.read(lambda: {t for t in asyncio.all_tasks() if t is not asyncio.current_task()})


def fails_leaving_nothing(
    loop: LoopThread, opened: Opened, create: CreateServer, address: str, redis: Redis
) -> None:
    connections = len(redis.client_list())
    with pytest.raises(RuntimeError, match="Failed to bind"):
        loop.run(create(address, Settings()))
    # Time for anything left running to connect (a subscription, a lander).
    time.sleep(0.5)
    assert opened.redis_clients, "the service opened no Redis client: nothing was tested"
    assert opened.left_open() == []
    assert not tasks_left(loop)
    assert len(redis.client_list()) == connections


@pytest.mark.parametrize(
    ("module", "create", "opens_a_database"),
    [
        ("order_service.main", "create_order_server", True),
        ("router_service.main", "create_quote_server", False),
        ("executor.main", "create_execution_server", False),
    ],
    ids=["order_service", "quote_service", "execution_service"],
)
def test_a_service_closes_what_it_opened_when_its_port_is_taken(
    env: dict[str, str],
    redis: Redis,
    loop: LoopThread,
    busy_address: str,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    create: str,
    opens_a_database: bool,
) -> None:
    create_server: CreateServer = getattr(importlib.import_module(module), create)
    opened = Opened(monkeypatch, module)
    fails_leaving_nothing(loop, opened, create_server, busy_address, redis)
    if opens_a_database:
        assert opened.engines, f"{module} opened no database engine: nothing was tested"
