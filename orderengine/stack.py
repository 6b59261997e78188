"""The whole stack on one machine: ``make run`` (``python -m orderengine.stack``).

With no REDIS_URL it starts an embedded Redis; with no DATABASE_URL it uses
an SQLite file in var/. Every service runs as its own process; Ctrl-C (or
SIGTERM) stops them all, each gracefully."""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from orderengine.embedded_redis import EmbeddedRedis
from orderengine.healthcheck import wait_serving
from orderengine.keys import ApiKeys, read_key_file, write_key_file
from orderengine.settings import Settings
from orderengine.store import migrate
from orderengine.store.database import create_database_engine

STOP_SECONDS = 15.0
# Whose orders make run's own key reaches.
LOCAL_OWNER = "local"
PR_SET_PDEATHSIG = 1


@dataclass
class Part:
    name: str
    args: list[str]
    address: str | None = None  # a gRPC server to wait for
    health_url: str | None = None  # an HTTP server to wait for (until it answers 200)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def wait_http(url: str, deadline: float) -> None:
    """Waits until ``url`` answers 200, or raises TimeoutError at ``deadline``."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    while True:
        try:
            with direct.open(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} does not answer 200")
        time.sleep(0.1)


def parts(settings: Settings, workers: int) -> list[Part]:
    py = sys.executable
    return [
        Part("QuoteService", [py, "-m", "router_service.main"], settings.quote_service_address),
        Part("ExecutionService", [py, "-m", "executor.main", "chain"],
             settings.execution_service_address),
        Part("OrderService", [py, "-m", "order_service.main"], settings.order_service_address),
        Part("gateway", [py, "-m", "gateway.main"], health_url=f"{settings.gateway_address}/healthz"),
        *(Part(f"worker-{i + 1}", [py, "-m", "executor.main", "worker"]) for i in range(workers)),
        Part("tracker", [py, "-m", "executor.main", "tracker"]),
        # Other traders, so that the market moves between quote and landing.
        *([Part("market flow", [py, "-m", "orderengine.market.flow",
                                "--seed", str(settings.market_flow_seed),
                                "--rate", str(settings.market_flow_rate)])]
          if settings.market_flow_rate > 0 else []),
    ]


def local_key(settings: Settings, key_file: Path) -> str | None:
    """Makes sure ``key_file`` holds a working key for owner "local": one made
    now (returned, to be printed once), or None when the file's key still
    works."""
    engine = create_database_engine(settings.database_url)
    try:
        keys = ApiKeys(engine)
        existing = read_key_file(key_file)
        if existing is not None and keys.owner_of(existing) is not None:
            return None
        key, _ = keys.create(LOCAL_OWNER)
    finally:
        engine.dispose()
    write_key_file(key_file, key)
    return key


def _stop_with_parent() -> None:
    """In the child: SIGTERM when the stack process dies, even by SIGKILL,
    so that no part outlives it (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Stack:
    def __init__(self, workers: int, data_dir: Path) -> None:
        self.workers = workers
        self.data_dir = data_dir
        self.redis: EmbeddedRedis | None = None
        self.parts: list[Part] = []
        # The local key: where it is, and whether this start made it.
        self.key_file: Path | None = None
        self.new_key: str | None = None

    def start(self) -> Settings:
        env = os.environ
        if not env.get("REDIS_URL"):
            self.redis = EmbeddedRedis(self.data_dir / "redis.db")
            env["REDIS_URL"] = self.redis.url
            # The chain keeps its own database on the same server.
            env.setdefault("CHAIN_REDIS_URL", f"{self.redis.url}?db=1")
        env.setdefault("DATABASE_URL", f"sqlite:///{self.data_dir / 'orderengine.db'}")
        # The internal services' shared secret: a new one each run, in every
        # part's environment (never printed).
        env.setdefault("INTERNAL_TOKEN", secrets.token_urlsafe(32))
        env.setdefault("ORDERENGINE_API_KEY_FILE", str(self.data_dir / "api-key"))
        settings = Settings()
        migrate.upgrade(settings.database_url)
        self.key_file = Path(settings.api_key_file).resolve()
        self.new_key = local_key(settings, self.key_file)
        self.parts = parts(settings, self.workers)
        for part in self.parts:
            # A session of its own: Ctrl-C reaches only us, and we stop each
            # part once, gracefully.
            part.process = subprocess.Popen(part.args, start_new_session=True,
                                            preexec_fn=_stop_with_parent)
        deadline = time.monotonic() + 60
        for part in self.parts:
            if part.address:
                wait_serving(part.address, deadline)
            if part.health_url:
                wait_http(part.health_url, deadline)
        return settings

    def exited(self) -> Part | None:
        for part in self.parts:
            if part.process is not None and part.process.poll() is not None:
                return part
        return None

    def stop(self) -> None:
        running = [p for p in self.parts if p.process and p.process.poll() is None]
        for part in running:
            assert part.process is not None
            part.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for part in running:
            assert part.process is not None
            try:
                part.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"{part.name} did not stop in time; killing it", flush=True)
                part.process.kill()
                part.process.wait()
        if self.redis is not None:
            self.redis.stop()


def banner(settings: Settings, stack: Stack) -> str:
    redis = f"embedded ({settings.redis_url})" if stack.redis else settings.redis_url
    rows = [
        ("OrderService", f"{settings.order_service_address}   gRPC, public (reflection on)"),
        ("gateway", f"{settings.gateway_address}   HTTP + WebSocket, page at /"),
        ("QuoteService", f"{settings.quote_service_address}   gRPC, internal"),
        ("ExecutionService", f"{settings.execution_service_address}   gRPC, internal "
                             f"(slot {settings.slot_seconds}s, confirmed "
                             f"{settings.confirm_seconds}s after landing)"),
        ("workers", f"{stack.workers} RQ workers on queue '{settings.queue_name}', "
                    "1 confirmation tracker"),
        ("market flow", f"{settings.market_flow_rate:g} swaps/s by other traders "
                        f"(seed {settings.market_flow_seed}; MARKET_FLOW_RATE=0 stops them)"
         if settings.market_flow_rate > 0 else "none (MARKET_FLOW_RATE=0)"),
        ("database", settings.database_url),
        ("redis", redis),
        ("API key", f"{stack.key_file} (mode 0600; the CLI reads it, or ORDERENGINE_API_KEY)"),
    ]
    width = max(len(name) for name, _ in rows)
    if stack.new_key:
        made = [f"  A new API key for owner '{LOCAL_OWNER}' (shown once; also in the file "
                f"above):", f"    {stack.new_key}"]
    else:
        made = []
    lines = ["", "Order engine is up.", *(f"  {n.ljust(width)}  {v}" for n, v in rows), *made, "",
             "Try:  .venv/bin/orderengine submit SOL USDC 10 --watch",
             f"  or open {settings.gateway_address}/ in a browser",
             "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m orderengine.stack", description=__doc__)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")),
                        help="RQ worker processes (default: $WORKERS or 2)")
    parser.add_argument("--data-dir", type=Path, default=Path("var"),
                        help="where the SQLite file and embedded Redis live (default: var/)")
    args = parser.parse_args()

    stack = Stack(args.workers, args.data_dir.resolve())
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    code = 0
    try:
        settings = stack.start()
        print(banner(settings, stack), flush=True)
        while not stopping:
            dead = stack.exited()
            if dead is not None:
                print(f"{dead.name} exited with code {dead.process.returncode if dead.process else '?'}"
                      "; stopping the stack", flush=True)
                code = 1
                break
            time.sleep(0.2)
    except Exception as exc:
        print(f"the stack did not start: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("stopping...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
