"""The load process: drives a running stack over gRPC and prints what it
measured as one JSON line. The benchmark runs it as a separate process, so
the load never shares an interpreter with what it measures.

    python -m orderengine.local.bench.load unary --target submit --address A --concurrency 64 --seconds 5
    python -m orderengine.local.bench.load unary --target submit --address A --rate 500 --seconds 5
    python -m orderengine.local.bench.load e2e --address A --seconds 30 --windows 6
    python -m orderengine.local.bench.load watch --address A --streams 1000 --orders 10 --server-pid P
    python -m orderengine.local.bench.load watch --address A --streams 1000 --rate 1000 --server-pid P
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select

from orderengine.events import publish
from orderengine.local.bench.stats import percentile
from orderengine.mesh.auth import key_metadata, token_metadata
from orderengine.mesh.channels import aio_channel
from orderengine.settings import Settings
from orderengine.statuses import TERMINAL, Status
from orderengine.store.changes import Change, Transition
from orderengine.store.database import create_database_engine
from orderengine.store.models import OrderRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import (
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)

Call = Callable[[], Awaitable[Any]]
CHANNELS = 4  # spread streams over a few HTTP/2 connections, as many clients would


def _orders_channel(address: str) -> grpc.aio.Channel:
    """To OrderService, with the bench's API key (ORDERENGINE_API_KEY)."""
    key = Settings().api_key
    return aio_channel(address, key_metadata(key))


def _submit_call(address: str) -> Call:
    channel = _orders_channel(address)
    stub = order_service_pb2_grpc.OrderServiceStub(channel)
    rng = random.Random(1)

    def call() -> Awaitable[Any]:
        amount = f"0.{rng.randint(1, 999):03d}"
        return stub.SubmitOrder(order_service_pb2.SubmitOrderRequest(
            input_token="SOL", output_token="USDC", amount=amount), timeout=10)
    return call


def _quote_call(address: str) -> Call:
    # Straight to the internal service, as the engine's own parts call it.
    stub = quote_service_pb2_grpc.QuoteServiceStub(
        aio_channel(address, token_metadata(Settings().internal_token)))
    rng = random.Random(2)
    pairs = [("SOL", "USDC"), ("USDC", "SOL"), ("SOL", "USDT"), ("JUP", "SOL")]

    def call() -> Awaitable[Any]:
        src, dst = rng.choice(pairs)
        return stub.GetQuote(quote_service_pb2.GetQuoteRequest(
            input_token=src, output_token=dst, amount=str(rng.randint(1, 500)),
            slippage_bps=50), timeout=10)
    return call


def _echo_call(address: str) -> Call:
    stub = health_pb2_grpc.HealthStub(aio_channel(address))

    def call() -> Awaitable[Any]:
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return call


TARGETS = {"submit": _submit_call, "quote": _quote_call, "echo": _echo_call}


async def unary(target: str, address: str, seconds: float, concurrency: int,
                rate: float) -> dict[str, Any]:
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
    return {"calls": len(latencies), "errors": errors, "seconds": elapsed,
            "per_second": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


async def end_to_end(address: str, seconds: float, windows: int, outstanding: int,
                     warmup: float) -> dict[str, Any]:
    """Keeps ``outstanding`` orders in flight and counts those confirmed per
    second, in ``windows`` equal windows after a warm-up."""
    engine = create_database_engine(Settings().database_url)
    terminal = [s.value for s in TERMINAL]

    def count(statuses: list[str]) -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(OrderRow)
                                          .where(OrderRow.status.in_(statuses))).scalar_one())

    base_done, base_confirmed = count(terminal), count([Status.CONFIRMED])
    call = _submit_call(address)
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
        chunk = samples[i * per_window:(i + 1) * per_window + 1]
        if len(chunk) >= 2:
            rates.append((chunk[-1][1] - chunk[0][1]) / (chunk[-1][0] - chunk[0][0]))
    return {"windows": rates, "submitted": submitted}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# A schedule of status changes: (seconds after the start, changes committed
