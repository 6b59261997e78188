"""Waiting orders under fire, with real processes: the trigger part killed
while a price move crosses hundreds of limit orders, our Redis flushed while
orders wait, and every process restarted with orders waiting. Afterwards
every order whose price was met executed exactly once, every order whose
time passed is EXPIRED exactly once, and none was lost.

Prices move as the market moves them: a USDC -> SOL swap landed on Raydium's
SOL/USDC pool (through the chain's own landing, so the pools' ledger holds),
which lifts that pool above every other path and so sets the pair's price."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import select

from executor.chain.chain import LANDED_BY_ORDER
from orderengine.market.cpmm import Reserves
from orderengine.market.routes import Leg
from orderengine.market.state import land_route, read_reserves
from orderengine.mesh.auth import key_metadata, with_metadata
from orderengine.statuses import Status
from orderengine.store.models import EventRow, OrderRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.chaos.cluster import Cluster
from tests.helpers import conservation_errors

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

POOL = "raydium-sol-usdc"
# Each limit order sells 0.01 SOL; its minimum sets its price.
AMOUNT = "0.01"


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, store: OrderStore) -> Iterator[Cluster]:
    running = Cluster(
        tmp_path,
        database_url,
        workers=2,
        triggers=1,
        env={"MARKET_FLOW_RATE": "0", "TRIGGER_POLL_SECONDS": "0.05"},
    )
    yield running
    running.stop()


def stub(cluster: Cluster) -> order_service_pb2_grpc.OrderServiceStub:
    channel = grpc.insecure_channel(cluster.order_address)
    return order_service_pb2_grpc.OrderServiceStub(
        with_metadata(channel, key_metadata(cluster.api_key))
    )


def submit(cluster: Cluster, tag: str, count: int, **terms: object) -> list[str]:  # order ids
    """``count`` orders, each with its own client_order_id, sent again
    until acknowledged."""
    requests = [
        order_service_pb2.SubmitOrderRequest(
            input_token="SOL",
            output_token="USDC",
            amount=AMOUNT,
            client_order_id=f"{tag}-{i}",
            **terms,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]
    ids: list[str] = []
    orders = stub(cluster)
    for start in range(0, count, 256):
        batch = requests[start : start + 256]
        for _ in range(50):
            try:
                reply = orders.BatchSubmitOrders(
                    order_service_pb2.BatchSubmitOrdersRequest(requests=batch), timeout=30
                )
                break
            except grpc.RpcError:
                time.sleep(0.2)
        else:
            raise AssertionError("OrderService never took the orders")
        for result in reply.results:
            assert result.WhichOneof("result") == "response", result
            ids.append(result.response.order.order_id)
    return ids


def limit(price: int) -> dict[str, object]:
    """A limit order at ``price`` USDC a SOL."""
    return {"limit": order_pb2.LimitOrder(min_amount_out=str(Decimal(AMOUNT) * price))}


def push_price(chain_url: str, usdc_per_sol: int) -> None:
    """Buys SOL on Raydium until its price is about ``usdc_per_sol``."""

    async def land() -> None:
        client = AsyncRedis.from_url(chain_url)
        try:
            state = (await read_reserves(client, [POOL]))[POOL]
            assert isinstance(state, Reserves)
            # Constant product: the USDC held at the target price, whole
            # SOL priced in base units (1e6 / 1e9).
            target = math.isqrt(state.a * state.b * usdc_per_sol // 1000)
            amount = max((target - state.b) * 10_000 // 9_975, 1)
            landed = await land_route(
                client, [Leg(POOL, "USDC", "SOL")], "USDC", "SOL", amount, now=int(time.time())
            )
            assert landed is not None
        finally:
            await client.aclose()

    asyncio.run(land())


def statuses(store: OrderStore, ids: list[str]) -> dict[str, str]:
    with store.engine.connect() as connection:
        return dict(
            connection.execute(
                select(OrderRow.order_id, OrderRow.status).where(OrderRow.order_id.in_(ids))
            ).all()
        )


def wait_all(store: OrderStore, ids: list[str], status: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = statuses(store, ids)
        if all(s == status for s in found.values()) and len(found) == len(ids):
            return
        time.sleep(0.2)
    counts: dict[str, int] = {}
    for s in statuses(store, ids).values():
        counts[s] = counts.get(s, 0) + 1
    raise AssertionError(f"not all {status}: {counts}")


def events_by_order(store: OrderStore, ids: list[str]) -> dict[str, list[tuple[int, str]]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(EventRow.order_id, EventRow.sequence, EventRow.status)
            .where(EventRow.order_id.in_(ids))
            .order_by(EventRow.order_id, EventRow.sequence)
        ).all()
    found: dict[str, list[tuple[int, str]]] = {i: [] for i in ids}
    for order_id, sequence, status in rows:
        found[order_id].append((sequence, status))
    return found


def test_waiting_orders_survive_a_killed_trigger_part_a_flush_and_a_restart(
    cluster: Cluster, store: OrderStore
) -> None:
    soon = Timestamp()
    soon.FromDatetime(datetime.now(UTC) + timedelta(seconds=6))
    crossed_under_kill = submit(cluster, "kill", 400, **limit(150))
    crossed_after_flush = submit(cluster, "flush", 100, **limit(165))
    crossed_after_restart = submit(cluster, "restart", 100, **limit(185))
    expiring = submit(
        cluster, "expire", 200, stop=order_pb2.StopOrder(trigger_price="50"), expire_time=soon
    )
    waiting = submit(cluster, "wait", 100, stop=order_pb2.StopOrder(trigger_price="50"))

    # 1. The price crosses 400 limits; the trigger part dies as it fires them.
    push_price(cluster.chain_redis.url, 155)
    time.sleep(0.1)  # it sees the move within its poll (0.05 s), and fires
    cluster.kill("triggers-1")
    time.sleep(0.5)
    cluster.start("triggers-1")
    wait_all(store, crossed_under_kill, Status.CONFIRMED)

    # 2. Our Redis forgets the queue, the index and every marker while
    # orders wait; the expiring ones' time passes meanwhile.
    Redis.from_url(cluster.redis.url).flushall()
    wait_all(store, expiring, Status.EXPIRED, seconds=30)
    push_price(cluster.chain_redis.url, 170)
    wait_all(store, crossed_after_flush, Status.CONFIRMED)

    # 3. Every process stops and starts again with orders waiting.
    for name in list(cluster.parts):
        cluster.signal(name, 15)
    for name in list(cluster.parts):
        cluster.start(name)
    push_price(cluster.chain_redis.url, 190)
    wait_all(store, crossed_after_restart, Status.CONFIRMED)

    # Nothing lost: the orders no price met wait still, untouched.
    assert set(statuses(store, waiting).values()) == {Status.OPEN.value}
    every = crossed_under_kill + crossed_after_flush + crossed_after_restart + expiring + waiting
    events = events_by_order(store, every)
    # Gapless histories; one trigger per executed order, one expiry per expired one.
    for order_id, history in events.items():
        assert [s for s, _ in history] == list(range(1, len(history) + 1)), order_id
    executed = crossed_under_kill + crossed_after_flush + crossed_after_restart
    for order_id in executed:
        assert [status for _, status in events[order_id]] == [
            "OPEN",
            "ROUTING",
            "ROUTED",
            "SUBMITTED",
            "CONFIRMED",
        ], order_id
    for order_id in expiring:
        assert [status for _, status in events[order_id]] == ["OPEN", "EXPIRED"], order_id
    for order_id in waiting:
        assert [status for _, status in events[order_id]] == ["OPEN"], order_id
    # Executed exactly once on the chain; the others never.
    chain = Redis.from_url(cluster.chain_redis.url)
    landed = {
        k.decode() if isinstance(k, bytes) else k: int(v)
        for k, v in chain.hgetall(LANDED_BY_ORDER).items()
    }
    chain.close()
    assert [i for i in executed if landed.get(i) != 1] == []
    assert [i for i in expiring + waiting if i in landed] == []

    async def conservation() -> list[str]:
        client = AsyncRedis.from_url(cluster.chain_redis.url)
        try:
            return await conservation_errors(client)
        finally:
            await client.aclose()

    assert asyncio.run(conservation()) == []
