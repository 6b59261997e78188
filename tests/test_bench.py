"""The bench's pure pieces: the /proc CPU reader, the tables, reading the
load tools' output back. No timing: the figures are the bench's to print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from orderengine.local.bench import cpu, http_sections, seed, watch_section
from orderengine.local.bench.http_load import autocannon_result
from orderengine.local.bench.report import Report, Row, Target
from orderengine.local.bench.stats import Figure
from orderengine.observability import metrics_scrape


def test_cpu_seconds_reads_this_process_s_own_counters() -> None:
    before = cpu.cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))  # some CPU of our own
    after = cpu.cpu_seconds(os.getpid())
    assert after >= before > 0
    assert cpu.cpu_seconds(2**22 + 1) == 0.0  # no such process: counts nothing


def test_replicas_count_with_their_kind() -> None:
    pids = {
        "gateway": os.getpid(),
        "worker-1": os.getpid(),
        "worker-2": os.getpid(),
        "OrderService 2": os.getpid(),
        "tracker-1": os.getpid(),
        "market flow": os.getpid(),
    }
    assert set(cpu.sample(pids)) == {"gateway", "workers", "OrderService", "tracker", "market flow"}


def test_cpu_per_order_by_group_with_the_total_and_the_accept_path() -> None:
    before = {"gateway": 1.0, "OrderService": 2.0, "workers": 0.0, "Redis": 0.5}
    after = {"gateway": 1.5, "OrderService": 2.3, "workers": 1.0, "Redis": 0.6}
    per_order = cpu.CpuPerOrder.between(before, after, orders=1000)
    assert list(per_order.by_group) == ["gateway", "OrderService", "workers", "Redis"]
    assert round(per_order.by_group["gateway"], 6) == 0.5
    assert round(per_order.accept_path, 6) == 0.8
    assert round(per_order.total, 6) == 1.9
    table = cpu.format_table(per_order, 1000, [])
    assert "accept path (gateway + OrderService)" in table and "1.900" in table


def test_server_time_by_method_between_two_scrapes() -> None:
    def page(count: int, seconds: float) -> metrics_scrape.Samples:
        labels = (
            'grpc_type="unary",grpc_service="orderengine.v1.OrderService",grpc_method="SubmitOrder"'
        )
        return metrics_scrape.parse(
            [
                "# TYPE grpc_server_handling_seconds histogram\n"
                f"grpc_server_handling_seconds_count{{{labels}}} {count}\n"
                f"grpc_server_handling_seconds_sum{{{labels}}} {seconds}\n"
            ]
        )

    methods = cpu.method_times(
        {"OrderService": page(10, 1.0)}, {"OrderService": page(110, 3.0)}, orders=100
    )
    assert [(m.part, m.method) for m in methods] == [("OrderService", "OrderService/SubmitOrder")]
    assert round(methods[0].calls_per_order, 6) == 1.0
    assert round(methods[0].ms_per_order, 6) == 20.0


def test_orders_per_drive_from_the_workers_pages_between_two_scrapes() -> None:
    def page(drives: int, orders: int) -> metrics_scrape.Samples:
        return metrics_scrape.parse(
            [
                "# TYPE orderengine_drive_orders histogram\n"
                f"orderengine_drive_orders_count {drives}\n"
                f"orderengine_drive_orders_sum {orders}\n"
            ]
        )

    # Two workers, one of them started between the scrapes; a part without the figure.
    before = {"worker-1": page(4, 10)}
    after = {"worker-1": page(10, 40), "worker-2": page(2, 6), "tracker": page(0, 0)}
    assert cpu.grown(before, after, "orderengine_drive_orders_count") == 8
    assert cpu.grown(before, after, "orderengine_drive_orders_sum") == 36


def test_a_row_s_target_is_met_or_not_in_the_table_and_the_json() -> None:
    report = Report()
    report.add(Row("cpu", "total", Figure.of([2.0, 3.0, 2.4]), "ms", target=Target(False, 2.5)))
    report.add(
        Row(
            "seed",
            "engine",
            Figure.of([100.0]),
            "req/s",
            Figure.of([400.0]),
            "seed",
            target=Target(True, 0.5, of_ratio=True),
        )
    )
    report.add(Row("http", "no target", Figure.of([1.0]), "ms"))
    lines = report.table().splitlines()
    assert lines[2].endswith("<= 2.5 met")
    assert lines[3].endswith(">= 0.5x NOT met")
    assert "met" not in lines[4]
    rows = json.loads(json.dumps(report.json()))["rows"]
    assert [r["met"] for r in rows] == [True, False, None]


def test_the_side_by_side_script_s_lines_are_read_back() -> None:
    out = (
        "building the seed app (npm install + tsc), once ...\n"
        "round 1 seed   c=64       2290 req/s  p50    25 ms  p99    80 ms  "
        "non-2xx/errors 0  (load 9.5)\n"
        "round 1 engine c=64        309 req/s  p50   190 ms  p99   497 ms  "
        "non-2xx/errors 3  (load 9.8)\n"
    )
    runs = seed.parse(out)
    assert [(r.name, r.concurrency, r.per_second, r.p99_ms, r.bad) for r in runs] == [
        ("seed", 64, 2290.0, 80.0, 0),
        ("engine", 64, 309.0, 497.0, 3),
    ]
    assert seed.ratio(runs, 64) == 309.0 / 2290.0


def test_the_seed_s_cpu_is_read_from_its_own_process_until_it_ends() -> None:
    # A stand-in for the script: it starts a "seed" (a child whose arguments
    # hold the seed's entry point) that burns CPU and exits, and another
    # child that burns CPU too but is not the seed (as autocannon is not).
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    script = (
        "import subprocess, sys\n"
        f"seed = subprocess.Popen([sys.executable, '-c', {burn!r}, {seed.SEED_ENTRY!r}])\n"
        f"other = subprocess.Popen([sys.executable, '-c', {burn!r}, 'autocannon'])\n"
        "seed.wait(); other.wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    watched = seed._SeedCpu(parent.pid)
    while parent.poll() is None:
        watched.read()
        time.sleep(0.01)
    # Its CPU as last read before it ended: most of the 0.3 s, the other's not.
    assert 0.15 <= watched.seconds < 0.45


def test_each_side_s_cpu_per_request_stands_beside_the_other() -> None:
    runs = seed.parse(
        "round 1 seed   c=64      10000 req/s  p50     5 ms  p99    16 ms  non-2xx/errors 0\n"
        "round 1 engine c=64       2000 req/s  p50    30 ms  p99    80 ms  non-2xx/errors 0\n"
        "round 2 seed   c=64      12000 req/s  p50     5 ms  p99    16 ms  non-2xx/errors 0\n"
    )
    assert seed.served(runs, "seed", 10) == 220_000
    assert seed.served(runs, "engine", 10) == 20_000
    report = Report()
    http_sections._cpu_per_request_rows(
        report, http_sections._SeedRun(runs, seed_ms=0.2, engine_ms=0.9), "engine, every process"
    )
    seed_row, engine_row = report.rows
    assert seed_row.name == "CPU per request, seed (node + its Redis)"
    assert engine_row.name == "CPU per request, engine, every process"
    assert round(engine_row.ratio() or 0, 6) == 4.5  # the engine spends 4.5 times the seed's


def test_the_engine_accepting_alone_stands_beside_the_seed_of_its_own_run() -> None:
    runs = seed.parse(
        "round 1 seed   c=64       8000 req/s  p50     5 ms  p99    16 ms  non-2xx/errors 0\n"
        "round 1 engine c=64       2000 req/s  p50    30 ms  p99    80 ms  non-2xx/errors 0\n"
        "round 1 seed   c=256      6000 req/s  p50    40 ms  p99   150 ms  non-2xx/errors 0\n"
    )
    report = Report()
    http_sections.accepting_alone_rows(report, runs, 64)
    throughput, p99 = report.rows
    assert throughput.name == "engine with no workers, 64 concurrent"
    assert throughput.ratio() == 0.25  # of the seed at 64, not at 256
    assert round(p99.ratio() or 0, 6) == 5.0
    # Context, not a target: the targets are the stack's with its workers.
    assert throughput.target is None and p99.target is None
    assert throughput.met() is None


def test_what_the_engine_answered_other_than_2xx_is_named_by_status() -> None:
    runs = seed.parse(
        "round 1 seed   c=256      6000 req/s  p50    40 ms  p99   150 ms  non-2xx/errors 0\n"
        "round 1 engine c=64       1000 req/s  p50    60 ms  p99   140 ms  non-2xx/errors 0\n"
        "round 1 engine c=256      1100 req/s  p50   200 ms  p99   400 ms  non-2xx/errors 250\n"
    )
    page = metrics_scrape.parse(
        [
            "# TYPE http_requests_total counter\n"
            'http_requests_total{handler="/api/orders",method="POST",status="201"} 30000\n'
            'http_requests_total{handler="/api/orders",method="POST",status="429"} 236\n'
            'http_requests_total{handler="/api/orders",method="POST",status="503"} 4\n'
            'http_requests_total{handler="/healthz",method="GET",status="503"} 9\n'
            "# TYPE orderengine_submits_refused counter\n"
            'orderengine_submits_refused_total{reason="QUEUE_FULL"} 236\n'
            'orderengine_submits_refused_total{reason="INVALID_FIELD"} 0\n'
        ]
    )
    block = http_sections.not_answered_2xx(runs, page, workers=2)
    assert "250 requests not answered 2xx" in block
    assert "429 x236, 503 x4" in block  # the health checks' 503s are not the load's
    assert "refusals: QUEUE_FULL x236)" in block
    assert "client's side: 10." in block
    clean = metrics_scrape.parse(
        [
            "# TYPE http_requests_total counter\n"
            'http_requests_total{handler="/api/orders",method="POST",status="201"} 30000\n'
        ]
    )
    assert http_sections.not_answered_2xx(runs[:2], clean, workers=2) == ""


def test_autocannon_s_summary_in_the_load_s_keys() -> None:
    summary = {
        "requests": {"average": 812.5},
        "latency": {"p50": 70, "p99": 210},
        "2xx": 4062,
        "non2xx": 1,
        "errors": 2,
        "timeouts": 1,
        "duration": 5.01,
    }
    assert autocannon_result(json.dumps(summary)) == {
        "tool": "autocannon",
        "per_second": 812.5,
        "ok": 4062,
        "non2xx": 1,
        "errors": 3,
        "p50_ms": 70.0,
        "p99_ms": 210.0,
        "seconds": 5.01,
    }


def test_idle_stream_memory_is_read_against_the_bare_grpc_aio_stream() -> None:
    bare, engine = watch_section.memory_rows(10_000, engine_kib=23.0, bare_kib=20.0)
    assert bare.name == "10000 idle streams, bare grpc.aio: memory per stream"
    assert bare.target is None
    assert engine.ceiling_name == "bare grpc.aio"
    assert round(engine.ratio() or 0, 6) == 1.15
    assert engine.met() is True  # at most 1.15x
    (_, over) = watch_section.memory_rows(10_000, engine_kib=23.1, bare_kib=20.0)
    assert over.met() is False
    report = Report()
    report.add(over)
    assert report.table().splitlines()[2].endswith("116%  <= 1.15x NOT met")
    # Without the bare figure (it failed), the engine's row alone, no target.
    (alone,) = watch_section.memory_rows(1000, engine_kib=21.0, bare_kib=None)
    assert alone.target is None and alone.ratio() is None


def test_the_end_to_end_load_offers_more_than_its_target() -> None:
    # Offered exactly the target, a stack could never be shown to sustain it.
    assert http_sections.E2E_RATE > http_sections.E2E_TARGET == 500
