"""The sections that drive the stack over gRPC from the load process: the
bare parts' ceilings, SubmitOrder's accept rate, submit -> CONFIRMED, and
GetQuote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orderengine.local import metrics_targets
from orderengine.local.bench.ceilings import EchoServer, inserts_per_second, rq_jobs_per_second
from orderengine.local.bench.report import Report, Target, progress
from orderengine.local.bench.running import Backing, load, stack
from orderengine.local.bench.stats import Figure
from orderengine.observability import metrics_scrape


def unary(target: str, address: str, seconds: float, how: str, value: float) -> dict[str, Any]:
    """One run of the load process's unary calls to ``target``, ``how`` being
    --concurrency (a closed loop) or --rate (an open one)."""
    return load(
        "unary",
        *("--target", target, "--address", address),
        *(how, f"{value:g}", "--seconds", str(seconds)),
    )


def rates(target: str, address: str, seconds: float, concurrency: int, rounds: int) -> list[float]:
    """Calls a second to ``target`` with ``concurrency`` in flight, a round each."""
    return [
        unary(target, address, seconds, "--concurrency", concurrency)["per_second"]
        for _ in range(rounds)
    ]


def latency_rows(
    report: Report,
    section: str,
    name: str,
    runs: list[dict[str, Any]],
    p99_target: Target | None = None,
) -> None:
    """The p50 and p99 rows of ``runs`` (``name`` holds ``{p}`` for which)."""
    report.figure(section, name.format(p="p50"), (r["p50_ms"] for r in runs), "ms")
    report.figure(
        section, name.format(p="p99"), (r["p99_ms"] for r in runs), "ms", target=p99_target
    )


def ceiling_section(
    report: Report,
    backing: Backing,
    quick: bool,
    rounds: int,
    seconds: float,
    worker_counts: list[int],
) -> dict[str, Figure]:
    """What the bare parts do alone: the figures the engine's stand beside."""
    progress("ceilings: the bare parts")
    ceilings: dict[str, Figure] = {}
    echo = EchoServer()
    try:
        ceilings["grpc"] = report.figure(
            "ceiling",
            "grpc.aio unary echo, 64 concurrent",
            rates("echo", echo.address, seconds, 64, rounds),
            "calls/s",
        ).figure
    finally:
        echo.stop()
    ceilings["insert"] = report.figure(
        "ceiling",
        "insert + commit of one row",
        (inserts_per_second(backing.database_url, seconds) for _ in range(rounds)),
        "rows/s",
    ).figure
    jobs = 1000 if quick else 4000
    for w in worker_counts:
        ceilings[f"rq{w}"] = report.figure(
            "ceiling",
            f"RQ enqueue + no-op job, {w} worker{'s' * (w > 1)}",
            (rq_jobs_per_second(backing.redis_url, w, jobs) for _ in range(rounds)),
            "jobs/s",
        ).figure
    return ceilings


def accept_section(
    report: Report,
    backing: Backing,
    workdir: Path,
    concurrencies: list[int],
    rounds: int,
    seconds: float,
    ceilings: dict[str, Figure],
) -> None:
    """SubmitOrder with no workers draining: what accepting alone costs."""
    progress("accept: SubmitOrder with no workers draining")
    with stack(backing, workdir, workers=0) as settings:
        address = settings.order_service_address
        for concurrency in concurrencies:
            report.figure(
                "accept",
                f"SubmitOrder, {concurrency} concurrent",
                rates("submit", address, seconds, concurrency, rounds),
                "orders/s",
                ceiling=ceilings.get("grpc"),
                ceiling_name="grpc echo",
            )
        runs = [unary("submit", address, seconds, "--rate", 500) for _ in range(rounds)]
        latency_rows(report, "accept", "SubmitOrder {p} at 500/s offered", runs)


def e2e_section(
    report: Report,
    backing: Backing,
    workdir: Path,
    quick: bool,
    worker_counts: list[int],
    ceilings: dict[str, Figure],
) -> None:
    """Submit -> CONFIRMED, sustained, and where each order's time went."""
    sustained = 5.0 if quick else 30.0
    delays = [("0", "0")] if quick else [("0", "0"), ("0.4", "0.6")]
    for slot, confirm in delays:
        for w in worker_counts:
            label = f"submit -> CONFIRMED, {w} worker{'s' * (w > 1)}, slot {slot}s"
            progress(f"e2e: {label} (sustained {sustained:.0f}s)")
            with stack(
                backing, workdir, workers=w, CHAIN_SLOT_SECONDS=slot, CHAIN_CONFIRM_SECONDS=confirm
            ) as settings:
                result = load(
                    "e2e",
                    *("--address", settings.order_service_address),
                    *("--seconds", str(sustained)),
                    *("--windows", "2" if quick else "6", "--warmup", "2" if quick else "3"),
                )
                targets = metrics_targets.read_targets(
                    workdir / "stack" / metrics_targets.TARGETS_FILE
                )
                spent = metrics_scrape.time_breakdown(metrics_scrape.scrape(t.url for t in targets))
            report.figure(
                "e2e",
                label,
                result["windows"],
                "orders/s",
                ceiling=ceilings.get(f"rq{w}"),
                ceiling_name=f"RQ ceiling, {w}w",
            )
            for stage, stage_seconds in spent.items():
                report.figure(
                    "e2e",
                    f"  mean per order: {stage}",
                    [] if stage_seconds is None else [stage_seconds * 1000],
                    "ms",
                )


def quote_section(
    report: Report,
    backing: Backing,
    workdir: Path,
    rounds: int,
    seconds: float,
    ceilings: dict[str, Figure],
) -> None:
    """QuoteService.GetQuote, one at a time and 16 concurrent."""
    progress("quote: QuoteService.GetQuote")
    with stack(backing, workdir, workers=0) as settings:
        address = settings.quote_service_address
        single = [unary("quote", address, seconds, "--concurrency", 1) for _ in range(rounds)]
        latency_rows(report, "quote", "GetQuote {p}, one at a time", single, Target(False, 5))
        report.figure(
            "quote",
            "GetQuote, 16 concurrent",
            rates("quote", address, seconds, 16, rounds),
            "quotes/s",
            ceiling=ceilings.get("grpc"),
            ceiling_name="grpc echo",
        )