# together in one transaction and published together, as a worker does).
# Schedules run one after another, each once the streams have every event
# of the one before.
Schedule = list[tuple[float, list[Transition]]]
OVER = Change(reason="benchmark over")


def burst_schedules(ids: list[str]) -> list[Schedule]:
    """Every order to ROUTING at once (one commit each), then every order to
    FAILED: twice the server writes all its streams' events in one go."""
    return [[(0.0, [Transition(i, Status.ROUTING)]) for i in ids],
            [(0.0, [Transition(i, Status.FAILED, OVER)]) for i in ids]]


def paced_schedules(ids: list[str], rate: float, batch_seconds: float,
                    hold_seconds: float) -> list[Schedule]:
    """Each order to ROUTING, then ``hold_seconds`` later to FAILED, the
    changes committed at a steady ``rate`` a second, in a batch every
    ``batch_seconds``: the orders move as the engine moves them."""
    lag = round(hold_seconds * rate / 2)  # orders routed before the first one ends
    changes: list[Transition] = []
    for k in range(len(ids) + lag):
        if k < len(ids):
            changes.append(Transition(ids[k], Status.ROUTING))
        if k >= lag:
            changes.append(Transition(ids[k - lag], Status.FAILED, OVER))
    per_batch = rate * batch_seconds
    schedule = [(j * batch_seconds, changes[round(j * per_batch):round((j + 1) * per_batch)])
                for j in range(math.ceil(len(changes) / per_batch))]
    return [[(due, batch) for due, batch in schedule if batch]]


class Replayed(NamedTuple):
    events: int
    seconds: float
    late: float  # the most any batch was committed after it fell due


def _replay(store: OrderStore, redis: Any, schedule: Schedule) -> Replayed:
    """Commits and publishes each batch when it falls due (a thread of its
    own: the streams' deliveries are read meanwhile)."""
    start = time.perf_counter()
    events = 0
    late = 0.0
    for due, batch in schedule:
        if (wait := start + due - time.perf_counter()) > 0:
            time.sleep(wait)
        late = max(late, time.perf_counter() - start - due)
        moved = [result[1] for result in store.transition_many(batch) if result is not None]
        publish(redis, moved)
        events += len(moved)
    return Replayed(events, time.perf_counter() - start, late)


async def _submit_orders(stubs: list[Any], count: int, concurrency: int = 64) -> list[str]:
    """``count`` new PENDING orders, ``concurrency`` SubmitOrder calls at a time."""
    ids = [""] * count
    taken = 0

    async def submitter() -> None:
        nonlocal taken
        while taken < count:
            i, taken = taken, taken + 1
            reply = await stubs[i % CHANNELS].SubmitOrder(order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount="0.01"), timeout=30)
            ids[i] = reply.order.order_id

    await asyncio.gather(*(submitter() for _ in range(min(concurrency, count))))
    return ids


