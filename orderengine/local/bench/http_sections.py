"""The sections on the HTTP API, with the stack as ``make run`` runs it (its
workers, its chain timing, its market flow): ``http`` (accept, end to end
with the CPU each process spent per order, one at a time, the commit floor)
and ``seed`` (the seed's own API side by side, through the shared script).
Long on purpose: both sections share the stack, the load and the CPU
accounting, which read best next to the rows they produce."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from orderengine.local.bench import cpu, seed
from orderengine.local.bench.ceilings import commit_latencies, synced_commit_latencies
from orderengine.local.bench.http_load import (
    autocannon_command,
    autocannon_path,
    autocannon_result,
    python_command,
    run_load,
)
from orderengine.local.bench.report import Report, Row, Target, progress
from orderengine.local.bench.running import Backing, started_stack
from orderengine.local.bench.stats import Figure, percentile
from orderengine.local.parts import WORKERS_PER_REPLICA
from orderengine.local.stack import Stack
from orderengine.observability import metrics_scrape
from orderengine.statuses import TERMINAL, Status
from orderengine.store.models import OrderRow

# make run's own defaults where the bench's stack differs (a blank value is
# the default), its queue's bound and its submit rate limit included: a 429
# (QUEUE_FULL, RATE_LIMITED) under the seed's load is one a user of make run
# would get. The cap on watch streams stays out of reach, as in every section.
MAKE_RUN = {
    "MARKET_FLOW_RATE": "",
    "CHAIN_SLOT_SECONDS": "",
    "CHAIN_CONFIRM_SECONDS": "",
    "MAX_QUEUE_DEPTH": "",
    "SUBMIT_RATE_PER_SECOND": "",
}
E2E_TARGET = 500.0  # orders/s CONFIRMED, sustained: the target
# Offered above the target: a stack offered exactly the target can at best
# keep up with it, never be shown to sustain it (the last orders end after
# the last submit), so the row says what the stack sustains, above or below.
E2E_RATE = 1.2 * E2E_TARGET
DRAIN_SECONDS = 120.0  # the longest the bench waits for the last orders to end
REPO = Path(__file__).resolve().parents[3]
# The seed's route, POSTed to and named so by the gateway's /metrics.
SUBMIT_ROUTE = "/api/orders"


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


class Counts:
    """Orders by status in the bench's database."""

    def __init__(self, backing: Backing) -> None:
        self.engine = backing.engine

    def now(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            by_status = {
                str(status): int(n)
                for status, n in connection.execute(
                    select(OrderRow.status, func.count()).group_by(OrderRow.status)
                )
            }
            by_status["FAILED without a reason"] = int(
                connection.execute(
                    select(func.count())
                    .select_from(OrderRow)
                    .where(
                        OrderRow.status == Status.FAILED.value,
                        func.coalesce(OrderRow.failure_reason, "") == "",
                    )
                ).scalar_one()
            )
        return by_status

    @staticmethod
    def still_open(counts: dict[str, int]) -> int:
        terminal = {s.value for s in TERMINAL}
        return sum(
            n
            for status, n in counts.items()
            if status in {s.value for s in Status} and status not in terminal
        )

    def wait_terminal(self, seconds: float) -> dict[str, int]:
        """Polls until no order is open, or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while self.still_open(counts := self.now()) and time.monotonic() < deadline:
            time.sleep(0.25)
        return counts


def _accept_load(
    tool: Path | None, url: str, key: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    return run_load(
        autocannon_command(tool, url, key, seconds, concurrency)
        if tool
        else python_command("closed", url, concurrency=concurrency, seconds=seconds)
    )


def http_section(report: Report, backing: Backing, workdir: Path, quick: bool, rounds: int) -> None:
    tool = autocannon_path()
    tool_name = "autocannon" if tool else "python httpx"
    report.info["http_load"] = tool_name
    seconds = 2.0 if quick else 5.0

    progress("http: the floor a durable commit sets")
    commits = 200 if quick else 1000
    floor = commit_latencies(backing.database_url, commits)
    report.figure(
        "http", "commit of one row, stack's engine + PRAGMAs: p50", [_ms(floor, 50)], "ms"
    )
    report.figure(
        "http", "commit of one row, stack's engine + PRAGMAs: p99", [_ms(floor, 99)], "ms"
    )
    if backing.database_url.startswith("sqlite"):
        synced = synced_commit_latencies(workdir, commits)
        report.figure(
            "http", "commit of one row, SQLite synchronous=FULL: p50", [_ms(synced, 50)], "ms"
        )

    progress(f"http: POST /api/orders with make run's workers ({tool_name})")
    with started_stack(backing, workdir, WORKERS_PER_REPLICA, **MAKE_RUN) as (settings, _):
        url = f"{settings.gateway_address}{SUBMIT_ROUTE}"
        key = _key()
        for concurrency in [64] if quick else [16, 64, 256]:
            runs = [_accept_load(tool, url, key, concurrency, seconds) for _ in range(rounds)]
            label = f"POST /api/orders, {concurrency} concurrent ({tool_name})"
            report.figure("http", label, [r["per_second"] for r in runs], "req/s")
            report.figure("http", "  p50", [r["p50_ms"] for r in runs], "ms")
            report.figure("http", "  p99", [r["p99_ms"] for r in runs], "ms")
            report.figure(
                "http",
                "  non-2xx + errors, all rounds",
                [sum(r["non2xx"] + r["errors"] for r in runs)],
                "requests",
                target=Target(False, 0),
            )

    count = 200 if quick else 1000
    # First with nothing executing: what the accept path alone takes,
    # without the CPU that executing the orders before takes from it (not
    # with --quick: a stack more to start).
    alone = None
    if not quick:
        with started_stack(backing, workdir, 0, **MAKE_RUN) as (settings, _):
            progress(f"http: {count} orders one at a time, no workers, {rounds}x")
            alone = _one_at_a_time(f"{settings.gateway_address}{SUBMIT_ROUTE}", count, rounds)
    with started_stack(backing, workdir, WORKERS_PER_REPLICA, **MAKE_RUN) as (settings, running):
        url = f"{settings.gateway_address}{SUBMIT_ROUTE}"
        progress(f"http: {count} orders one at a time on one kept-alive connection, {rounds}x")
        pids, targets = _pids(running, backing), _targets(running)
        cpu_before, pages_before = cpu.sample(pids), cpu.scrape_parts(targets)
        executed = _one_at_a_time(url, count, rounds)
        counts = Counts(backing)
        counts.wait_terminal(DRAIN_SECONDS)
        cpu_after, pages_after = cpu.sample(pids), cpu.scrape_parts(targets)
        _one_at_a_time_rows(report, "one order at a time", executed, Target(False, 4))
        # What bounds it: the CPU each order costs, accepted and executed,
        # and how many orders the workers drove together.
        orders = count * rounds
        per_order = cpu.CpuPerOrder.between(cpu_before, cpu_after, orders)
        report.figure("http", "  CPU per order, every process", [per_order.total], "ms CPU/order")
        drives = cpu.grown(pages_before, pages_after, "orderengine_drive_orders_count")
        driven = cpu.grown(pages_before, pages_after, "orderengine_drive_orders_sum")
        report.figure("http", "  orders per drive", [driven / max(drives, 1)], "orders")
        if alone is not None:
            _one_at_a_time_rows(report, "  no workers executing", alone)
        _end_to_end(report, running, backing, counts, tool, url, quick)


def _one_at_a_time(url: str, count: int, rounds: int) -> list[dict[str, Any]]:
    """Rounds of ``count`` sequential submits on one kept-alive connection."""
    return [run_load(python_command("serial", url, count=count)) for _ in range(rounds)]


def _one_at_a_time_rows(
    report: Report, name: str, runs: list[dict[str, Any]], target: Target | None = None
) -> None:
    p50 = [r["p50_ms"] for r in runs]
    report.figure("http", f"{name}: p50 (python http.client)", p50, "ms", target=target)
    report.figure("http", f"{name}: p99 (python http.client)", [r["p99_ms"] for r in runs], "ms")


def _end_to_end(
    report: Report,
    running: Stack,
    backing: Backing,
    counts: Counts,
    tool: Path | None,
    url: str,
    quick: bool,
) -> None:
    """Submits at E2E_RATE for a while, waits until every order has ended,
    and reads every process's CPU and every server's /metrics around it."""
    sustained = 5.0 if quick else 30.0
    warmup = 2.0 if quick else 5.0
    progress(f"http: end to end at {E2E_RATE:g}/s offered for {sustained:g}s")
    pids, targets = _pids(running, backing), _targets(running)
    base = counts.now()
    cpu_before, pages_before = cpu.sample(pids), cpu.scrape_parts(targets)
    command = (
        autocannon_command(tool, url, _key(), sustained, 100, rate=E2E_RATE)
        if tool
        else python_command("rate", url, rate=E2E_RATE, seconds=sustained)
    )
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    samples: list[tuple[float, int]] = []
    while load.poll() is None:
        samples.append((time.monotonic(), counts.now().get(Status.CONFIRMED.value, 0)))
        time.sleep(0.5)
    submitted_until = time.monotonic()
    out, err = load.communicate()
    if load.returncode != 0:
        report.failures.append(f"http end to end: the load failed: {err[-500:]}")
        return
    last = out.strip().splitlines()[-1]
    result = autocannon_result(last) if tool else dict(json.loads(last))
    final = counts.wait_terminal(DRAIN_SECONDS)
    drained = time.monotonic()
    cpu_after, pages_after = cpu.sample(pids), cpu.scrape_parts(targets)

    def delta(status: str) -> int:
        return final.get(status, 0) - base.get(status, 0)

    confirmed, failed = delta(Status.CONFIRMED.value), delta(Status.FAILED.value)
    stored = (
        sum(final.values())
        - final["FAILED without a reason"]
        - (sum(base.values()) - base["FAILED without a reason"])
    )
    steady = [(t, n) for t, n in samples if t >= start + warmup]
    rate = (
        (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
        if len(steady) >= 2 and steady[-1][0] > steady[0][0]
        else 0.0
    )
    label = f"{E2E_RATE:g}/s offered for {sustained:g}s"
    report.figure(
        "http",
        f"e2e, {label}: CONFIRMED/s sustained",
        [rate],
        "orders/s",
        target=Target(True, E2E_TARGET),
    )
    report.figure(
        "http",
        "  CONFIRMED/s, first submit to last order ended",
        [confirmed / max(drained - start, 1e-09)],
        "orders/s",
    )
    # The load keeps a bounded number of connections: when answers come
    # slower than that many per interval, fewer than offered go in.
    report.figure(
        "http",
        "  submitted/s, as the load achieved it",
        [result["ok"] / max(submitted_until - start, 1e-09)],
        "orders/s",
    )
    report.figure(
        "http", "  last order ended, after the last submit", [drained - submitted_until], "s"
    )
    report.figure("http", "  accepted (2xx)", [result["ok"]], "orders")
    report.figure(
        "http",
        "  non-2xx + errors",
        [result["non2xx"] + result["errors"]],
        "requests",
        target=Target(False, 0),
    )
    report.figure(
        "http",
        "  stored, less accepted",
        [stored - result["ok"]],
        "orders",
        target=Target(False, 0),
    )
    report.figure("http", "  CONFIRMED", [confirmed], "orders")
    report.figure(
        "http", "  FAILED with a reason", [failed - delta("FAILED without a reason")], "orders"
    )
    report.figure(
        "http",
        "  not ended, or FAILED without a reason",
        [Counts.still_open(final) + final["FAILED without a reason"]],
        "orders",
        target=Target(False, 0),
    )

    per_order = cpu.CpuPerOrder.between(cpu_before, cpu_after, confirmed)
    for group, ms in per_order.by_group.items():
        report.figure("cpu", f"{group}", [ms], "ms CPU/order")
    report.figure(
        "cpu", "total, every process", [per_order.total], "ms CPU/order", target=Target(False, 2.5)
    )
    report.figure(
        "cpu",
        "accept path (gateway + OrderService)",
        [per_order.accept_path],
        "ms CPU/order",
        target=Target(False, 0.8),
    )
    methods = cpu.method_times(pages_before, pages_after, confirmed)
    report.info["cpu_per_order_ms"] = per_order.by_group
    report.info["rpc_per_order"] = [m.__dict__ for m in methods]
    report.blocks.append(cpu.format_table(per_order, confirmed, methods))


def _pids(running: Stack, backing: Backing) -> dict[str, int]:
    """The stack's processes by part, and the embedded Redis's."""
    pids = {part.name: part.process.pid for part in running.parts if part.process}
    if backing.embedded is not None:
        pids["Redis"] = backing.embedded.pid
    return pids


def _targets(running: Stack) -> list[tuple[str, str]]:
    """Each part's /metrics."""
    return [(t.part, t.url) for t in running.metrics]


def _key() -> str:
    """The stack's local key, as started_stack set it."""
    return os.environ.get("ORDERENGINE_API_KEY", "")


@dataclass(frozen=True)
class _SeedRun:
    """The script's runs, with the CPU per request each side spent over them."""

    runs: list[seed.Run]
    seed_ms: float  # the seed's node process and its Redis
    engine_ms: float  # every process of the stack (its embedded Redis too)


def _cpu_per_request_rows(report: Report, run: _SeedRun, engine: str) -> None:
    """What bounds the ratio: with both sides' cores full, engine / seed is
    at most the seed's CPU per request over the engine's."""
    seed_cpu = report.figure(
        "seed", "CPU per request, seed (node + its Redis)", [run.seed_ms], "ms"
    )
    report.add(
        Row(
            "seed",
            f"CPU per request, {engine}",
            Figure.of([run.engine_ms]),
            "ms",
            seed_cpu.figure,
            "seed",
        )
    )


def seed_section(report: Report, backing: Backing, workdir: Path, quick: bool, rounds: int) -> None:
    # Run from the repository (make bench), or from anywhere with it installed editable.
    repo = next((r for r in (Path.cwd(), REPO) if seed.why_not(r) is None), None)
    if repo is None:
        report.failures.append(f"seed side by side skipped: {seed.why_not(REPO)}")
        progress(report.failures[-1])
        return
    levels = [64] if quick else [16, 64, 256]
    seconds = 2 if quick else 10
    progress(
        f"seed: the seed and our gateway in turn, {rounds} round(s) of {seconds}s "
        f"at {', '.join(map(str, levels))}"
    )
    both = _side_by_side(
        report, backing, workdir, repo, WORKERS_PER_REPLICA, levels, seconds, rounds
    )
    if both is None:
        return
    for concurrency in levels:
        _seed_rows(report, both.runs, concurrency)
    _cpu_per_request_rows(report, both, "engine, every process")
    if quick:
        return
    # The accept tier alone: a stack with no workers stores and queues every
    # order and executes none while the load runs, as a gateway and an
    # OrderService do on machines of their own in a deployment.
    progress("seed: again, against a stack with no workers (accepting alone), one round")
    alone = _side_by_side(report, backing, workdir, repo, 0, levels, seconds, 1)
    if alone is None:
        return
    for concurrency in levels:
        accepting_alone_rows(report, alone.runs, concurrency)
    _cpu_per_request_rows(report, alone, "engine with no workers, every process")


def _side_by_side(
    report: Report,
    backing: Backing,
    workdir: Path,
    repo: Path,
    workers: int,
    levels: list[int],
    seconds: int,
    rounds: int,
) -> _SeedRun | None:
    """The shared script's runs against make run's stack with ``workers``
    workers, with each side's CPU per request; None (and a failure noted)
    when it fails."""
    env = dict(MAKE_RUN)
    if not workers:
        # Nothing drains a stack with no workers: make run's queue bound
        # would refuse what the accept tier takes once it filled.
        del env["MAX_QUEUE_DEPTH"]
    with started_stack(backing, workdir, workers, **env) as (settings, running):
        pids = _pids(running, backing)
        before = cpu.sample(pids)
        try:
            both = seed.side_by_side(
                repo, workdir, settings.gateway_address, _key(), levels, seconds, rounds
            )
        except RuntimeError as exc:
            report.failures.append(f"seed side by side: {exc}")
            progress(report.failures[-1])
            return None
        if workers:  # the CPU of a request is also its order's execution
            Counts(backing).wait_terminal(DRAIN_SECONDS)
        # The stack idles through the seed's runs: its CPU is the engine's runs'.
        engine_seconds = sum(cpu.sample(pids).values()) - sum(before.values())
        run = _SeedRun(
            both.runs,
            both.seed_cpu_seconds * 1000 / max(seed.served(both.runs, "seed", seconds), 1),
            engine_seconds * 1000 / max(seed.served(both.runs, "engine", seconds), 1),
        )
        try:  # every part's page, summed: the gateway's answers, OrderService's refusals
            page = metrics_scrape.scrape(target.url for target in running.metrics)
        except OSError as exc:
            progress(f"seed: a part's /metrics did not answer: {exc}")
            return run
    block = not_answered_2xx(run.runs, page, workers)
    if block:
        report.blocks.append(block)
        progress(block)
    return run


def not_answered_2xx(runs: list[seed.Run], page: metrics_scrape.Samples, workers: int) -> str:
    """What the engine answered the seed's load other than 2xx, by status, as
    its gateway counted (http_requests_total), and why, as OrderService
    counted its refusals (orderengine_submits_refused); the rest of the load
    tool's count are errors and timeouts on the client's side. Empty when
    every request was answered 2xx."""
    statuses = page.by_label("http_requests_total", "status", handler=SUBMIT_ROUTE, method="POST")
    not_2xx = {status: n for status, n in sorted(statuses.items()) if not status.startswith("2")}
    bad = sum(r.bad for r in runs if r.name == "engine")
    if not bad and not not_2xx:
        return ""
    answered = ", ".join(f"{status} x{n:,.0f}" for status, n in not_2xx.items()) or "none"
    reasons = page.by_label("orderengine_submits_refused_total", "reason")
    why = ", ".join(f"{reason} x{n:,.0f}" for reason, n in sorted(reasons.items()) if n)
    client = bad - sum(not_2xx.values())
    return (
        f"The engine ({workers} workers) on the seed's API: {bad:,} requests not answered 2xx "
        f"by the load tool's count; answered by the gateway other than 2xx: {answered} "
        f"(OrderService's refusals: {why or 'none'}); errors and timeouts on the client's "
        f"side: {max(client, 0):,.0f}."
    )


def _figures(runs: list[seed.Run], concurrency: int) -> Callable[[str, str], Figure]:
    """A side's (seed or engine) figure of one field at ``concurrency``, over the runs."""

    def of(name: str, field: str) -> Figure:
        return Figure.of(seed.median(runs, name, concurrency, field))

    return of


def accepting_alone_rows(report: Report, runs: list[seed.Run], concurrency: int) -> None:
    """The engine with no workers beside the seed of the same run: the
    accept tier's own figures, with no target of their own."""
    of = _figures(runs, concurrency)
    report.add(
        Row(
            "seed",
            f"engine with no workers, {concurrency} concurrent",
            of("engine", "per_second"),
            "req/s",
            of("seed", "per_second"),
            "seed",
        )
    )
    report.add(
        Row("seed", "  its p99", of("engine", "p99_ms"), "ms", of("seed", "p99_ms"), "seed p99")
    )


def _seed_rows(report: Report, runs: list[seed.Run], concurrency: int) -> None:
    of = _figures(runs, concurrency)
    report.add(
        Row(
            "seed",
            f"seed POST /api/orders, {concurrency} concurrent",
            of("seed", "per_second"),
            "req/s",
        )
    )
    report.add(
        Row(
            "seed",
            f"engine POST /api/orders, {concurrency} concurrent",
            of("engine", "per_second"),
            "req/s",
            of("seed", "per_second"),
            "seed",
            target=Target(True, 0.5, of_ratio=True),
        )
    )
    report.add(Row("seed", "  seed p99", of("seed", "p99_ms"), "ms"))
    report.add(
        Row(
            "seed",
            "  engine p99",
            of("engine", "p99_ms"),
            "ms",
            of("seed", "p99_ms"),
            "seed p99",
            target=Target(False, 2, of_ratio=True) if concurrency == 64 else None,
        )
    )
    report.figure(
        "seed",
        "  engine non-2xx + errors, all rounds",
        [sum(seed.median(runs, "engine", concurrency, "bad"))],
        "requests",
        target=Target(False, 0),
    )
