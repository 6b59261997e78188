"""The watch load (``python -m orderengine.local.bench.load watch``): many
WatchOrder streams on a running OrderService, the orders they watch moved
by commits the load makes itself, each event timed from its commit to its
arrival, and the server's memory a stream; and (``load idle``) the memory
alone, on the bare grpc.aio server it is read against."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from orderengine.events import publish
from orderengine.local.bench.calls import orders_channel
from orderengine.local.bench.stats import percentile
from orderengine.observability import request_ids
from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.store.changes import Change, Transition
from orderengine.store.database import create_database_engine
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc

CHANNELS = 4  # spread streams over a few HTTP/2 connections, as many clients would


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
    return [
        [(0.0, [Transition(i, Status.ROUTING)]) for i in ids],
        [(0.0, [Transition(i, Status.FAILED, OVER)]) for i in ids],
    ]


def paced_schedules(
    ids: list[str], rate: float, batch_seconds: float, hold_seconds: float
) -> list[Schedule]:
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
    schedule = [
        (j * batch_seconds, changes[round(j * per_batch) : round((j + 1) * per_batch)])
        for j in range(math.ceil(len(changes) / per_batch))
    ]
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
            reply = await stubs[i % CHANNELS].SubmitOrder(
                order_service_pb2.SubmitOrderRequest(
                    input_token="SOL", output_token="USDC", amount="0.01"
                ),
                timeout=30,
            )
            ids[i] = reply.order.order_id

    await asyncio.gather(*(submitter() for _ in range(min(concurrency, count))))
    return ids


async def _warm(stubs: list[Any], order_id: str) -> None:
    """Ends one stream on each connection. gRPC core sizes a new call's
    memory by the calls that ended before it on the same connection; a
    connection whose calls were all unary would give every stream ~3 KiB it
    then grows into. A server in service has seen streams end: one on each
    connection, as here, is enough."""
    for stub in stubs:
        warm = stub.WatchOrder(order_service_pb2.WatchOrderRequest(order_id=order_id), timeout=30)
        await warm.read()
        warm.cancel()
    await asyncio.sleep(0.5)


class Opened(NamedTuple):
    tasks: list[asyncio.Task[None]]
    seconds: float
    kib_per_stream: float


async def open_streams(
    stubs: list[Any],
    order_ids: list[str],
    streams: int,
    server_pid: int,
    on_event: Callable[[order_pb2.OrderEvent], bool],
) -> Opened | str:
    """Warms each connection (``_warm``), then opens ``streams`` WatchOrder
    streams (stream i on ``order_ids[i mod len]``, over the connections in
    turn), each with an API key (the channel's) and a request id of its own,
    as the gateway's calls carry; and the server's RSS growth per stream
    once every one has its first event (steady then: it holds idle streams;
    on a server that held streams before, it reuses their memory). Each later
    event goes to ``on_event``, which says whether it ends the stream. An
    error says why not every stream opened within 120 s."""
    await _warm(stubs, order_ids[0])
    rss_before = _rss_kib(server_pid)
    ready = 0
    all_ready = asyncio.Event()
    failed: Counter[str] = Counter()

    async def stream(i: int) -> None:
        nonlocal ready
        request_ids.REQUEST_ID.set(request_ids.new())  # this task's own
        call = stubs[i % len(stubs)].WatchOrder(
            order_service_pb2.WatchOrderRequest(order_id=order_ids[i % len(order_ids)]),
            timeout=600,
        )
        try:
            async for event in call:
                if event.sequence == 1:
                    ready += 1
                    if ready == streams:
                        all_ready.set()
                    continue
                if on_event(event):
                    return
        except grpc.aio.AioRpcError as exc:
            failed[f"{exc.code().name}: {exc.details()}"] += 1
            raise

    tasks = [asyncio.ensure_future(stream(i)) for i in range(streams)]
    opened = time.perf_counter()
    try:
        await asyncio.wait_for(all_ready.wait(), 120)
    except TimeoutError:
        await _cancel(tasks)
        ended = "; ".join(f"{n} ended {why}" for why, n in failed.most_common(3))
        return f"only {ready} of {streams} streams had their history within 120 s" + (
            f" ({ended})" if ended else ""
        )
    seconds = time.perf_counter() - opened
    return Opened(tasks, seconds, (_rss_kib(server_pid) - rss_before) / streams)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def idle(address: str, streams: int, server_pid: int) -> dict[str, Any]:
    """The idle-stream memory alone, as ``watch`` measures it (the same
    connections, warm-up and metadata), on any server of WatchOrder: the
    bare grpc.aio one (bare_watch) for the engine's to be read against."""
    channels = [orders_channel(address) for _ in range(CHANNELS)]
    stubs = [order_service_pb2_grpc.OrderServiceStub(c) for c in channels]
    opened = await open_streams(stubs, ["idle"], streams, server_pid, lambda event: False)
    if isinstance(opened, str):
        return {"error": opened}
    await _cancel(opened.tasks)
    for channel in channels:
        await channel.close(None)
    return {
        "streams": streams,
        "open_seconds": opened.seconds,
        "kib_per_stream": opened.kib_per_stream,
    }


async def watch(
    address: str,
    streams: int,
    orders: int,
    server_pid: int,
    rate: float,
    batch_seconds: float,
    hold_seconds: float,
) -> dict[str, Any]:
    """Opens ``streams`` WatchOrder streams over ``orders`` PENDING orders
    (``open_streams``: stream i on order i mod ``orders``), then moves every
    order to ROUTING and on to FAILED -- all at once (``rate`` 0:
    ``burst_schedules``) or at a steady ``rate`` (``paced_schedules``) -- and
    times each event from its commit (event_time) to its arrival at the
    client; and the server's RSS growth per stream while they are idle."""
    settings = Settings()
    store = OrderStore(create_database_engine(settings.database_url))
    from redis import Redis

    redis = Redis.from_url(settings.redis_url)
    channels = [orders_channel(address) for _ in range(CHANNELS)]
    stubs = [order_service_pb2_grpc.OrderServiceStub(c) for c in channels]
    began = time.perf_counter()
    ids = await _submit_orders(stubs, orders)
    submit_seconds = time.perf_counter() - began
    latencies: list[float] = []

    def delivered(event: order_pb2.OrderEvent) -> bool:
        latencies.append(time.time() - event.event_time.ToMicroseconds() / 1e6)
        return Status.from_proto(event.status).terminal

    opened = await open_streams(stubs, ids, streams, server_pid, delivered)
    if isinstance(opened, str):
        return {"error": opened}
    tasks = opened.tasks

    async def caught_up(deliveries: int) -> None:
        while len(latencies) < deliveries:
            await asyncio.sleep(0.005)

    replayed: list[Replayed] = []
    for schedule in (
        paced_schedules(ids, rate, batch_seconds, hold_seconds)
        if rate > 0
        else burst_schedules(ids)
    ):
        if replayed:  # every stream has every event so far
            await asyncio.wait_for(
                caught_up(sum(r.events for r in replayed) * streams // orders), 120
            )
        replayed.append(await asyncio.to_thread(_replay, store, redis, schedule))
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    events, seconds = sum(r.events for r in replayed), sum(r.seconds for r in replayed)
    for channel in channels:
        await channel.close(None)
    return {
        "streams": streams,
        "orders": orders,
        "submit_seconds": submit_seconds,
        "open_seconds": opened.seconds,
        "kib_per_stream": opened.kib_per_stream,
        "events": events,
        "events_per_second": events / seconds if seconds else 0.0,
        "late_ms": max(r.late for r in replayed) * 1000,
        "deliveries": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }
