"""What every section stands on: the backing Redis and database, a stack
started on free ports, and the load process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import delete

from orderengine.client.keys import read_key_file
from orderengine.local.embedded_redis import EmbeddedRedis
from orderengine.local.funding import top_up
from orderengine.local.ports import free_port
from orderengine.local.stack import Stack
from orderengine.settings import Settings
from orderengine.store import migrate
from orderengine.store.database import create_database_engine
from orderengine.store.models import EventRow, OrderRow

# What the bench's owner holds: ten million SOL and a billion of the others,
# in whole tokens, far more than any run spends (and the faucet's limits
# raised to give it).
BENCH_WALLET = {
    "SOL": "10000000",
    "USDC": "1000000000",
    "USDT": "1000000000",
    "JUP": "1000000000",
    "RAY": "1000000000",
    "BONK": "100000000000000",
}
BENCH_FAUCET = ",".join(f"{symbol}={amount}" for symbol, amount in BENCH_WALLET.items())


def load(*args: str) -> dict[str, Any]:
    """Runs the load process and returns what it printed."""
    out = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "orderengine.local.bench.load", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"load {' '.join(args)} failed (exit {out.returncode}):\n{out.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class Backing:
    """The Redis and database every stack of the run uses, emptied between."""

    def __init__(self, workdir: Path) -> None:
        self.embedded: EmbeddedRedis | None = None
        self.redis_url = os.environ.get("BENCH_REDIS_URL", "")
        if not self.redis_url:
            self.embedded = EmbeddedRedis(workdir / "redis.db", persist=False)
            self.redis_url = self.embedded.url
        self.database_url = (
            os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
        )
        migrate.upgrade(self.database_url)
        self.engine = create_database_engine(self.database_url)

    def empty(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(EventRow))
            connection.execute(delete(OrderRow))
        client = Redis.from_url(self.redis_url)
        client.flushdb()
        client.close()

    def close(self) -> None:
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()


@contextmanager
def stack(backing: Backing, workdir: Path, workers: int, **env: str) -> Iterator[Settings]:
    with started_stack(backing, workdir, workers, **env) as (settings, _):
        yield settings


@contextmanager
def started_stack(
    backing: Backing, workdir: Path, workers: int, **env: str
) -> Iterator[tuple[Settings, Stack]]:
    """The stack on free ports with the bench's settings (``env`` on top),
    on the emptied backing, and the Stack (its processes, its /metrics)."""
    backing.empty()
    saved = dict(os.environ)
    os.environ.update(
        {
            "REDIS_URL": backing.redis_url,
            "CHAIN_REDIS_URL": backing.redis_url,
            "DATABASE_URL": backing.database_url,
            "LOG_LEVEL": "WARNING",
            "MAX_QUEUE_DEPTH": "1000000",
            # The bench measures capacity, not the limits: one owner drives it
            # all (the rate limit's check still runs, at a rate never reached).
            "SUBMIT_RATE_PER_SECOND": "1000000",
            "WATCH_STREAMS_PER_OWNER": "1000000",
            "ORDER_SERVICE_ADDRESS": f"127.0.0.1:{free_port()}",
            "QUOTE_SERVICE_ADDRESS": f"127.0.0.1:{free_port()}",
            "EXECUTION_SERVICE_ADDRESS": f"127.0.0.1:{free_port()}",
            "GATEWAY_ADDRESS": f"http://127.0.0.1:{free_port()}",
            "MARKET_FLOW_RATE": "0",
            # Every order the bench sends is paid for: the local owner's
            # wallet is funded with far more than a run spends.
            "FAUCET_MAX_PER_CALL": BENCH_FAUCET,
            "FAUCET_MAX_PER_OWNER": BENCH_FAUCET,
            # Every part serves /metrics on a free port (the stack lists them).
            "METRICS_PORT": "0",
            **env,
        }
    )
    running = Stack(workers, workdir / "stack")
    try:
        settings = running.start()
        # The load process calls as the stack's local owner.
        assert running.key_file is not None
        key = read_key_file(running.key_file) or ""
        os.environ["ORDERENGINE_API_KEY"] = key
        problems = top_up(settings.order_service_address, key, BENCH_WALLET)
        if problems:
            raise RuntimeError(f"the bench's wallet: {'; '.join(problems)}")
        yield settings, running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)


def pid_listening(address: str) -> int:
    """The pid of the process serving ``address`` (the OrderService)."""
    port = int(address.rsplit(":", 1)[1])
    inode = ""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                inode = parts[9]
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == f"socket:[{inode}]":
                return int(fd.parent.parent.name)
        except OSError:
            continue
    raise LookupError(f"nothing listens on {address}")
