"""The whole stack on one machine: ``make run`` (``python -m orderengine.local.stack``).

With no REDIS_URL it starts an embedded Redis; with no DATABASE_URL it uses
an SQLite file in var/. Every service runs as its own process; Ctrl-C (or
SIGTERM) stops them all, each gracefully. A part that dies is started again
after a pause that doubles with each recent exit; one that keeps dying
(crash-looping) stops the stack. Longer than most files: starting,
watching, restarting and stopping parts share one supervisor state.

``--replicas N`` (``make run REPLICAS=N``) starts N of every gRPC service,
each on its own port, N trackers and 2·N workers; every client is given the
list of a service's addresses and balances over it."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from prometheus_client import Counter

from orderengine.client.keys import read_key_file
from orderengine.client.version import VERSION
from orderengine.local import metrics_targets
from orderengine.local.embedded_redis import EmbeddedRedis, stopping_with_parent
from orderengine.local.funding import LOCAL_FAUCET, LOCAL_WALLET, top_up
from orderengine.local.parts import (
    WORKERS_PER_REPLICA,
    Part,
    StartError,
    check_free,
    exit_code,
    parts,
    replica_addresses,
)
from orderengine.mesh.auth import PLACEHOLDER_INTERNAL_TOKEN
from orderengine.observability.logs import say
from orderengine.observability.metrics import MetricsEndpoint
from orderengine.settings import ORDER_SERVICE_DEFAULT, Settings
from orderengine.store import migrate
from orderengine.store.api_keys import ApiKeys, write_key_file
from orderengine.store.database import create_database_engine

STOP_SECONDS = 15.0
START_SECONDS = 60.0
# A part that exits is started again after RESTART_FIRST_SECONDS, doubled
# for each other exit in the last CRASH_LOOP_SECONDS, at most
# RESTART_MAX_SECONDS: a part killed once comes back at once, one that keeps
# dying does not spin. More than CRASH_LOOP_RESTARTS restarts in that window
# stops the stack: something is wrong that restarting will not mend.
RESTART_FIRST_SECONDS = 0.25
RESTART_MAX_SECONDS = 8.0
CRASH_LOOP_RESTARTS = 5
CRASH_LOOP_SECONDS = 60.0
# The supervisor's own /metrics target, beside its parts'.
SUPERVISOR = "supervisor"
RESTARTS = Counter(
    "orderengine_stack_restarts",
    "Parts of make run's stack started again after they exited",
    ["part"],
)
# Whose orders make run's own key reaches.
LOCAL_OWNER = "local"


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


class Stack:
    def __init__(self, workers: int, data_dir: Path, replicas: int = 1) -> None:
        if replicas < 1:
            raise ValueError(f"replicas: must be 1 or more, got {replicas}")
        self.workers = workers
        self.data_dir = data_dir
        self.replicas = replicas
        self.redis: EmbeddedRedis | None = None
        self.parts: list[Part] = []
        # Where each part serves /metrics (docs/operations.md, "Metrics").
        self.metrics: list[metrics_targets.Target] = []
        # Where each gRPC service's servers listen, by settings prefix.
        self.addresses: dict[str, list[str]] = {}
        # The local key: where it is, and whether this start made it.
        self.key_file: Path | None = None
        self.new_key: str | None = None
        # Why the local owner's wallet could not be topped up (LOCAL_WALLET).
        self.wallet_problems: list[str] = []
        # Set by Ctrl-C or SIGTERM: a start under way gives up, nothing restarts.
        self.stopping = False
        self.metrics_endpoint: MetricsEndpoint | None = None

    def start(self) -> Settings:
        env = os.environ
        if not env.get("REDIS_URL"):
            self.redis = EmbeddedRedis(self.data_dir / "redis.db")
            env["REDIS_URL"] = self.redis.url
            # The chain keeps its own database on the same server.
            env.setdefault("CHAIN_REDIS_URL", f"{self.redis.url}?db=1")
        env.setdefault("DATABASE_URL", f"sqlite:///{self.data_dir / 'orderengine.db'}")
        # The internal services' shared secret: a new one each run, in every
        # part's environment (never printed); also in place of the examples'
        # placeholder, which the parts would refuse.
        if env.get("INTERNAL_TOKEN", "").strip() in ("", PLACEHOLDER_INTERNAL_TOKEN):
            env["INTERNAL_TOKEN"] = secrets.token_urlsafe(32)
        env.setdefault("ORDERENGINE_API_KEY_FILE", str(self.data_dir / "api-key"))
        for name, limits in LOCAL_FAUCET.items():
            env.setdefault(name, limits)
        settings = Settings()
        configured = {
            "ORDER_SERVICE": settings.order_service_address,
            "QUOTE_SERVICE": settings.quote_service_address,
            "EXECUTION_SERVICE": settings.execution_service_address,
        }
        if self.replicas == 1:
            self.addresses = {prefix: [address] for prefix, address in configured.items()}
        else:
            self.addresses = {
                prefix: replica_addresses(f"{prefix}_ADDRESS", address, self.replicas)
                for prefix, address in configured.items()
            }
            # Every client (services, workers, gateway) balances over them all.
            for prefix, addresses in self.addresses.items():
                env[f"{prefix}_ADDRESS"] = ",".join(addresses)
            settings = Settings()
        for prefix, addresses in self.addresses.items():
            if self.replicas == 1:
                bound = settings.bind_address(prefix)
                check_free(
                    bound, f"{prefix}_BIND" if bound != addresses[0] else f"{prefix}_ADDRESS"
                )
            else:
                for address in addresses:
                    check_free(address, f"{prefix}_ADDRESS")
        check_free(settings.gateway_address, "GATEWAY_ADDRESS")
        migrate.upgrade(settings.database_url)
        self.key_file = Path(settings.api_key_file).resolve()
        self.new_key = local_key(settings, self.key_file)
        self.parts = parts(settings, self.workers, self.addresses, trackers=self.replicas)
        self.metrics = metrics_targets.assign(
            self.parts, settings.gateway_address, settings.metrics_host, own=SUPERVISOR
        )
        for target in self.metrics:
            if target.part == SUPERVISOR:
                self.metrics_endpoint = MetricsEndpoint.start(
                    settings.metrics_host, int(target.address.rpartition(":")[2])
                )
        metrics_targets.write_targets(self.data_dir / metrics_targets.TARGETS_FILE, self.metrics)
        for part in self.parts:
            RESTARTS.labels(part.name)  # every part's series, at 0 until it restarts
            self.launch(part)
        self._wait_started(time.monotonic() + START_SECONDS)
        key = read_key_file(self.key_file)
        if key is not None:
            self.wallet_problems = top_up(",".join(self.addresses["ORDER_SERVICE"]), key)
        return settings

    def launch(self, part: Part) -> None:
        # A session of its own: Ctrl-C reaches only us, and we stop each
        # part once, gracefully.
        part.process = subprocess.Popen(
            stopping_with_parent(part.args),
            start_new_session=True,
            env={**os.environ, **part.env} if part.env else None,
        )

    def _wait_started(self, deadline: float) -> None:
        """Until every server answers; a part that exits meanwhile fails the
        start at once (its own output says why)."""
        waiting = [part for part in self.parts if part.address or part.health_url]
        channels: dict[str, grpc.Channel] = {}
        try:
            while waiting and not self.stopping:
                for part in self.parts:
                    if part.process is not None and part.process.poll() is not None:
                        raise StartError(
                            f"{part.name} exited with code "
                            f"{exit_code(part.process.returncode)} while starting"
                        )
                waiting = [part for part in waiting if not part.answers(channels)]
                if waiting and time.monotonic() > deadline:
                    raise StartError(
                        f"{', '.join(p.name for p in waiting)} did not start "
                        f"within {START_SECONDS:g}s"
                    )
                time.sleep(0.1)
        finally:
            for open_channel in channels.values():
                open_channel.close()

    @staticmethod
    def _end_leftovers(part: Part) -> None:
        """Ends what a part that exited had forked (its process group: each
        part leads its own session). RQ's scheduler process outlives a killed
        worker holding the worker's Redis connection, and the next job Redis
        hands to that connection's pending BLMOVE is lost with it."""
        assert part.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(part.process.pid, signal.SIGKILL)

    def supervise(self) -> str | None:
        """Notes the parts that exited and starts again those whose pause is
        over; returns why the stack must stop when a part crash-loops."""
        now = time.monotonic()
        for part in self.parts:
            if part.process is None:
                continue
            if part.restart_at is not None:
                if now >= part.restart_at:
                    part.restart_at = None
                    RESTARTS.labels(part.name).inc()
                    self.launch(part)
                continue
            code = part.process.poll()
            if code is None:
                continue
            self._end_leftovers(part)
            part.exits.append(now)
            while part.exits[0] < now - CRASH_LOOP_SECONDS:
                part.exits.popleft()
            if len(part.exits) > CRASH_LOOP_RESTARTS:
                return (
                    f"{part.name} exited {len(part.exits)} times in {CRASH_LOOP_SECONDS:g}s "
                    f"(last with code {code}): it is crash-looping; stopping the stack"
                )
            pause = min(RESTART_FIRST_SECONDS * 2 ** (len(part.exits) - 1), RESTART_MAX_SECONDS)
            part.restart_at = now + pause
            say(f"{part.name} exited with code {exit_code(code)}; restarting it in {pause:g}s")
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
                say(f"{part.name} did not stop in time; killing it")
                part.process.kill()
                part.process.wait()
        if self.redis is not None:
            self.redis.stop()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()


