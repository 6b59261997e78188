"""Where ``make run``'s parts serve /metrics: each process that serves its
own gets a port of its own, counting up from METRICS_PORT (default 9101;
0: free ports; "off": none), and the gateway serves it on its HTTP port.
The list is written as a Prometheus file_sd targets file, so that a local
Prometheus (``file_sd_configs``) or the benchmark finds every part."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from orderengine.local.ports import available, claim, free_port
from orderengine.observability.metrics import PATH

FIRST_PORT = 9101
TARGETS_FILE = "metrics-targets.json"
# The processes that call serve_metrics() (python -m MODULE).
SERVING_MODULES = frozenset({"order_service.main", "router_service.main", "executor.main"})
GATEWAY_MODULE = "gateway.main"


class PartLike(Protocol):
    """What this needs of orderengine.local.parts.Part."""

    name: str
    args: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Target:
    part: str
    address: str  # host:port

    @property
    def url(self) -> str:
        return f"http://{self.address}{PATH}"


def _module(part: PartLike) -> str | None:
    args = part.args
    return args[args.index("-m") + 1] if "-m" in args[:-1] else None


def _address(host: str, port: int) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port(first: int, wanted: int, host: str) -> int:
    """``wanted`` when METRICS_PORT counts up from ``first`` and it is free,
    else a free port: never one a server of the stack is to bind."""
    if first and wanted < 65536 and available(host, wanted):
        claim(wanted)
        return wanted
    return free_port(host)


def assign(
    parts: Sequence[PartLike], gateway_address: str, host: str, own: str | None = None
) -> list[Target]:
    """Gives each serving part its METRICS_PORT (in ``part.env``) as the
    stack's own METRICS_PORT says, and returns every target; ``own`` names
    the stack itself, which gets the next port. A port already taken gives
    way to a free one."""
    raw = os.environ.get("METRICS_PORT", "").strip().lower()
    if raw == "off":
        return []
    try:
        first = int(raw) if raw else FIRST_PORT
    except ValueError:
        raise ValueError(f"METRICS_PORT must be a port number, 0 or off, got {raw!r}") from None
    targets: list[Target] = []
    wanted = first
    for part in parts:
        module = _module(part)
        if module == GATEWAY_MODULE:
            targets.append(Target(part.name, urlsplit(gateway_address).netloc))
            continue
        if module not in SERVING_MODULES:
            continue
        port = _port(first, wanted, host)
        wanted += 1
        part.env["METRICS_PORT"] = str(port)
        targets.append(Target(part.name, _address(host, port)))
    if own is not None:
        targets.append(Target(own, _address(host, _port(first, wanted, host))))
    return targets


def write_targets(path: Path, targets: Sequence[Target]) -> None:
    """``targets`` as a Prometheus file_sd file (one group per part)."""
    groups = [{"targets": [t.address], "labels": {"part": t.part}} for t in targets]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(groups, indent=2) + "\n")


def read_targets(path: Path) -> list[Target]:
    groups = json.loads(path.read_text())
    return [
        Target(group["labels"]["part"], address) for group in groups for address in group["targets"]
    ]


def describe(targets: Sequence[Target], path: Path) -> str:
    """For the banner: each part's port, and the targets file."""
    if not targets:
        return "off (METRICS_PORT=off)"
    hosts = {t.address.rpartition(":")[0] for t in targets}
    host = hosts.pop() if len(hosts) == 1 else "HOST"
    ports = ", ".join(f"{t.part} {t.address.rpartition(':')[2]}" for t in targets)
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    return f"http://{host}:PORT{PATH}, PORT: {ports} (Prometheus targets: {shown})"
