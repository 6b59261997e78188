"""The waiting orders' rows: what the trigger part costs and how fast it
acts, measured on make run's stack from outside its processes. Long because
each of its four rows needs its own set-up of waiting orders.

Waiting orders are written straight into the database, as OrderService
would store them (OPEN): the rows measure the trigger part, not the accept
path, and 100,000 orders through SubmitOrder would take minutes here. The
trigger part finds them as it finds any order that became OPEN.

- memory per waiting order: Redis's used_memory and the trigger part's RSS,
  before and after it indexed them;
- a price move that crosses none: the trigger part's CPU per pool change,
  less its idle CPU over the same time, at each count of waiting orders;
- a move that crosses 1,000 limit orders: from the pool change to each one's
  ROUTING event (p99), and to the last one CONFIRMED (orders/s), beside the
  same burst of market orders queued at once on the same stack;
- 10,000 orders expiring in the same second: from that second to the last
  EXPIRED event, and how many expired more or less than once."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import func, select

from orderengine.local import metrics_targets
from orderengine.local.bench import cpu
from orderengine.local.bench.report import Report, Target, progress
from orderengine.local.bench.running import Backing, started_stack
from orderengine.local.bench.stats import Figure, percentile
from orderengine.local.stack import LOCAL_OWNER, Stack
from orderengine.market.cpmm import Reserves
from orderengine.market.routes import Leg
from orderengine.market.state import land_route, read_reserves
from orderengine.observability import metrics_scrape
from orderengine.order_queue import enqueue_orders, order_queue
from orderengine.order_types import MARKET, OrderTerms, OrderType
from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.store.changes import NewOrder
from orderengine.store.models import EventRow, OrderRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2

POOL = "raydium-sol-usdc"
SOL, USDC = 10**9, 10**6
# Each waiting order sells 0.01 SOL.
AMOUNT = SOL // 100
# Orders written to the database per transaction.
WRITE_BATCH = 5_000
# Pool changes a no-crossing figure is taken over.
MOVES = 200
MOVES_PER_SECOND = 100.0


def triggers_section(report: Report, backing: Backing, workdir: Path, quick: bool) -> None:
    counts = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    crossing = 200 if quick else 1_000
    expiring = 1_000 if quick else 10_000
    with started_stack(backing, workdir, workers=2, TRIGGER_POLL_SECONDS="0.05") as (_, running):
        store = OrderStore(backing.engine)
        redis = Redis.from_url(backing.redis_url)
        pid = _pid(running, "triggers")
        metrics_url = _metrics_url(workdir, "triggers")
        try:
            _waiting_rows(report, store, redis, backing.redis_url, pid, metrics_url, counts)
            _crossing_rows(report, store, redis, backing.redis_url, metrics_url, crossing)
            _expiry_rows(report, store, metrics_url, expiring)
        finally:
            redis.close()


def _waiting_rows(
    report: Report,
    store: OrderStore,
    redis: Redis,
    redis_url: str,
    pid: int,
    metrics_url: str,
    counts: list[int],
) -> None:
    # Far above the market (about 140 USDC a SOL): no move here crosses them.
    written = 0
    redis_before, rss_before = _used_memory(redis), _rss(pid)
    for count in counts:
        progress(f"triggers: {count:,} waiting orders")
        _write(store, count - written, _limit(1_000))
        written = count
        _wait_indexed(metrics_url, "limit", count)
        # Past the trigger part's look-back at newly OPEN orders.
        time.sleep(2.5)
        idle = _cpu_over(pid, MOVES / MOVES_PER_SECOND)
        busy = _cpu_over(pid, MOVES / MOVES_PER_SECOND, lambda: _small_moves(redis_url))
        report.figure(
            "triggers",
            f"price move crossing none, {count:,} waiting",
            [max(busy - idle, 0.0) / MOVES * 1000],
            "ms CPU/move",
        )
    report.figure(
        "triggers",
        f"memory per waiting order, Redis ({written:,} waiting)",
        [(_used_memory(redis) - redis_before) / written],
        "bytes",
    )
    report.figure(
        "triggers",
        f"memory per waiting order, trigger part ({written:,} waiting)",
        [max(_rss(pid) - rss_before, 0) / written],
        "bytes",
    )
    ratio = _ratio(report, counts)
    if ratio is not None:
        report.figure(
            "triggers",
            f"  move cost at {counts[-1]:,} / at {counts[0]:,} waiting",
            [ratio],
            "x",
            target=Target(False, 1.5),
        )


def _ratio(report: Report, counts: list[int]) -> float | None:
    rows = {
        r.name: r.figure.median
        for r in report.rows
        if r.section == "triggers" and r.name.startswith("price move")
    }
    first = rows.get(f"price move crossing none, {counts[0]:,} waiting")
    last = rows.get(f"price move crossing none, {counts[-1]:,} waiting")
    return last / first if first and last is not None else None


def _crossing_rows(
    report: Report,
    store: OrderStore,
    redis: Redis,
    redis_url: str,
    metrics_url: str,
    crossing: int,
) -> None:
    progress(f"triggers: a move crossing {crossing:,} limit orders")
    ids = _write(store, crossing, _limit(145))
    _wait_indexed(metrics_url, "limit", crossing, at_least=True)
    time.sleep(2.5)
    moved_at = time.time()
    asyncio.run(_push_price(redis_url, 155))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _count(store, ids, Status.CONFIRMED) < len(ids):
        time.sleep(0.1)
    routing = _event_times(store, ids, Status.ROUTING)
    confirmed = _event_times(store, ids, Status.CONFIRMED)
    lags = [(t - moved_at) * 1000 for t in routing]
    report.figure(
        "triggers",
        f"move crossing {crossing:,}: pool change -> ROUTING event p99",
        [percentile(lags, 99)] if lags else [],
        "ms",
        target=Target(False, 250),
    )
    # The same burst of market orders, queued at once on the same stack:
    # the rate the engine confirms such a burst at, for the row above.
    market = _write(store, crossing, MARKET)
    queued_at = time.time()
    enqueue_orders(order_queue(redis, Settings().queue_name), market)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _count(store, market, Status.CONFIRMED) < len(market):
        time.sleep(0.1)
    burst = _event_times(store, market, Status.CONFIRMED)
    ceiling = Figure.of([len(burst) / (max(burst) - queued_at)] if burst else [])
    report.figure(
        "triggers",
        f"move crossing {crossing:,}: all CONFIRMED ({len(confirmed):,})",
        [len(confirmed) / (max(confirmed) - moved_at)] if confirmed else [],
        "orders/s",
        ceiling=ceiling,
        ceiling_name=f"{crossing:,} market orders queued at once",
    )


def _expiry_rows(report: Report, store: OrderStore, metrics_url: str, count: int) -> None:
    progress(f"triggers: {count:,} orders expiring in the same second")
    now = datetime.now(UTC)
    # A whole second, far enough ahead for the writes and the index.
    second = now.replace(microsecond=0) + timedelta(seconds=15 if count > 1_000 else 6)
    ids = _write(store, count, OrderTerms(OrderType.STOP, trigger_price="1"), expire_at=second)
    _wait_indexed(metrics_url, "stop", count)
    while datetime.now(UTC) < second:
        time.sleep(0.01)
    # When every one is seen EXPIRED (committed), not its event's stamp.
    deadline = time.monotonic() + 30
    done_at: float | None = None
    while time.monotonic() < deadline:
        if _count(store, ids, Status.EXPIRED) == count:
            done_at = time.time()
            break
        time.sleep(0.02)
    report.figure(
        "triggers",
        f"{count:,} expiring in one second: second -> all seen EXPIRED",
        [done_at - second.timestamp()] if done_at is not None else [],
        "s",
        target=Target(False, 2.0),
    )
    with store.engine.connect() as connection:
        per_order = connection.execute(
            select(EventRow.order_id, func.count())
            .where(EventRow.status == Status.EXPIRED.value, EventRow.order_id.in_(ids[:30_000]))
            .group_by(EventRow.order_id)
        ).all()
    wrong = (count - len(per_order)) + sum(1 for _, n in per_order if n != 1)
    report.figure(
        "triggers",
        f"{count:,} expiring in one second: not expired exactly once",
        [float(wrong)],
        "orders",
        target=Target(False, 0),
    )


# -- helpers ---------------------------------------------------------------------


def _limit(usdc_per_sol: int) -> OrderTerms:
    return OrderTerms(OrderType.LIMIT, min_amount_out=AMOUNT * usdc_per_sol * USDC // SOL)


def _write(
    store: OrderStore, count: int, terms: OrderTerms, expire_at: datetime | None = None
) -> list[str]:
    """``count`` waiting orders, as OrderService stores them."""
    ids: list[str] = []
    for start in range(0, count, WRITE_BATCH):
        news = [
            NewOrder(
                owner=LOCAL_OWNER,
                input_token="SOL",
                output_token="USDC",
                amount_in=AMOUNT,
                slippage_bps=50,
                terms=replace(terms, expire_at=expire_at),
            )
            for _ in range(min(WRITE_BATCH, count - start))
        ]
        ids += [row.order_id for row, _ in store.submit_many(news)]
    return ids


def _wait_indexed(url: str, kind: str, count: int, at_least: bool = False) -> None:
    """Until the trigger part's index holds ``count`` orders of ``kind``."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        held = metrics_scrape.scrape([url]).get("orderengine_waiting_orders", type=kind)
        if held == count or (at_least and held >= count):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the trigger part never indexed {count} {kind} orders")


