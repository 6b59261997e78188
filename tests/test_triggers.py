"""The trigger part: limit and stop orders fire when the pair's price meets
them, once, best price first; expire once; a cancel or an expiry racing the
trigger wins or loses cleanly; a flushed index is rebuilt from the database;
a limit order that misses its minimum waits again.

Prices are set by hand on the Raydium SOL/USDC pool, above every other path
(about 140 USDC a SOL), so the pair's price is exactly the one set."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from redis import Redis

from executor.driver.context import Context
from executor.driver.jobs import _drive
from executor.driver.progress import attempt_failed
from executor.triggers.engine import Triggers
from executor.triggers.index import TriggerIndex
from orderengine.market.cpmm import Reserves
from orderengine.market.pools import all_pools
from orderengine.market.state import POOL_CHANGES, encode, pool_key
from orderengine.order_queue import AT_ONCE, QUEUED
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Services
from tests.helpers import Submit, history, on_trigger_part

SOL, USDC = 10**9, 10**6
PAIR = ("SOL", "USDC")


def set_price(redis: Redis, usdc_per_sol: int) -> None:
    """1,000 SOL against usdc_per_sol thousand USDC on Raydium, and the
    change announced as the chain announces its own."""
    pool = all_pools()["raydium-sol-usdc"]
    state = Reserves(1_000 * SOL, usdc_per_sol * 1_000 * USDC)
    redis.hset(pool_key(pool.id), mapping=encode(pool, state))  # type: ignore[arg-type]
    redis.xadd(POOL_CHANGES, {"pools": pool.id})


def submit(services: Services, amount: str = "1", **fields: Any) -> order_pb2.Order:
    request = Submit(input_token="SOL", output_token="USDC", amount=amount, **fields)
    return services.orders().SubmitOrder(request, timeout=10).order


def stop(services: Services, price: str, **fields: Any) -> order_pb2.Order:
    return submit(services, stop=order_pb2.StopOrder(trigger_price=price), **fields)


def limit(services: Services, minimum: str, amount: str = "1") -> order_pb2.Order:
    return submit(services, amount, limit=order_pb2.LimitOrder(min_amount_out=minimum))


async def built_and_checked(triggers: Triggers) -> int:
    triggers.build()
    return await triggers.check({PAIR})


def test_a_stop_fires_at_exactly_its_trigger_and_not_above(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    at = stop(services, "180")
    below = stop(services, "179.999")
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 0
    set_price(redis, 180)
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 1
    assert history(ctx, at.order_id) == [("OPEN", ""), ("ROUTING", Reason.TRIGGERED)]
    assert history(ctx, below.order_id) == [("OPEN", "")]
    # Fired means queued, on the market orders' path.
    assert redis.hget(QUEUED, at.order_id) is not None
    assert "180" in ctx.store.events(at.order_id)[-1].reason


def test_firing_is_counted_and_its_lag_observed(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    def fired() -> float:
        return REGISTRY.get_sample_value("orderengine_triggers_total", {"type": "stop"}) or 0.0

    def lags() -> float:
        return REGISTRY.get_sample_value("orderengine_trigger_lag_seconds_count") or 0.0

    set_price(redis, 200)
    stop(services, "190")
    stop(services, "190")
    before = (fired(), lags())

    async def act(triggers: Triggers) -> int:
        await triggers.start()
        set_price(redis, 180)
        return (await triggers.step(10)).fired

    assert on_trigger_part(ctx, redis_url, act) == 2
    # Both fired by the pool change the stream announced: both lags observed.
    assert (fired(), lags()) == (before[0] + 2, before[1] + 2)


def test_a_limit_fires_only_when_a_quote_gives_its_minimum(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    # A mid price of 200 meets both; 1 SOL on Raydium gives about 199.3
    # (0.25% fee, and its own impact): enough for 199, not for 199.9.
    enough = limit(services, "199")
    short = limit(services, "199.9")
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 1
    assert history(ctx, enough.order_id)[-1] == ("ROUTING", Reason.TRIGGERED)
    assert history(ctx, short.order_id) == [("OPEN", "")]


def test_orders_crossed_by_one_move_fire_best_price_then_oldest_first(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    orders = [stop(services, p) for p in ("170", "190", "170", "180")]
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 0
    set_price(redis, 160)
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 4
    # The stop that the falling price met first, then those at 180, then the
    # two at 170 in the order they were submitted.
    (job,) = ctx.queue.get_jobs()
    assert job.args[0] == [orders[i].order_id for i in (1, 3, 0, 2)]


def test_two_trigger_parts_fire_an_order_once(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    ids = [stop(services, "190").order_id for _ in range(20)]

    async def both(triggers: Triggers) -> list[int]:
        other = Triggers(ctx, triggers.market)
        triggers.build()
        set_price(redis, 150)
        return list(await asyncio.gather(triggers.check({PAIR}), other.check({PAIR})))

    fired: list[int] = on_trigger_part(ctx, redis_url, both)
    assert sum(fired) == 20
    for order_id in ids:
        assert [s for s, _ in history(ctx, order_id)] == ["OPEN", "ROUTING"]


def test_an_order_expires_once_and_a_fired_one_not_at_all(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    soon = Timestamp()
    soon.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))
    waiting = stop(services, "100", expire_time=soon)
    fired = stop(services, "190", expire_time=soon)

    async def act(triggers: Triggers) -> tuple[int, int, int, int]:
        triggers.build()
        early = triggers.expire()
        set_price(redis, 185)
        crossed = await triggers.check({PAIR})
        later = time.time() + 5
        return early, crossed, triggers.expire(later), triggers.expire(later)

    assert on_trigger_part(ctx, redis_url, act) == (0, 1, 1, 0)
    assert history(ctx, waiting.order_id) == [("OPEN", ""), ("EXPIRED", Reason.EXPIRED)]
    assert [s for s, _ in history(ctx, fired.order_id)] == ["OPEN", "ROUTING"]


def test_a_cancelled_order_never_fires(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    order = stop(services, "190")

    async def act(triggers: Triggers) -> int:
        triggers.build()
        services.orders().CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order.order_id), timeout=10
        )
        set_price(redis, 150)
        return await triggers.check({PAIR})

    assert on_trigger_part(ctx, redis_url, act) == 0
    assert [s for s, _ in history(ctx, order.order_id)] == ["OPEN", "CANCELLED"]
    assert TriggerIndex(ctx.redis).waiting() == {"limit": 0, "stop": 0, "twap": 0, "sniper": 0}


def test_a_flushed_index_is_rebuilt_and_what_was_crossed_meanwhile_fires(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    crossed = stop(services, "190")
    waiting = stop(services, "120")
    on_trigger_part(ctx, redis_url, lambda triggers: triggers.build())
    # Redis forgets everything (the pools start again from pools.toml at
    # about 140 USDC a SOL): the trigger part sees its marker gone.
    redis.flushdb()

    async def act(triggers: Triggers) -> int:
        return await triggers.start() + (await triggers.step(10)).fired

    assert on_trigger_part(ctx, redis_url, act) == 1
    assert [s for s, _ in history(ctx, crossed.order_id)] == ["OPEN", "ROUTING"]
    assert history(ctx, waiting.order_id) == [("OPEN", "")]
    assert TriggerIndex(ctx.redis).waiting()["stop"] == 1


def test_a_new_order_is_indexed_and_a_pool_change_fires_it(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)

    async def act(triggers: Triggers) -> tuple[int, int]:
        await triggers.start()
        stop(services, "190")
        before = (await triggers.step(10)).fired
        set_price(redis, 189)
        return before, (await triggers.step(10)).fired

    assert on_trigger_part(ctx, redis_url, act) == (0, 1)
    # Its job asks to be driven at once, not after a worker's linger.
    assert [job.meta.get(AT_ONCE) for job in ctx.queue.get_jobs()] == [True]


def test_a_limit_whose_route_misses_its_minimum_waits_again_on_a_new_attempt(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    order = limit(services, "190")
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 1
    set_price(redis, 170)  # the price moved back before a worker routed it
    _drive(ctx, [order.order_id])
    row = ctx.store.get(order.order_id)
    assert row is not None and row.status == Status.OPEN and row.attempt == 2
    assert history(ctx, order.order_id)[-1] == ("OPEN", Reason.LIMIT_NOT_MET)
    # Indexed again, it fires when the price comes back.
    set_price(redis, 200)

    async def act(triggers: Triggers) -> int:
        return await triggers.start() + (await triggers.step(10)).fired

    assert on_trigger_part(ctx, redis_url, act) == 1


def test_a_limit_whose_landing_misses_its_minimum_waits_again(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    # 1 SOL gives about 199.30 USDC: slippage's 50 bps would let it land at
    # 198.30, the limit asks 199.
    order = limit(services, "199")
    assert on_trigger_part(ctx, redis_url, built_and_checked) == 1
    _drive(ctx, [order.order_id])
    row = ctx.store.get(order.order_id)
    assert row is not None and row.status == Status.SUBMITTED
    # The route's floor is the limit's minimum, not slippage's lower one.
    assert row.route is not None and row.route.min_amount_out == "199"
    attempt_failed(ctx, row, Reason.SLIPPAGE_EXCEEDED, "slippage exceeded")
    after = ctx.store.get(order.order_id)
    assert after is not None and after.status == Status.OPEN and after.attempt == 2


def test_the_reconcilers_sweep_indexes_again_an_order_the_index_lost(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    order = stop(services, "190")

    def act(triggers: Triggers) -> tuple[int, int]:
        triggers.build()
        # Drift: the index lost the order, the database still has it OPEN.
        redis.zrem("triggers:below:SOL:USDC", order.order_id)
        triggers.sweep_at = 0.0
        return triggers.sweep_page(), TriggerIndex(ctx.redis).waiting()["stop"]

    assert on_trigger_part(ctx, redis_url, act) == (1, 1)


def test_an_order_crossed_after_its_time_passed_expires_and_never_fires(
    services: Services, ctx: Context, redis: Redis, redis_url: str
) -> None:
    set_price(redis, 200)
    soon = Timestamp()
    soon.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))
    order = stop(services, "190", expire_time=soon)
    # The trigger part is down while its time passes and the price crosses it.
    time.sleep(1.1)
    set_price(redis, 150)

    async def act(triggers: Triggers) -> int:
        return await triggers.start()

    assert on_trigger_part(ctx, redis_url, act) == 0
    assert history(ctx, order.order_id) == [("OPEN", ""), ("EXPIRED", Reason.EXPIRED)]
