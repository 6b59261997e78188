"""What make run's stack runs (orderengine.local.stack supervises it): one
process per part, the addresses of each gRPC service's replicas, a check
that nothing listens where a part must bind, and whether a part answers."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc

from orderengine.client.tls import tls
from orderengine.local.ports import available, claim, free_port, port_is_free
from orderengine.mesh.channels import channel as orderengine_channel
from orderengine.mesh.healthcheck import serving
from orderengine.settings import Settings

# Replica k (from 0) of a service listens on the configured port + k·100
# (50051, 50151, ...): the three services' ports are adjacent, so +k would
# collide. A port already taken gives way to a free one.
REPLICA_PORT_STEP = 100
WORKERS_PER_REPLICA = 2
# The gRPC services: the name in the banner, the settings' prefix
# (<PREFIX>_ADDRESS, <PREFIX>_BIND) and the command.
SERVICES = (
    ("QuoteService", "QUOTE_SERVICE", ["router_service.main"]),
    ("ExecutionService", "EXECUTION_SERVICE", ["executor.main", "chain"]),
    ("OrderService", "ORDER_SERVICE", ["order_service.main"]),
)


@dataclass
class Part:
    name: str
    args: list[str]
    address: str | None = None  # a gRPC server to wait for
    health_url: str | None = None  # an HTTP server to wait for (until it answers 200)
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's environment
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # When it exited lately (time.monotonic()), and when it starts again.
    exits: deque[float] = field(default_factory=deque, repr=False)
    restart_at: float | None = None

    def answers(self, channels: dict[str, grpc.Channel]) -> bool:
        """Does its server answer now? ``channels`` keeps one channel per
        gRPC address across the calls of one wait."""
        if self.address:
            if self.address not in channels:
                channels[self.address] = orderengine_channel(self.address)
            return serving(channels[self.address])
        return self.health_url is None or answers_http(self.health_url)


def replica_addresses(setting: str, configured: str, replicas: int) -> list[str]:
    """Where each of ``replicas`` servers of one service listens: the
    configured ``host:port`` list as given, extended past its end by the
    first one's port + k·REPLICA_PORT_STEP (or a free port when that one is
    taken). ``setting`` names the variable in errors."""
    given = [address.strip() for address in configured.split(",") if address.strip()]
    host, _, port = given[0].rpartition(":") if given else ("", "", "")
    if not host or not port.isdigit() or any("/" in address for address in given):
        raise ValueError(
            f"{setting}: make run starts every replica on this machine, so it "
            f"needs HOST:PORT addresses, got {configured!r}"
        )
    host = host.strip("[]")
    addresses = given[:replicas]
    for k in range(len(addresses), replicas):
        wanted = int(port) + REPLICA_PORT_STEP * k
        chosen = wanted if wanted < 65536 and available(host, wanted) else free_port(host)
        addresses.append(f"[{host}]:{chosen}" if ":" in host else f"{host}:{chosen}")
    return addresses


class StartError(Exception):
    """Why the stack cannot start, in one line for the user."""


def check_free(address: str, setting: str) -> None:
    """Raises StartError naming ``setting`` when something already listens
    on ``address`` (HOST:PORT or a URL): the part would fail to bind, after
    a traceback, and the stack would wait for it in vain. Else claims the
    port for that part: nothing the stack picks later (a metrics port) takes
    it before the part binds it."""
    parsed = urlsplit(address if "://" in address else f"//{address}")
    host, port = parsed.hostname or "127.0.0.1", parsed.port
    if port is None and parsed.scheme in ("http", "https"):
        port = 443 if parsed.scheme == "https" else 80
    if port is not None:
        # Not ``available``: a port this process gave out is one to check here.
        if not port_is_free(host, port):
            raise StartError(f"{parsed.netloc} is in use: set {setting}")
        claim(port)


def service_parts(addresses: dict[str, list[str]]) -> list[Part]:
    """One process per address of each gRPC service. With one address the
    server binds as its settings say; a replica binds to its own."""
    py = sys.executable
    found: list[Part] = []
    for name, prefix, command in SERVICES:
        replicas = addresses[prefix]
        if len(replicas) == 1:
            found.append(Part(name, [py, "-m", *command], replicas[0]))
            continue
        found += [
            Part(f"{name} {k + 1}", [py, "-m", *command], address, env={f"{prefix}_BIND": address})
            for k, address in enumerate(replicas)
        ]
    return found


def parts(
    settings: Settings, workers: int, addresses: dict[str, list[str]], trackers: int = 1
) -> list[Part]:
    py = sys.executable
    return [
        *service_parts(addresses),
        Part(
            "gateway", [py, "-m", "gateway.main"], health_url=f"{settings.gateway_address}/healthz"
        ),
        *(Part(f"worker-{i + 1}", [py, "-m", "executor.main", "worker"]) for i in range(workers)),
        # Trackers share the in-flight set by leased claims, and every step
        # they take is a compare-and-set, so one per replica is safe.
        *(
            Part(
                "tracker" if trackers == 1 else f"tracker-{i + 1}",
                [py, "-m", "executor.main", "tracker"],
            )
            for i in range(trackers)
        ),
        # Waiting orders' triggers: one is enough, more are safe (every
        # firing is a compare-and-set).
        Part("triggers", [py, "-m", "executor.main", "triggers"]),
        # Other traders, so that the market moves between quote and landing.
        *(
            [
                Part(
                    "market flow",
                    [
                        py,
                        "-m",
                        "orderengine.local.traders",
                        "--seed",
                        str(settings.market_flow_seed),
                        "--rate",
                        str(settings.market_flow_rate),
                        "--launch-rate",
                        str(settings.market_launch_rate),
                    ],
                )
            ]
            if settings.market_flow_rate > 0
            else []
        ),
    ]


def answers_http(url: str) -> bool:
    """Does ``url`` answer 200 now?"""
    direct = urllib.request.build_opener(  # never a proxy; an https:// gateway's own CA
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls().https_context())
    )
    try:
        with direct.open(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def exit_code(code: int) -> str:
    """``code`` as a person reads it: -9 is SIGKILL."""
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)