def _count(store: OrderStore, ids: list[str], status: Status) -> int:
    found = 0
    with store.engine.connect() as connection:
        for start in range(0, len(ids), 500):
            found += int(
                connection.execute(
                    select(func.count()).where(
                        OrderRow.order_id.in_(ids[start : start + 500]),
                        OrderRow.status == status.value,
                    )
                ).scalar_one()
            )
    return found


def _event_times(store: OrderStore, ids: list[str], status: Status) -> list[float]:
    """When each order's events of ``status`` happened (unix seconds)."""
    times: list[float] = []
    with store.engine.connect() as connection:
        for start in range(0, len(ids), 500):
            for (raw,) in connection.execute(
                select(EventRow.event_pb).where(
                    EventRow.order_id.in_(ids[start : start + 500]),
                    EventRow.status == status.value,
                )
            ):
                event = order_pb2.OrderEvent.FromString(raw or b"")
                times.append(event.event_time.ToDatetime(tzinfo=UTC).timestamp())
    return times


def _pid(running: Stack, name: str) -> int:
    for part in running.parts:
        if part.name == name and part.process is not None:
            return part.process.pid
    raise LookupError(f"no {name} part in the stack")


def _metrics_url(workdir: Path, name: str) -> str:
    for target in metrics_targets.read_targets(workdir / "stack" / metrics_targets.TARGETS_FILE):
        if target.part == name:
            return target.url
    raise LookupError(f"the {name} part serves no /metrics")


