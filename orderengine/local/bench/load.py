"""The load process: drives a running stack over gRPC and prints what it
measured as one JSON line. The benchmark runs it as a separate process, so
the load never shares an interpreter with what it measures.

    python -m orderengine.local.bench.load unary --target submit --address A --concurrency 64 --seconds 5
    python -m orderengine.local.bench.load unary --target submit --address A --rate 500 --seconds 5
    python -m orderengine.local.bench.load e2e --address A --seconds 30 --windows 6
    python -m orderengine.local.bench.load watch --address A --streams 1000 --orders 10 --server-pid P
    python -m orderengine.local.bench.load watch --address A --streams 1000 --rate 1000 --server-pid P
    python -m orderengine.local.bench.load idle --address A --streams 1000 --server-pid P
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import grpc
from sqlalchemy import func, select

from orderengine.local.bench.calls import TARGETS, submit_call
from orderengine.local.bench.stats import percentile
from orderengine.local.bench.watch_load import idle, watch
from orderengine.settings import Settings
from orderengine.statuses import TERMINAL, Status
from orderengine.store.database import create_database_engine
from orderengine.store.models import OrderRow


async def unary(
    target: str, address: str, seconds: float, concurrency: int, rate: float
) -> dict[str, Any]:
    """Closed loop at ``concurrency``, or open loop at ``rate`` calls/s."""
    call = TARGETS[target](address)
    for _ in range(20):  # warm the connection
        await call()
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def one() -> None:
        nonlocal errors
        began = time.perf_counter()
        try:
            await call()
            latencies.append(time.perf_counter() - began)
        except grpc.aio.AioRpcError:
            errors += 1

    if rate > 0:
        tasks = []
        sent = 0
        while (now := time.perf_counter()) < deadline:
            due = int((now - start) * rate) + 1
            while sent < due:
                tasks.append(asyncio.ensure_future(one()))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
    else:

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await one()

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "calls": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


async def end_to_end(
    address: str, seconds: float, windows: int, outstanding: int, warmup: float
) -> dict[str, Any]:
    """Keeps ``outstanding`` orders in flight and counts those confirmed per
    second, in ``windows`` equal windows after a warm-up."""
    engine = create_database_engine(Settings().database_url)
    terminal = [s.value for s in TERMINAL]

    def count(statuses: list[str]) -> int:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(OrderRow).where(OrderRow.status.in_(statuses))
                ).scalar_one()
            )

    base_done, base_confirmed = count(terminal), count([Status.CONFIRMED])
    call = submit_call(address)
    submitted = 0
    done = 0
    stop = asyncio.Event()

    async def submitter() -> None:
        nonlocal submitted
        while not stop.is_set():
            if submitted - done >= outstanding:
                await asyncio.sleep(0.005)
                continue
            submitted += 1
            try:
                await call()
            except grpc.aio.AioRpcError:
                submitted -= 1
                await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(submitter()) for _ in range(32)]
    samples: list[tuple[float, int]] = []
    start = time.perf_counter()
    while (now := time.perf_counter()) < start + warmup + seconds:
        done = await asyncio.to_thread(count, terminal) - base_done
        confirmed = await asyncio.to_thread(count, [Status.CONFIRMED]) - base_confirmed
        if now >= start + warmup:
            samples.append((now, confirmed))
        await asyncio.sleep(0.25)
    stop.set()
    await asyncio.gather(*tasks)
    engine.dispose()
    rates = []
    per_window = max(1, len(samples) // windows)
    for i in range(windows):
        chunk = samples[i * per_window : (i + 1) * per_window + 1]
        if len(chunk) >= 2:
            rates.append((chunk[-1][1] - chunk[0][1]) / (chunk[-1][0] - chunk[0][0]))
    return {"windows": rates, "submitted": submitted}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orderengine.local.bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    u = sub.add_parser("unary")
    u.add_argument("--target", choices=sorted(TARGETS), required=True)
    u.add_argument("--address", required=True)
    u.add_argument("--seconds", type=float, default=5)
    u.add_argument("--concurrency", type=int, default=16)
    u.add_argument("--rate", type=float, default=0, help="open loop at this many calls/s")
    e = sub.add_parser("e2e")
    e.add_argument("--address", required=True)
    e.add_argument("--seconds", type=float, default=30)
    e.add_argument("--windows", type=int, default=6)
    # Enough in flight that the engine, not this cap, is the bound: a closed
    # loop gives at most outstanding / latency (Little's law), and an order
    # takes a few chain slots end to end.
    e.add_argument("--outstanding", type=int, default=2000)
    e.add_argument("--warmup", type=float, default=3)
    w = sub.add_parser("watch")
    w.add_argument("--address", required=True)
    w.add_argument("--streams", type=int, default=1000)
    w.add_argument("--orders", type=int, default=0, help="orders watched (default: one per stream)")
    w.add_argument(
        "--rate",
        type=float,
        default=0,
        help="status changes committed a second (default 0: every order at once)",
    )
    w.add_argument(
        "--batch-ms",
        type=float,
        default=10,
        help="with --rate: a commit of the changes due every this many ms",
    )
    w.add_argument(
        "--hold",
        type=float,
        default=1,
        help="with --rate: seconds from an order's ROUTING to its FAILED",
    )
    w.add_argument("--server-pid", type=int, required=True)
    i = sub.add_parser("idle", help="only the memory of idle WatchOrder streams")
    i.add_argument("--address", required=True)
    i.add_argument("--streams", type=int, default=1000)
    i.add_argument("--server-pid", type=int, required=True)
    args = parser.parse_args()
    result: dict[str, Any]
    if args.kind == "unary":
        result = asyncio.run(
            unary(args.target, args.address, args.seconds, args.concurrency, args.rate)
        )
    elif args.kind == "e2e":
        result = asyncio.run(
            end_to_end(args.address, args.seconds, args.windows, args.outstanding, args.warmup)
        )
    elif args.kind == "idle":
        result = asyncio.run(idle(args.address, args.streams, args.server_pid))
    else:
        result = asyncio.run(
            watch(
                args.address,
                args.streams,
                args.orders or args.streams,
                args.server_pid,
                args.rate,
                args.batch_ms / 1000,
                args.hold,
            )
        )
    print(json.dumps(result), flush=True)
    # The result is out. grpc.aio's own shutdown at interpreter exit can crash
    # the process (grpc/grpc#40447), which would lose a finished run.
    os._exit(0)


if __name__ == "__main__":
    main()