def banner(settings: Settings, stack: Stack) -> str:
    redis = f"embedded ({settings.redis_url})" if stack.redis else settings.redis_url

    def where(prefix: str) -> str:
        return ", ".join(stack.addresses[prefix])

    trackers = f"{stack.replicas} confirmation tracker{'s' if stack.replicas > 1 else ''}"
    rows = [
        ("OrderService", f"{where('ORDER_SERVICE')}   gRPC, public (reflection on)"),
        ("gateway", f"{settings.gateway_address}   HTTP + WebSocket, page at /"),
        ("QuoteService", f"{where('QUOTE_SERVICE')}   gRPC, internal"),
        (
            "ExecutionService",
            f"{where('EXECUTION_SERVICE')}   gRPC, internal "
            f"(slot {settings.slot_seconds}s, confirmed "
            f"{settings.confirm_seconds}s after landing)",
        ),
        (
            "workers",
            f"{stack.workers} RQ workers on queue '{settings.queue_name}', {trackers}, "
            "the trigger part (waiting orders)",
        ),
        (
            "market flow",
            f"{settings.market_flow_rate:g} swaps/s by other traders "
            f"(seed {settings.market_flow_seed}; MARKET_FLOW_RATE=0 stops them)"
            if settings.market_flow_rate > 0
            else "none (MARKET_FLOW_RATE=0)",
        ),
        (
            "metrics",
            metrics_targets.describe(stack.metrics, stack.data_dir / metrics_targets.TARGETS_FILE),
        ),
        ("database", settings.database_url),
        ("redis", redis),
        ("API key", f"{stack.key_file} (mode 0600; the CLI reads it, or ORDERENGINE_API_KEY)"),
        (
            "wallet",
            f"owner '{LOCAL_OWNER}' holds at least "
            + ", ".join(f"{amount} {symbol}" for symbol, amount in LOCAL_WALLET.items())
            + " (orderengine balances; orderengine airdrop SOL 10 for more)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    if stack.new_key:
        made = [
            f"  A new API key for owner '{LOCAL_OWNER}' (shown once; also in the file above):",
            f"    {stack.new_key}",
        ]
    else:
        made = []
    # The CLI in another terminal knows only the default address unless told.
    order_service = ",".join(stack.addresses["ORDER_SERVICE"])
    cli = (
        f"ORDER_SERVICE_ADDRESS={order_service} " if order_service != ORDER_SERVICE_DEFAULT else ""
    )
    lines = [
        "",
        f"Order engine {VERSION} is up.",
        *(f"  {n.ljust(width)}  {v}" for n, v in rows),
        *made,
        *(f"  {problem}" for problem in stack.wallet_problems),
        "",
        f"Try:  {cli}.venv/bin/orderengine submit SOL USDC 10 --watch",
        f"  or open {settings.gateway_address}/ in a browser",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m orderengine.local.stack", description=__doc__)
    parser.add_argument(
        "--replicas",
        type=int,
        default=int(os.environ.get("REPLICAS", "1")),
        help="processes of each gRPC service, and trackers (default: $REPLICAS or 1)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"RQ worker processes (default: $WORKERS or {WORKERS_PER_REPLICA} per replica)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var"),
        help="where the SQLite file and embedded Redis live (default: var/)",
    )
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error(f"--replicas: must be 1 or more, got {args.replicas}")
    workers = (
        args.workers
        if args.workers is not None
        else int(os.environ.get("WORKERS", str(WORKERS_PER_REPLICA * args.replicas)))
    )

    stack = Stack(workers, args.data_dir.resolve(), args.replicas)

    def request_stop(*_: object) -> None:
        stack.stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    code = 0
    try:
        settings = stack.start()
        if not stack.stopping:
            say(banner(settings, stack))
        while not stack.stopping:
            reason = stack.supervise()
            if reason is not None:
                say(reason)
                code = 1
                break
            time.sleep(0.1)
    except Exception as exc:
        print(f"the stack did not start: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        say("stopping...")
        stack.stop()
        say("stopped.")
    sys.exit(code)


if __name__ == "__main__":
    main()
