"""Failed attempts retried with back-off, and stuck orders reconciled, on real parts."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import cast

import base58
import pytest
from redis import Redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from sqlalchemy import update

from executor.driver.context import Context
from executor.driver.inflight import Inflight, claim_due
from executor.driver.progress import attempt_failed
from executor.driver.reconciler import Reconciled, reconcile_once
from executor.driver.retries import RETRYABLE, RetryPolicy
from orderengine.local.embedded_redis import EmbeddedRedis
from orderengine.order_queue import order_queue
from orderengine.reasons import Reason
from orderengine.settings import Settings
from orderengine.statuses import Status
from orderengine.store.changes import Change, NewOrder
from orderengine.store.models import OrderRow, StoredOrder
from orderengine.store.orders import OrderStore
from orderengine.v1 import execution_service_pb2, market_pb2, order_pb2, order_service_pb2
from tests.conftest import OWNER, Processes, Services
from tests.helpers import ATTEMPT, eventually, statuses, watch_all, worker_context

SOL = 10**9
SLIPPAGE = "slippage exceeded: the route gives 1380 USDC at landing, below the minimum 1387.4"
FIRST_TRY = ["PENDING", *ATTEMPT]


# -- RetryPolicy ----------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_an_exponential_ceiling_with_a_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=0.5, factor=2.0, cap_seconds=3.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        rng = random.Random(attempt)
        waits = [policy.backoff_seconds(attempt, rng) for _ in range(500)]
        assert all(0 <= w <= ceiling for w in waits), attempt
        # Full jitter: the waits spread over the whole range, not around one value.
        assert min(waits) < ceiling * 0.1 and max(waits) > ceiling * 0.9, attempt


def test_backoff_from_the_same_seed_is_the_same() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=0.5, factor=2.0, cap_seconds=8.0)
    first = [policy.backoff_seconds(2, random.Random(7)) for _ in range(3)]
    again = [policy.backoff_seconds(2, random.Random(7)) for _ in range(3)]
    assert first == again


def test_only_retryable_codes_are_retried_and_only_below_the_limit() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=0.5, factor=2.0, cap_seconds=8.0)
    assert {
        "SLIPPAGE_EXCEEDED",
        "BLOCKHASH_EXPIRED",
        "TRANSACTION_DROPPED",
        "RPC_TIMEOUT",
        "POOL_OUT_OF_LIQUIDITY",
    } == RETRYABLE
    for code in RETRYABLE:
        assert [policy.should_retry(code, a) for a in (1, 2, 3, 4)] == [True, True, False, False]
    for code in (Reason.ROUTE_INVALID, Reason.NO_ROUTE, Reason.SWAP_REJECTED):
        assert not policy.should_retry(code, 1), code
    # A bare string is refused, even one spelt right: a typo cannot quietly never retry.
    for text in ("SLIPPAGE_EXCEEDED", "", "slippage_exceeded", "ROUTE_INVALID"):
        with pytest.raises(TypeError, match="Reason"):
            policy.should_retry(text, 1)  # type: ignore[arg-type]


# -- attempt_failed, with a real Context ---------------------------------------------------


@pytest.fixture
def ctx(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """What a worker or tracker holds, built from the test's environment."""
    monkeypatch.setenv("MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RECONCILE_AFTER_SECONDS", "1")
    with worker_context() as built:
        yield built


def new_order(store: OrderStore) -> str:
    row, _ = store.submit(
        NewOrder(
            owner=OWNER, input_token="SOL", output_token="USDC", amount_in=10 * SOL, slippage_bps=50
        )
    )
    return row.order_id


def to_submitted(store: OrderStore, order_id: str, attempt: int) -> StoredOrder:
    """Moves the order on ``attempt`` to SUBMITTED, as a worker would."""
    route = market_pb2.Route(
        input_token="SOL",
        output_token="USDC",
        amount_in="10",
        amount_out="1394.4",
        min_amount_out="1387.4",
        legs=[
            market_pb2.RouteLeg(
                pool_id="raydium-sol-usdc",
                input_token="SOL",
                output_token="USDC",
                amount_in="10",
                amount_out="1394.4",
                share_bps=10_000,
            )
        ],
    )
    signature = base58.b58encode(os.urandom(64)).decode()
    steps = [(Status.ROUTED, Change(route=route)), (Status.SUBMITTED, Change(signature=signature))]
    row = store.get(order_id)
    assert row is not None
    if row.status == Status.PENDING:
        steps.insert(0, (Status.ROUTING, Change()))
    for target, change in steps:
        moved = store.transition(order_id, target, change, attempt=attempt)
        assert moved is not None, f"{order_id} refused {target}"
    row = store.get(order_id)
    assert row is not None and row.status == Status.SUBMITTED and row.attempt == attempt
    return row


