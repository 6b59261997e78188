"""Where the CPU of an order goes: each process's own counters (utime +
stime in /proc/PID/stat) read before and after a run, summed by part of the
stack, and the gRPC servers' handling time by method from their /metrics."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orderengine.observability import metrics_scrape

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# The parts in the order the table prints them; a replica ("OrderService 2",
# "worker-3", "tracker-2") counts with its kind.
GROUPS = (
    "gateway",
    "OrderService",
    "QuoteService",
    "ExecutionService",
    "workers",
    "tracker",
    "triggers",
    "market flow",
    "Redis",
)
ACCEPT_PATH = ("gateway", "OrderService")
_REPLICA = re.compile(r"[ -]\d+$")


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on);
    None once the process has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the
    # fields after it start past its last ")".
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (its own threads, not
    its children's). A process that has gone counts as 0."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (field 4 of their stat)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and (fields := _stat_fields(entry.name)) is not None
        and int(fields[1]) == pid
    ]


def command_line(pid: int) -> list[str]:
    """The process's arguments ([] once it has gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def group_of(part: str) -> str:
    name = _REPLICA.sub("", part)
    return "workers" if name == "worker" else name


def sample(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process, summed by group."""
    totals: dict[str, float] = defaultdict(float)
    for part, pid in pids.items():
        totals[group_of(part)] += cpu_seconds(pid)
    return dict(totals)


@dataclass(frozen=True)
class CpuPerOrder:
    """Milliseconds of CPU per order, by group, with the total and the
    accept path (gateway + OrderService)."""

    by_group: dict[str, float]

    @classmethod
    def between(
        cls, before: Mapping[str, float], after: Mapping[str, float], orders: int
    ) -> CpuPerOrder:
        names = [g for g in GROUPS if g in after] + sorted(set(after) - set(GROUPS))
        return cls({g: (after[g] - before.get(g, 0.0)) * 1000 / max(orders, 1) for g in names})

    @property
    def total(self) -> float:
        return sum(self.by_group.values())

    @property
    def accept_path(self) -> float:
        return sum(self.by_group.get(g, 0.0) for g in ACCEPT_PATH)


SERVER_SUM = "grpc_server_handling_seconds_sum"
SERVER_COUNT = "grpc_server_handling_seconds_count"


@dataclass(frozen=True)
class MethodTime:
    part: str
    method: str  # Service/Method
    calls_per_order: float
    ms_per_order: float  # handling time (wall, not CPU)


def method_times(
    before: Mapping[str, metrics_scrape.Samples],
    after: Mapping[str, metrics_scrape.Samples],
    orders: int,
) -> list[MethodTime]:
    """Each server's unary handling time by method between two scrapes (by
    part), per order, most first. Streams are left out: their time is how
    long a client watched."""
    found: list[MethodTime] = []
    for part, samples in after.items():
        old = before.get(part, metrics_scrape.Samples({}))
        methods = {
            (dict(labels)["grpc_service"], dict(labels)["grpc_method"])
            for name, labels in samples.values
            if name == SERVER_SUM and dict(labels).get("grpc_type") == "unary"
        }
        for service, method in sorted(methods):
            labels = {"grpc_service": service, "grpc_method": method}
            calls = samples.get(SERVER_COUNT, **labels) - old.get(SERVER_COUNT, **labels)
            seconds = samples.get(SERVER_SUM, **labels) - old.get(SERVER_SUM, **labels)
            if calls > 0:
                short = service.rsplit(".", 1)[-1]
                found.append(
                    MethodTime(
                        part,
                        f"{short}/{method}",
                        calls / max(orders, 1),
                        seconds * 1000 / max(orders, 1),
                    )
                )
    return sorted(found, key=lambda m: -m.ms_per_order)


def grown(
    before: Mapping[str, metrics_scrape.Samples],
    after: Mapping[str, metrics_scrape.Samples],
    name: str,
) -> float:
    """How much the counter ``name`` grew, summed over every part's page."""
    empty = metrics_scrape.Samples({})
    return sum(page.get(name) - before.get(part, empty).get(name) for part, page in after.items())


def scrape_parts(targets: Iterable[tuple[str, str]]) -> dict[str, metrics_scrape.Samples]:
    """Each (part, /metrics URL)'s page, parsed; a part that does not answer
    is left out."""
    pages: dict[str, metrics_scrape.Samples] = {}
    for part, url in targets:
        try:
            pages[part] = metrics_scrape.parse([metrics_scrape.fetch(url)])
        except OSError:
            continue
    return pages


def format_table(cpu: CpuPerOrder, orders: int, methods: Iterable[MethodTime]) -> str:
    """The CPU table by process, then the servers' time by method."""
    lines = [
        f"CPU per confirmed order ({orders:,} orders), from each process's /proc counters:",
        f"  {'process':<38} {'ms CPU/order':>12}",
    ]
    lines += [f"  {group:<38} {ms:>12.3f}" for group, ms in cpu.by_group.items()]
    lines += [
        f"  {'total':<38} {cpu.total:>12.3f}",
        f"  {'accept path (gateway + OrderService)':<38} {cpu.accept_path:>12.3f}",
        "",
        "By step: gRPC server handling time by method (wall time, not CPU; "
        "a CPU split by step would need a profiler):",
        f"  {'process':<18} {'method':<38} {'calls/order':>11} {'ms/order':>9}",
    ]
    lines += [
        f"  {m.part:<18} {m.method:<38} {m.calls_per_order:>11.3f} {m.ms_per_order:>9.3f}"
        for m in methods
    ]
    return "\n".join(lines)