async def watch(address: str, streams: int, orders: int, server_pid: int, rate: float,
                batch_seconds: float, hold_seconds: float) -> dict[str, Any]:
    """Opens ``streams`` WatchOrder streams over ``orders`` PENDING orders
    (stream i on order i mod ``orders``), then moves every order to ROUTING
    and on to FAILED -- all at once (``rate`` 0: ``burst_schedules``) or at a
    steady ``rate`` (``paced_schedules``) -- and times each event from its
    commit (event_time) to its arrival at the client; and the server's RSS
    growth per stream while they are idle (steady as soon as the last one has
    its history; on a server that held streams before, it reuses their memory)."""
    settings = Settings()
    store = OrderStore(create_database_engine(settings.database_url))
    from redis import Redis

    redis = Redis.from_url(settings.redis_url)
    channels = [_orders_channel(address) for _ in range(CHANNELS)]
    stubs = [order_service_pb2_grpc.OrderServiceStub(c) for c in channels]
    began = time.perf_counter()
    ids = await _submit_orders(stubs, orders)
    submit_seconds = time.perf_counter() - began
    # gRPC core sizes a new call's memory by the calls that ended before it
    # on the same connection; a connection whose calls were all unary would
    # give every stream ~3 KiB it then grows into. A server in service has
    # seen streams end: one on each connection, as here, is enough.
    for stub in stubs:
        warm = stub.WatchOrder(order_service_pb2.WatchOrderRequest(order_id=ids[0]), timeout=30)
        await warm.read()
        warm.cancel()
    await asyncio.sleep(0.5)
    rss_before = _rss_kib(server_pid)
    ready = 0
    all_ready = asyncio.Event()
    latencies: list[float] = []
    failed: Counter[str] = Counter()

    async def stream(i: int) -> None:
        nonlocal ready
        call = stubs[i % CHANNELS].WatchOrder(order_service_pb2.WatchOrderRequest(
            order_id=ids[i % orders]), timeout=600)
        try:
            async for event in call:
                if event.sequence == 1:
                    ready += 1
                    if ready == streams:
                        all_ready.set()
                    continue
                latencies.append(time.time() - event.event_time.ToMicroseconds() / 1e6)
                if Status.from_proto(event.status).terminal:
                    return
        except grpc.aio.AioRpcError as exc:
            failed[f"{exc.code().name}: {exc.details()}"] += 1
            raise

    tasks = [asyncio.ensure_future(stream(i)) for i in range(streams)]
    opened = time.perf_counter()
    try:
        await asyncio.wait_for(all_ready.wait(), 120)
    except TimeoutError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ended = "; ".join(f"{n} ended {why}" for why, n in failed.most_common(3))
        return {"error": f"only {ready} of {streams} streams had their history within 120 s"
                         + (f" ({ended})" if ended else "")}
    open_seconds = time.perf_counter() - opened
    rss_after = _rss_kib(server_pid)

    async def caught_up(deliveries: int) -> None:
        while len(latencies) < deliveries:
            await asyncio.sleep(0.005)

    replayed: list[Replayed] = []
    for schedule in (paced_schedules(ids, rate, batch_seconds, hold_seconds) if rate > 0
                     else burst_schedules(ids)):
        if replayed:  # every stream has every event so far
            await asyncio.wait_for(caught_up(
                sum(r.events for r in replayed) * streams // orders), 120)
        replayed.append(await asyncio.to_thread(_replay, store, redis, schedule))
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    events, seconds = sum(r.events for r in replayed), sum(r.seconds for r in replayed)
    for channel in channels:
        await channel.close(None)
    return {"streams": streams, "orders": orders, "submit_seconds": submit_seconds,
            "open_seconds": open_seconds,
            "kib_per_stream": (rss_after - rss_before) / streams,
            "events": events, "events_per_second": events / seconds if seconds else 0.0,
            "late_ms": max(r.late for r in replayed) * 1000, "deliveries": len(latencies),
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m orderengine.local.bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    w.add_argument("--orders", type=int, default=0,
                   help="orders watched (default: one per stream)")
    w.add_argument("--rate", type=float, default=0,
                   help="status changes committed a second (default 0: every order at once)")
    w.add_argument("--batch-ms", type=float, default=10,
                   help="with --rate: a commit of the changes due every this many ms")
    w.add_argument("--hold", type=float, default=1,
                   help="with --rate: seconds from an order's ROUTING to its FAILED")
    w.add_argument("--server-pid", type=int, required=True)
    args = parser.parse_args()
    result: dict[str, Any]
    if args.kind == "unary":
        result = asyncio.run(unary(args.target, args.address, args.seconds, args.concurrency,
                                   args.rate))
    elif args.kind == "e2e":
        result = asyncio.run(end_to_end(args.address, args.seconds, args.windows,
                                        args.outstanding, args.warmup))
    else:
        result = asyncio.run(watch(args.address, args.streams, args.orders or args.streams,
                                   args.server_pid, args.rate, args.batch_ms / 1000,
                                   args.hold))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