def queued_jobs(ctx: Context) -> list[Job]:
    """Jobs waiting on the order queue, now or after a back-off."""
    ids = ScheduledJobRegistry(queue=ctx.queue).get_job_ids() + ctx.queue.get_job_ids()
    return Job.fetch_many(ids, connection=ctx.redis)  # type: ignore[return-value]


def drives(jobs: list[Job]) -> list[tuple[str | None, tuple[object, ...]]]:
    return [(job.func_name, tuple(job.args)) for job in jobs]


def test_a_retryable_failure_goes_back_to_routing_on_the_next_attempt_with_a_retry_queued(
    ctx: Context, store: OrderStore
) -> None:
    order_id = new_order(store)
    row = to_submitted(store, order_id, attempt=1)

    attempt_failed(ctx, row, Reason.SLIPPAGE_EXCEEDED, SLIPPAGE)

    now = store.get(order_id)
    assert now is not None
    assert (now.status, now.attempt, now.last_sequence) == (Status.ROUTING, 2, 5)
    assert now.route is None and now.signature is None and now.failure_reason is None
    events = store.events(order_id)
    assert statuses(events) == [*FIRST_TRY, "ROUTING"]
    retry = events[-1]
    assert (retry.sequence, retry.attempt) == (5, 2)
    assert (retry.reason_code, retry.reason) == ("SLIPPAGE_EXCEEDED", SLIPPAGE)
    assert drives(queued_jobs(ctx)) == [("executor.driver.jobs.drive_orders", ([order_id],))]

    # The same failure reported again (a second tracker, a late round) changes nothing.
    attempt_failed(ctx, row, Reason.SLIPPAGE_EXCEEDED, SLIPPAGE)
    again = store.get(order_id)
    assert again is not None and (again.attempt, again.last_sequence) == (2, 5)
    assert len(queued_jobs(ctx)) == 1


def test_the_last_attempt_failing_fails_the_order_saying_it_gave_up(
    ctx: Context, store: OrderStore
) -> None:
    order_id = new_order(store)
    for attempt in (1, 2, 3):
        attempt_failed(
            ctx, to_submitted(store, order_id, attempt), Reason.SLIPPAGE_EXCEEDED, SLIPPAGE
        )

    row = store.get(order_id)
    assert row is not None
    assert (row.status, row.attempt) == (Status.FAILED, 3)
    assert row.failure_reason == f"{SLIPPAGE} (gave up after 3 attempts)"
    events = store.events(order_id)
    assert statuses(events) == [*FIRST_TRY, *ATTEMPT, *ATTEMPT, "FAILED"]
    assert [e.sequence for e in events] == list(range(1, 12))
    assert [e.attempt for e in events if e.status == order_pb2.ORDER_STATUS_ROUTING] == [1, 2, 3]
    assert (events[-1].reason_code, events[-1].attempt) == ("SLIPPAGE_EXCEEDED", 3)
    assert len(queued_jobs(ctx)) == 2  # a retry after attempts 1 and 2, none after 3


def test_a_failure_no_retry_can_get_past_fails_the_order_at_once(
    ctx: Context, store: OrderStore
) -> None:
    order_id = new_order(store)
    reason = "legs[0]: pool 'raydium-sol-usdc' does not trade SOL/USDT"
    attempt_failed(ctx, to_submitted(store, order_id, 1), Reason.ROUTE_INVALID, reason)

    row = store.get(order_id)
    assert row is not None
    assert (row.status, row.attempt, row.failure_reason) == (Status.FAILED, 1, reason)
    last = store.events(order_id)[-1]
    assert (last.sequence, last.reason_code, last.reason) == (5, "ROUTE_INVALID", reason)
    assert queued_jobs(ctx) == []


# -- The reconciler ---------------------------------------------------------------------------


