"""The seed side by side: the shared script (``shared/bench/seed-side-by-side``
beside the repository, or SEED_SIDE_BY_SIDE) builds the seed app, starts it
and alternates the same autocannon load between it and our gateway. It is
run as it is, given a Redis of its own (an embedded one on a free port,
never the machine's), and its per-run lines are read back. While it runs,
the seed's CPU (its node process and its Redis) is read from their own
counters, for the CPU each of its requests costs beside the engine's."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from orderengine.local.bench import cpu
from orderengine.local.embedded_redis import EmbeddedRedis
from orderengine.local.ports import free_port

SCRIPT = Path("shared") / "bench" / "seed-side-by-side"
# How the script starts the seed: node running its built entry point.
SEED_ENTRY = "dist/index.js"
# How often the seed's CPU is read while the script runs: it ends the seed
# before it exits, so the last reading stands for its whole run.
CPU_READ_SECONDS = 0.25
# "round 1 seed   c=16      2931 req/s  p50     4 ms  p99    12 ms  non-2xx/errors 0  (load 1.2)"
_RUN = re.compile(
    r"^round \d+ (?P<name>seed|engine)\s+c=(?P<c>\d+)\s+(?P<rps>[\d.]+) req/s\s+"
    r"p50\s+(?P<p50>[\d.]+) ms\s+p99\s+(?P<p99>[\d.]+) ms\s+"
    r"non-2xx/errors (?P<bad>\d+)"
)


def find_script(repo: Path) -> Path | None:
    """SEED_SIDE_BY_SIDE, else shared/bench/seed-side-by-side in a folder
    that holds the repository (CI puts shared/ beside it)."""
    if os.environ.get("SEED_SIDE_BY_SIDE"):
        given = Path(os.environ["SEED_SIDE_BY_SIDE"])
        return given if given.is_file() else None
    for folder in repo.resolve().parents:
        if (folder / SCRIPT).is_file():
            return folder / SCRIPT
    return None


def why_not(repo: Path) -> str | None:
    """Why the seed cannot be run here, or None when it can."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed"
    if find_script(repo) is None:
        return f"no {SCRIPT} beside the repository (or SEED_SIDE_BY_SIDE)"
    return None


@dataclass(frozen=True)
class Run:
    name: str  # seed or engine
    concurrency: int
    per_second: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx, errors and timeouts


def parse(output: str) -> list[Run]:
    return [
        Run(
            m["name"], int(m["c"]), float(m["rps"]), float(m["p50"]), float(m["p99"]), int(m["bad"])
        )
        for m in (_RUN.match(line.strip()) for line in output.splitlines())
        if m
    ]


def median(runs: list[Run], name: str, concurrency: int, field: str) -> list[float]:
    """Every round's ``field`` for one side at one concurrency (for Figure.of)."""
    return [getattr(r, field) for r in runs if r.name == name and r.concurrency == concurrency]


def served(runs: list[Run], name: str, seconds: int) -> float:
    """The requests one side answered over every run (each run's mean rate
    times its length: the script prints rates, not counts)."""
    return sum(r.per_second * seconds for r in runs if r.name == name)


@dataclass(frozen=True)
class SideBySide:
    runs: list[Run]
    # CPU seconds the seed's node process and its Redis used over the script.
    seed_cpu_seconds: float


class _SeedCpu:
    """The CPU of the seed's node process, a child of the script, read
    until it ends (its counters go with it)."""

    def __init__(self, script_pid: int) -> None:
        self._script = script_pid
        self._seconds: dict[int, float] = {}

    def read(self) -> None:
        for pid in cpu.children(self._script):
            if pid in self._seconds or SEED_ENTRY in cpu.command_line(pid):
                self._seconds[pid] = max(self._seconds.get(pid, 0.0), cpu.cpu_seconds(pid))

    @property
    def seconds(self) -> float:
        return sum(self._seconds.values())


def side_by_side(
    repo: Path,
    workdir: Path,
    gateway: str,
    key: str,
    concurrency: list[int],
    seconds: int,
    rounds: int,
) -> SideBySide:
    """Runs the shared script against ``gateway``; raises RuntimeError with
    its output's tail when it fails, or when the seed's process was never
    seen (its CPU would read as none)."""
    script = find_script(repo)
    assert script is not None
    redis_port = free_port()
    redis = EmbeddedRedis(workdir / "seed-redis.db", persist=False, port=redis_port)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                str(script),
                "--engine",
                gateway,
                "--key",
                key,
                "--concurrency",
                ",".join(map(str, concurrency)),
                "--duration",
                str(seconds),
                "--rounds",
                str(rounds),
                "--seed-port",
                str(free_port()),
                "--redis",
                f"127.0.0.1:{redis_port}",
                "--redis-db",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=repo,
        )
        seed_cpu = _SeedCpu(process.pid)
        try:
            while True:
                seed_cpu.read()
                try:
                    stdout, stderr = process.communicate(timeout=CPU_READ_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    continue  # communicate again: no output is lost
        except BaseException:  # interrupted: the script goes too
            process.kill()
            process.wait()
            raise
        redis_cpu = cpu.cpu_seconds(redis.pid)
    finally:
        redis.stop()
    if process.returncode != 0:
        raise RuntimeError(f"seed-side-by-side failed:\n{(stdout + stderr)[-2000:]}")
    runs = parse(stdout)
    if not runs:
        raise RuntimeError(f"seed-side-by-side printed no runs:\n{stdout[-2000:]}")
    if not seed_cpu.seconds:
        raise RuntimeError(f"the seed's process ({SEED_ENTRY}) was not found while it ran")
    return SideBySide(runs, seed_cpu.seconds + redis_cpu)


def ratio(runs: list[Run], concurrency: int) -> float | None:
    """Engine req/s over the seed's, medians over rounds."""
    seed = median(runs, "seed", concurrency, "per_second")
    engine = median(runs, "engine", concurrency, "per_second")
    if not seed or not engine or not statistics.median(seed):
        return None
    return statistics.median(engine) / statistics.median(seed)
