"""``make bench`` / ``python -m orderengine.local.bench``: starts the stack as real
processes, drives it from a separate load process over gRPC, and prints one
table (and a JSON file) of medians over rounds, with min and max, each
engine figure beside the ceiling of the part it is built on.

The embedded defaults (SQLite, embedded Redis) unless BENCH_DATABASE_URL /
BENCH_REDIS_URL name real servers -- whose order tables and Redis database
the benchmark empties."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from orderengine.local import metrics_targets
from orderengine.local.bench.ceilings import EchoServer, inserts_per_second, rq_jobs_per_second
from orderengine.local.bench.http_sections import http_section, seed_section
from orderengine.local.bench.report import Report, Row, Target, progress
from orderengine.local.bench.running import Backing, load, stack
from orderengine.local.bench.stats import Figure
from orderengine.local.bench.watch_section import watch_section
from orderengine.observability import metrics_scrape


def run(args: argparse.Namespace) -> Report:
    quick: bool = args.quick
    rounds = 1 if quick else args.rounds
    seconds = 1.5 if quick else 5.0
    report = Report(
        info={
            "quick": quick,
            "rounds": rounds,
            "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    sections = (
        set(args.only.split(","))
        if args.only
        else {"ceiling", "accept", "e2e", "watch", "quote", "http", "seed"}
    )
    worker_counts = [1, 2] if quick else [1, 2, 4]
    workdir = Path(tempfile.mkdtemp(prefix="orderengine-bench-"))
    backing = Backing(workdir)
    report.info["database"] = backing.database_url.split("@")[-1]
    report.info["redis"] = "embedded" if backing.embedded else backing.redis_url.split("@")[-1]
    ceilings: dict[str, Figure] = {}
    try:
        if "ceiling" in sections or "accept" in sections or "e2e" in sections:
            progress("ceilings: the bare parts")
            echo = EchoServer()
            try:
                ceilings["grpc"] = report.add(
                    Row(
                        "ceiling",
                        "grpc.aio unary echo, 64 concurrent",
                        Figure.of(
                            [
                                load(
                                    "unary",
                                    "--target",
                                    "echo",
                                    "--address",
                                    echo.address,
                                    "--concurrency",
                                    "64",
                                    "--seconds",
                                    str(seconds),
                                )["per_second"]
                                for _ in range(rounds)
                            ]
                        ),
                        "calls/s",
                    )
                ).figure
            finally:
                echo.stop()
            ceilings["insert"] = report.add(
                Row(
                    "ceiling",
                    "insert + commit of one row",
                    Figure.of(
                        [inserts_per_second(backing.database_url, seconds) for _ in range(rounds)]
                    ),
                    "rows/s",
                )
            ).figure
            for w in worker_counts:
                jobs = 1000 if quick else 4000
                ceilings[f"rq{w}"] = report.add(
                    Row(
                        "ceiling",
                        f"RQ enqueue + no-op job, {w} worker{'s' * (w > 1)}",
                        Figure.of(
                            [rq_jobs_per_second(backing.redis_url, w, jobs) for _ in range(rounds)]
                        ),
                        "jobs/s",
                    )
                ).figure

        if "accept" in sections:
            progress("accept: SubmitOrder with no workers draining")
            with stack(backing, workdir, workers=0) as settings:
                address = settings.order_service_address
                best = None
                for concurrency in [64] if quick else [1, 16, 64, 256]:
                    row = report.add(
                        Row(
                            "accept",
                            f"SubmitOrder, {concurrency} concurrent",
                            Figure.of(
                                [
                                    load(
                                        "unary",
                                        "--target",
                                        "submit",
                                        "--address",
                                        address,
                                        "--concurrency",
                                        str(concurrency),
                                        "--seconds",
                                        str(seconds),
                                    )["per_second"]
                                    for _ in range(rounds)
                                ]
                            ),
                            "orders/s",
                            ceilings.get("grpc"),
                            "grpc echo",
                        )
                    )
                    best = row if best is None or row.figure.median > best.figure.median else best
                runs = [
                    load(
                        "unary",
                        "--target",
                        "submit",
                        "--address",
                        address,
                        "--rate",
                        "500",
                        "--seconds",
                        str(seconds),
                    )
                    for _ in range(rounds)
                ]
                report.add(
                    Row(
                        "accept",
                        "SubmitOrder p50 at 500/s offered",
                        Figure.of([r["p50_ms"] for r in runs]),
                        "ms",
                    )
                )
                report.add(
                    Row(
                        "accept",
                        "SubmitOrder p99 at 500/s offered",
                        Figure.of([r["p99_ms"] for r in runs]),
                        "ms",
                    )
                )

        if "e2e" in sections:
            sustained = 5.0 if quick else 30.0
            delays = [("0", "0")] if quick else [("0", "0"), ("0.4", "0.6")]
            for slot, confirm in delays:
                for w in worker_counts:
                    label = f"submit -> CONFIRMED, {w} worker{'s' * (w > 1)}, slot {slot}s"
                    progress(f"e2e: {label} (sustained {sustained:.0f}s)")
                    with stack(
                        backing,
                        workdir,
                        workers=w,
                        CHAIN_SLOT_SECONDS=slot,
                        CHAIN_CONFIRM_SECONDS=confirm,
                    ) as settings:
                        result = load(
                            "e2e",
                            "--address",
                            settings.order_service_address,
                            "--seconds",
                            str(sustained),
                            "--windows",
                            "2" if quick else "6",
                            "--warmup",
                            "2" if quick else "3",
                        )
                        # Where an order's time went, from every part's /metrics.
                        spent = metrics_scrape.time_breakdown(
                            metrics_scrape.scrape(
                                t.url
                                for t in metrics_targets.read_targets(
                                    workdir / "stack" / metrics_targets.TARGETS_FILE
                                )
                            )
                        )
                    report.add(
                        Row(
                            "e2e",
                            label,
                            Figure.of(result["windows"]),
                            "orders/s",
                            ceilings.get(f"rq{w}"),
                            f"RQ ceiling, {w}w",
                        )
                    )
                    for stage, stage_seconds in spent.items():
                        report.add(
                            Row(
                                "e2e",
                                f"  mean per order: {stage}",
                                Figure.of([] if stage_seconds is None else [stage_seconds * 1000]),
                                "ms",
                            )
                        )

        if "watch" in sections:
            watch_section(report, backing, workdir, quick)

        if "quote" in sections:
            progress("quote: QuoteService.GetQuote")
            with stack(backing, workdir, workers=0) as settings:
                address = settings.quote_service_address
                single = [
                    load(
                        "unary",
                        "--target",
                        "quote",
                        "--address",
                        address,
                        "--concurrency",
                        "1",
                        "--seconds",
                        str(seconds),
                    )
                    for _ in range(rounds)
                ]
                report.add(
                    Row(
                        "quote",
                        "GetQuote p50, one at a time",
                        Figure.of([r["p50_ms"] for r in single]),
                        "ms",
                    )
                )
                report.add(
                    Row(
                        "quote",
                        "GetQuote p99, one at a time",
                        Figure.of([r["p99_ms"] for r in single]),
                        "ms",
                        target=Target(False, 5),
                    )
                )
                report.add(
                    Row(
                        "quote",
                        "GetQuote, 16 concurrent",
                        Figure.of(
                            [
                                load(
                                    "unary",
                                    "--target",
                                    "quote",
                                    "--address",
                                    address,
                                    "--concurrency",
                                    "16",
                                    "--seconds",
                                    str(seconds),
                                )["per_second"]
                                for _ in range(rounds)
                            ]
                        ),
                        "quotes/s",
                        ceilings.get("grpc"),
                        "grpc echo",
                    )
                )

        if "http" in sections:
            http_section(report, backing, workdir, quick, rounds)
        if "seed" in sections:
            seed_section(report, backing, workdir, quick, rounds)
    finally:
        backing.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orderengine.local.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one short round of each figure: under a minute, for CI",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections: ceiling,accept,e2e,watch,quote,http,seed",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("artifacts/bench.json"),
        help="where to write the figures (default artifacts/bench.json)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    report = run(args)
    report.info["seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(report.table())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report.json(), indent=2))
    print(f"\n{len(report.rows)} figures in {report.info['seconds']}s; JSON in {args.json}")


if __name__ == "__main__":
    main()
