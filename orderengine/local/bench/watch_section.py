"""The ``watch`` section: WatchOrder streams on one OrderService, their
delivery and their memory, beside a bare grpc.aio server's streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orderengine.local.bench.ceilings import EchoServer
from orderengine.local.bench.report import Report, Row, Target, progress
from orderengine.local.bench.running import Backing, load, pid_listening, stack
from orderengine.local.bench.stats import Figure

RATE = 1000  # events/s: well above what the engine commits end to end
BURST_ORDERS = 100
# The targets: this many streams on one process, delivered within
# P99_MS as clients watch, each idle stream within MEMORY_RATIO of a bare
# grpc.aio stream's memory.
TARGET_STREAMS = 10_000
P99_MS = 100.0
MEMORY_RATIO = 1.15


def memory_rows(streams: int, engine_kib: float, bare_kib: float | None) -> list[Row]:
    """The bare server's memory per idle stream (when it was measured) and
    the engine's, read against it."""
    label = f"{streams} idle streams: memory per stream"
    if bare_kib is None:
        return [Row("watch", label, Figure.of([engine_kib]), "KiB")]
    bare = Figure.of([bare_kib])
    return [
        Row("watch", f"{streams} idle streams, bare grpc.aio: memory per stream", bare, "KiB"),
        Row(
            "watch",
            label,
            Figure.of([engine_kib]),
            "KiB",
            bare,
            "bare grpc.aio",
            target=Target(False, MEMORY_RATIO, of_ratio=True),
        ),
    ]


def _bare_idle(report: Report, streams: int) -> float | None:
    """KiB per idle stream on the bare server, in a process of its own,
    measured by the same load as the engine's (``load idle``)."""
    bare = EchoServer("orderengine.local.bench.bare_watch")
    try:
        result = load(
            "idle",
            "--address",
            bare.address,
            "--streams",
            str(streams),
            "--server-pid",
            str(bare.process.pid),
        )
    finally:
        bare.stop()
    if "error" in result:
        report.failures.append(f"watch, {streams} bare grpc.aio streams: {result['error']}")
        progress(report.failures[-1])
        return None
    kib: float = result["kib_per_stream"]
    return kib


def watch_section(report: Report, backing: Backing, workdir: Path, quick: bool) -> None:
    # Two scenarios on one OrderService, each from a load process of its
    # own. First one stream per order, the orders moving at a steady rate,
    # as clients watch and the engine moves them (and the memory of the
    # streams while idle, on a server that held none before); then many
    # streams on few orders all moving at once: the server writes every
    # stream's event in one go. Before them, the same number of idle streams
    # on a bare grpc.aio server: what grpc.aio alone takes for one.
    for streams in [1000] if quick else [1000, TARGET_STREAMS]:
        progress(f"watch: {streams} idle streams on a bare grpc.aio server")
        bare_kib = _bare_idle(report, streams)
        progress(f"watch: {streams} streams on one OrderService")
        paced_label = f"{streams} streams, 1 order each, {RATE} ev/s"
        burst_label = f"{streams} streams, {BURST_ORDERS} orders at once"
        results: dict[str, dict[str, Any]] = {}
        with stack(backing, workdir, workers=0) as settings:
            pid = pid_listening(settings.order_service_address)
            watch = [
                str(a)
                for a in (
                    "watch",
                    "--address",
                    settings.order_service_address,
                    "--streams",
                    streams,
                    "--server-pid",
                    pid,
                )
            ]
            results[paced_label] = load(*watch, "--rate", str(RATE))
            results[burst_label] = load(*watch, "--orders", str(BURST_ORDERS))
        for label, result in results.items():
            if "error" in result:
                report.failures.append(f"watch, {label}: {result['error']}")
                progress(report.failures[-1])
                continue
            report.figure("watch", f"{label}: p50", [result["p50_ms"]], "ms")
            report.figure(
                "watch",
                f"{label}: p99",
                [result["p99_ms"]],
                "ms",
                target=Target(False, P99_MS)
                if label == paced_label and streams >= TARGET_STREAMS
                else None,
            )
            if label == paced_label:
                for row in memory_rows(streams, result["kib_per_stream"], bare_kib):
                    report.add(row)
                progress(
                    f"{label}: {result['events_per_second']:,.0f} events/s "
                    f"committed, at worst {result['late_ms']:.0f} ms behind"
                )