def _used_memory(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_over(pid: int, seconds: float, work: Callable[[], None] | None = None) -> float:
    """The process's CPU seconds over ``seconds`` (doing ``work`` meanwhile)."""
    before = cpu.cpu_seconds(pid)
    started = time.monotonic()
    if work is not None:
        work()
    left = seconds - (time.monotonic() - started)
    if left > 0:
        time.sleep(left)
    return cpu.cpu_seconds(pid) - before


def _small_moves(redis_url: str) -> None:
    """MOVES small swaps on the pool, MOVES_PER_SECOND of them: each a pool
    change the trigger part reads and prices, crossing nothing."""

    async def go() -> None:
        client = AsyncRedis.from_url(redis_url)
        try:
            for i in range(MOVES):
                direction = ("SOL", "USDC") if i % 2 else ("USDC", "SOL")
                amount = SOL // 10 if direction[0] == "SOL" else 14 * USDC
                await land_route(
                    client, [Leg(POOL, *direction)], *direction, amount, now=int(time.time())
                )
                await asyncio.sleep(1 / MOVES_PER_SECOND)
        finally:
            await client.aclose()

    asyncio.run(go())


async def _push_price(redis_url: str, usdc_per_sol: int) -> None:
    """Buys SOL on Raydium until its price is about ``usdc_per_sol``: one pool change."""
    client = AsyncRedis.from_url(redis_url)
    try:
        state = (await read_reserves(client, [POOL]))[POOL]
        assert isinstance(state, Reserves)
        target = math.isqrt(state.a * state.b * usdc_per_sol // 1000)
        amount = max((target - state.b) * 10_000 // 9_975, 1)
        await land_route(
            client, [Leg(POOL, "USDC", "SOL")], "USDC", "SOL", amount, int(time.time())
        )
    finally:
        await client.aclose()
