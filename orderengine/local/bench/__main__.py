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

from orderengine.local.bench.grpc_sections import (
    accept_section,
    ceiling_section,
    e2e_section,
    quote_section,
)
from orderengine.local.bench.http_sections import http_section, seed_section
from orderengine.local.bench.report import Report
from orderengine.local.bench.running import Backing
from orderengine.local.bench.stats import Figure
from orderengine.local.bench.triggers_section import triggers_section
from orderengine.local.bench.watch_section import watch_section


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
        else {"ceiling", "accept", "e2e", "watch", "quote", "http", "seed", "triggers"}
    )
    # Quick: make run's two workers alone, to keep CI short.
    worker_counts = [2] if quick else [1, 2, 4]
    workdir = Path(tempfile.mkdtemp(prefix="orderengine-bench-"))
    backing = Backing(workdir)
    report.info["database"] = backing.database_url.split("@")[-1]
    report.info["redis"] = "embedded" if backing.embedded else backing.redis_url.split("@")[-1]
    ceilings: dict[str, Figure] = {}
    try:
        if sections & {"ceiling", "accept", "e2e"}:
            ceilings = ceiling_section(report, backing, quick, rounds, seconds, worker_counts)
        if "accept" in sections:
            concurrencies = [64] if quick else [1, 16, 64, 256]
            accept_section(report, backing, workdir, concurrencies, rounds, seconds, ceilings)
        if "e2e" in sections:
            e2e_section(report, backing, workdir, quick, worker_counts, ceilings)
        if "watch" in sections:
            watch_section(report, backing, workdir, quick)
        if "quote" in sections:
            quote_section(report, backing, workdir, rounds, seconds, ceilings)
        if "http" in sections:
            http_section(report, backing, workdir, quick, rounds)
        if "seed" in sections:
            seed_section(report, backing, workdir, quick, rounds)
        if "triggers" in sections:
            triggers_section(report, backing, workdir, quick)
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
        help="comma-separated sections: ceiling,accept,e2e,watch,quote,http,seed,triggers",
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