def age(store: OrderStore, order_id: str, seconds: float = 3600) -> None:
    """Makes the order look untouched for ``seconds``."""
    with store.engine.begin() as connection:
        connection.execute(
            update(OrderRow)
            .where(OrderRow.order_id == order_id)
            .values(updated_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def test_the_reconciler_drives_again_only_what_is_stuck(ctx: Context, store: OrderStore) -> None:
    stuck = new_order(store)
    age(store, stuck)
    fresh = new_order(store)
    cancelled = new_order(store)
    assert store.transition(cancelled, Status.CANCELLED) is not None
    age(store, cancelled)
    in_flight = to_submitted(store, new_order(store), attempt=1)
    age(store, in_flight.order_id)

    assert reconcile_once(ctx) == Reconciled(queued=1, tracked=1)

    # A stuck order is queued again; a stuck swap goes back to the tracker.
    assert drives(queued_jobs(ctx)) == [("executor.driver.jobs.drive_orders", ([stuck],))]
    assert in_flight.signature is not None
    assert claim_due(ctx.redis, 10, 100) == [Inflight(in_flight.order_id, 1, in_flight.signature)]
    rows = [store.get(i) for i in (stuck, fresh, cancelled)]
    assert [r.status if r else None for r in rows] == ["PENDING", "PENDING", "CANCELLED"]
    # Its job now waits in the queue, and the swap is tracked: nothing twice.
    assert reconcile_once(ctx) == Reconciled(queued=0, tracked=0)


def test_the_reconciler_leaves_alone_what_a_worker_is_driving(
    ctx: Context, store: OrderStore
) -> None:
    from executor.driver.leases import order_leases

    stuck = new_order(store)
    age(store, stuck)
    with order_leases(ctx.redis, [stuck], 10) as mine:
        assert mine == [stuck]
        assert reconcile_once(ctx) == Reconciled(queued=0, tracked=0)
        with order_leases(ctx.redis, [stuck], 10) as second:
            assert second == []  # one driver at a time
    assert reconcile_once(ctx) == Reconciled(queued=1, tracked=0)


def test_the_reconciler_queues_again_a_job_lost_with_redis(ctx: Context, store: OrderStore) -> None:
    stuck = new_order(store)
    age(store, stuck)
    assert reconcile_once(ctx).queued == 1
    ctx.redis.flushdb()  # the queue and its markers are gone
    assert reconcile_once(ctx).queued == 1
    assert drives(queued_jobs(ctx)) == [("executor.driver.jobs.drive_orders", ([stuck],))]


def test_the_reconciler_queues_a_retry_no_scheduler_moved_in_time(
    ctx: Context, store: OrderStore
) -> None:
    """A retry waits out its back-off in RQ's scheduled registry; if the
    worker holding the scheduler's lock was killed, nobody moves it for a
    minute or more. The reconciler does, once it is a few seconds overdue."""
    from executor.driver.reconciler import OVERDUE_SECONDS
    from orderengine.order_queue import enqueue_order

    due_now, due_later = new_order(store), new_order(store)
    enqueue_order(ctx.queue, due_now, delay_seconds=0.01)
    enqueue_order(ctx.queue, due_later, delay_seconds=60)
    scheduled = ScheduledJobRegistry(queue=ctx.queue)
    assert reconcile_once(ctx).overdue == 0  # not overdue yet: the scheduler's to move
    assert ctx.queue.get_job_ids() == []
    time.sleep(OVERDUE_SECONDS + 1.1)  # the registry counts in whole seconds

    assert reconcile_once(ctx).overdue == 1
    assert drives(ctx.queue.get_jobs()) == [("executor.driver.jobs.drive_orders", ([due_now],))]
    assert len(scheduled.get_job_ids()) == 1  # the later one still waits its turn
    assert reconcile_once(ctx).overdue == 0


def test_a_stopped_worker_ends_its_scheduler_at_once_and_frees_its_lock(
    processes: Processes, ctx: Context, redis: Redis
) -> None:
    """SIGTERM to an idle worker ends it and the RQ scheduler it forked
    without waiting out the scheduler's 1-second sleep, and leaves the
    scheduler's lock free for the next worker (not a minute later, when it
    would expire)."""
    worker = processes.worker()
    lock = RQScheduler.get_locking_key(ctx.queue.name)
    name = cast(bytes, eventually(lambda: redis.get(lock)))
    record = SCHEDULER_KEY_TEMPLATE % name.decode()
    beat = eventually(lambda: redis.hget(record, "last_heartbeat"))
    pid = int(redis.hget(record, "pid") or 0)
    # Just after a heartbeat: the scheduler has a whole sleep ahead of it.
    eventually(lambda: redis.hget(record, "last_heartbeat") != beat, every=0.005)

    started = time.monotonic()
    worker.terminate()
    assert worker.wait(10) == 0
    assert time.monotonic() - started < 0.9  # RQ's own stop: 1.3 s here
    assert redis.get(lock) is None
    assert not redis.exists(record)
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


def test_a_worker_stops_even_when_releasing_its_scheduler_lock_fails(
    processes: Processes, tmp_path: Path
) -> None:
    """A worker whose SIGTERM finds Redis refusing new connections (as when
    Redis stops with the whole stack) still stops: the failed release of
    its scheduler's lock is not taken for a lost connection by RQ's
    blocking read, which would retry it for ever."""
    own = EmbeddedRedis(tmp_path / "redis.db", persist=False)
    try:
        processes.env = {**processes.env, "REDIS_URL": own.url, "CHAIN_REDIS_URL": own.url}
        worker = processes.worker()
        client = Redis.from_url(own.url)
        eventually(lambda: client.get(RQScheduler.get_locking_key(Settings().queue_name)))
        time.sleep(0.5)  # idle in its blocking read
        # New connections now fail; the worker's open ones keep working.
        client.config_set("requirepass", "not-the-workers")
        worker.terminate()
        assert worker.wait(10) == 0
    finally:
        own.stop()


@pytest.fixture
def never_queued(
    env: dict[str, str], store: OrderStore, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A PENDING order stored but never queued (Redis lost it), untouched for an hour.
    Request before ``services`` so the engine starts with a 1 s reconcile deadline."""
    monkeypatch.setenv("RECONCILE_AFTER_SECONDS", "1")
    order_id = new_order(store)
    age(store, order_id)
    assert order_queue(redis, Settings().queue_name).count == 0
    return order_id


def landings(redis: Redis, order_id: str) -> int:
    return int(redis.hget("chain:landed-by-order", order_id) or 0)


def test_an_order_that_was_never_queued_is_reconciled_to_confirmed(
    never_queued: str, services: Services, engine: Processes, redis: Redis
) -> None:
    events = watch_all(services.orders(), never_queued)
    assert statuses(events) == [*FIRST_TRY, "CONFIRMED"]
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert landings(redis, never_queued) == 1


# -- End to end: the market moves, the order retries -----------------------------------------


@pytest.fixture
def half_second_slots(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A swap lands 0.5 s after it is sent (request before ``services``)."""
    monkeypatch.setenv("CHAIN_SLOT_SECONDS", "0.5")


async def trade_against(redis_url: str, leg: market_pb2.RouteLeg) -> None:
    """Other traders make the leg's trade, through the chain's own path, until
    its price is 3% worse."""
    from redis.asyncio import Redis as AsyncRedis

    from orderengine.market.pools import all_pools, balances, spot_price
    from orderengine.market.routes import Leg, RouteError
    from orderengine.market.state import land_route, read_reserves

    client = AsyncRedis.from_url(redis_url)
    pool = all_pools()[leg.pool_id]

    async def price() -> Fraction:
        return spot_price(pool, (await read_reserves(client, [pool.id]))[pool.id], leg.input_token)

    try:
        start = await price()
        state = (await read_reserves(client, [pool.id]))[pool.id]
        a, b = balances(pool, state)
        chunk = (a if leg.input_token == pool.token_a else b) // 50
        for _ in range(200):
            if await price() <= start * Fraction(97, 100):
                return
            try:
                await land_route(
                    client,
                    [Leg(pool.id, leg.input_token, leg.output_token)],
                    leg.input_token,
                    leg.output_token,
                    chunk,
                    int(time.time()),
                )
            except RouteError:
                chunk //= 2  # more than the liquidity left takes
        raise AssertionError(f"could not move {pool.id}")
    finally:
        await client.aclose()


def test_an_order_the_market_moved_against_retries_with_a_new_quote_and_lands_once(
    half_second_slots: None, services: Services, engine: Processes, redis: Redis
) -> None:
    orders = services.orders()
    order = orders.SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount="10"),
        timeout=10,
    ).order
    get = order_service_pb2.GetOrderRequest(order_id=order.order_id)

    def routed() -> order_pb2.Order | None:
        now = orders.GetOrder(get, timeout=10)
        return now if now.route.legs else None

    # The route is fixed; before its slot comes, other traders move its first
    # pool 3% against the order (the order allows 0.5%).
    first = eventually(routed, timeout=10, every=0.01)
    assert first.attempt == 1
    assert first.status in (order_pb2.ORDER_STATUS_ROUTED, order_pb2.ORDER_STATUS_SUBMITTED)
    asyncio.run(trade_against(Settings().chain_redis_url, first.route.legs[0]))

    events = watch_all(orders, order.order_id)
    assert statuses(events) == [*FIRST_TRY, "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]
    assert [e.sequence for e in events] == list(range(1, 9))
    assert [e.attempt for e in events] == [1, 1, 1, 1, 2, 2, 2, 2]
    retry = events[4]
    assert retry.reason_code == "SLIPPAGE_EXCEEDED" and "slippage" in retry.reason
    first_signature, second_signature = events[3].signature, events[6].signature
    assert second_signature != first_signature
    assert events[7].signature == second_signature
    assert events[7].amount_out == events[5].route.amount_out  # the new quote held

    chain = services.chain()
    failed, confirmed = chain.GetSignatureStatuses(
        execution_service_pb2.GetSignatureStatusesRequest(
            signatures=[first_signature, second_signature]
        ),
        timeout=10,
    ).statuses
    assert failed.error_code == "SLIPPAGE_EXCEEDED" and failed.amount_out == ""
    assert confirmed.error_code == "" and confirmed.amount_out == events[7].amount_out
    assert landings(redis, order.order_id) == 1

    final = orders.GetOrder(get, timeout=10)
    assert (final.status, final.attempt, final.last_sequence) == (
        order_pb2.ORDER_STATUS_CONFIRMED,
        2,
        8,
    )
    assert final.signature == second_signature
