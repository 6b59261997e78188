"""Nothing lost, nothing executed twice: a few hundred orders through real
processes while each fault strikes, then every acknowledged order accounted
for. ``make chaos`` runs this alone; it also runs in the suite."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import func, select

from executor.chain.chain import LANDED_BY_ORDER
from orderengine.mesh.auth import key_metadata, with_metadata
from orderengine.statuses import TERMINAL, Status
from orderengine.store.api_keys import ApiKeys
from orderengine.store.database import create_database_engine
from orderengine.store.models import EventRow, OrderRow
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.chaos.cluster import Cluster
from tests.helpers import conservation_errors, fund, token_totals

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

ORDERS_PER_FAULT = 60
RECOVERY_BOUND_SECONDS = 60
# With a client_order_id any failure is safe to retry, except a refusal of
# the request itself: a server going down mid-call may answer CANCELLED or
# UNKNOWN as well as UNAVAILABLE.
FINAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
SWAPS = [
    ("SOL", "USDC", "0.5"),
    ("USDC", "SOL", "60"),
    ("SOL", "USDT", "0.3"),
    ("USDT", "USDC", "25"),
    ("JUP", "SOL", "100"),
]


@dataclass
class Row:
    fault: str
    orders: int
    confirmed: int
    failed: int
    lost: int
    duplicated: int
    gaps: int
    recovered_seconds: float


ROWS: list[Row] = []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("chaos"), database_url)
    yield running
    running.stop()


def summary() -> list[str]:
    """The table the suite prints at its end (tests/chaos/conftest.py)."""
    if not ROWS:
        return []
    lines = [
        f"{'fault':<26}{'orders':>7}{'confirmed':>10}{'failed':>7}{'lost':>6}"
        f"{'duplicated':>11}{'gaps':>6}{'recovered':>11}"
    ]
    lines += [
        f"{r.fault:<26}{r.orders:>7}{r.confirmed:>10}{r.failed:>7}{r.lost:>6}"
        f"{r.duplicated:>11}{r.gaps:>6}{r.recovered_seconds:>10.1f}s"
        for r in ROWS
    ]
    return lines


class Load:
    """Submits orders the way a careful client does: each with its own
    client_order_id, retried until acknowledged."""

    def __init__(self, address: str, tag: str, count: int, key: str) -> None:
        self.address = address
        self.auth = key_metadata(key)
        self.tag = tag
        self.count = count
        self.acknowledged: list[str] = []
        self.errors: list[str] = []
        # Every failed call the client retried ("client_order_id: CODE"), and
        # how long each order took from its first call to its acknowledgement.
        self.retried: list[str] = []
        self.seconds: list[float] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = random.Random(tag)

    def start(self) -> Load:
        self._thread.start()
        return self

    def channel(self) -> AbstractContextManager[grpc.Channel]:
        """The channel one order is submitted on: a new one each time."""
        return grpc.insecure_channel(self.address)

    def _submit(self, index: int) -> None:
        src, dst, amount = SWAPS[index % len(SWAPS)]
        request = order_service_pb2.SubmitOrderRequest(
            input_token=src,
            output_token=dst,
            amount=amount,
            slippage_bps=300,
            client_order_id=f"{self.tag}-{index}",
        )
        started = time.monotonic()
        deadline = started + 60
        with self.channel() as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(with_metadata(channel, self.auth))
            while True:
                try:
                    reply = stub.SubmitOrder(request, timeout=5)
                    with self._lock:
                        self.acknowledged.append(reply.order.order_id)
                        self.seconds.append(time.monotonic() - started)
                    return
                except grpc.RpcError as exc:
                    if exc.code() in FINAL or time.monotonic() > deadline:
                        raise
                    with self._lock:
                        self.retried.append(f"{request.client_order_id}: {exc.code().name}")
                    time.sleep(0.2)

    def _run(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(self._submit, i) for i in range(self.count)]:
                error = future.exception()
                if error is not None:
                    self.errors.append(repr(error))

    def wait_for(self, fraction: float) -> None:
        deadline = time.monotonic() + 60
        while len(self.acknowledged) < self.count * fraction:
            assert time.monotonic() < deadline, "orders are not being acknowledged"
            time.sleep(0.02)

    def finish(self) -> list[str]:
        self._thread.join(120)
        assert not self._thread.is_alive()
        assert self.errors == [], self.errors[:3]
        return list(self.acknowledged)


def account(
    chain_redis_url: str, store: OrderStore, fault: str, order_ids: list[str], struck_at: float
) -> Row:
    """Waits for every order to end, then checks what the chain (its Redis
    at ``chain_redis_url``) and the database say."""
    deadline = time.monotonic() + RECOVERY_BOUND_SECONDS
    statuses: dict[str, str] = {}
    while True:
        with store.engine.connect() as connection:
            statuses = dict(
                connection.execute(
                    select(OrderRow.order_id, OrderRow.status).where(
                        OrderRow.order_id.in_(order_ids)
                    )
                ).all()
            )
        if all(Status(s) in TERMINAL for s in statuses.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    recovered = time.monotonic() - struck_at
    chain = Redis.from_url(chain_redis_url)
    landed = {
        k.decode() if isinstance(k, bytes) else k: int(v)
        for k, v in chain.hgetall(LANDED_BY_ORDER).items()
    }
    chain.close()
    with store.engine.connect() as connection:
        per_order = connection.execute(
            select(
                EventRow.order_id,
                func.count(),
                func.min(EventRow.sequence),
                func.max(EventRow.sequence),
            )
            .where(EventRow.order_id.in_(order_ids))
            .group_by(EventRow.order_id)
        ).all()
        last = dict(
            connection.execute(
                select(OrderRow.order_id, OrderRow.last_sequence).where(
                    OrderRow.order_id.in_(order_ids)
                )
            ).all()
        )
    gaps = sum(
        1 for oid, count, low, high in per_order if not (low == 1 and high == count == last[oid])
    )
    row = Row(
        fault=fault,
        orders=len(order_ids),
        confirmed=sum(1 for s in statuses.values() if s == Status.CONFIRMED),
        failed=sum(1 for s in statuses.values() if s == Status.FAILED),
        lost=len(order_ids) - sum(1 for s in statuses.values() if Status(s) in TERMINAL),
        duplicated=sum(1 for oid in order_ids if landed.get(oid, 0) > 1),
        gaps=gaps + (len(order_ids) - len(per_order)),
        recovered_seconds=recovered,
    )
    ROWS.append(row)
    # A CONFIRMED order landed exactly once; any other, never.
    wrong = [
        oid
        for oid, s in statuses.items()
        if landed.get(oid, 0) != (1 if s == Status.CONFIRMED else 0)
    ]
    assert (row.lost, row.duplicated, row.gaps, wrong) == (0, 0, 0, []), row
    # Every pool holds what it started with plus what landed swaps moved, and
    # every token is where a landing or an airdrop put it.
    assert asyncio.run(_conservation(chain_redis_url)) == []
    failed_reasons = {r for (r,) in _failure_reasons(store, order_ids)}
    assert row.failed == 0, failed_reasons
    return row


async def _conservation(url: str) -> list[str]:
    """Pools off their ledger, and tokens whose sum over every wallet, pool
    and the fee collector is not what was there plus what was minted."""
    client = AsyncRedis.from_url(url)
    try:
        held, expected = await token_totals(client)
        return await conservation_errors(client) + [
            f"{symbol}: {held[symbol]} held, {expected[symbol]} expected"
            for symbol in held
            if held[symbol] != expected[symbol]
        ]
    finally:
        await client.aclose()


def _failure_reasons(store: OrderStore, order_ids: list[str]) -> list[tuple[str]]:
    with store.engine.connect() as connection:
        return [
            tuple(r)  # type: ignore[misc]
            for r in connection.execute(
                select(OrderRow.failure_reason).where(
                    OrderRow.order_id.in_(order_ids), OrderRow.status == Status.FAILED
                )
            ).all()
        ]


def resilient_watch(
    address: str, key: str, order_id: str, seen: list[order_pb2.OrderEvent]
) -> None:
    """Watches to the end, resuming with after_sequence whenever the stream
    breaks, as a client should."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        after = seen[-1].sequence if seen else 0
        try:
            with grpc.insecure_channel(address) as channel:
                stub = order_service_pb2_grpc.OrderServiceStub(
                    with_metadata(channel, key_metadata(key))
                )
                for event in stub.WatchOrder(
                    order_service_pb2.WatchOrderRequest(order_id=order_id, after_sequence=after),
                    timeout=60,
                ):
                    seen.append(event)
                    if Status.from_proto(event.status) in TERMINAL:
                        return
        except grpc.RpcError:
            time.sleep(0.2)


def strike(cluster: Cluster, store: OrderStore, fault: str, action: Callable[[], None]) -> Row:
    """Submits orders, watches ten of them, strikes once they are under way,
    and accounts for every one."""
    load = Load(
        cluster.order_address, f"{fault}-{time.time_ns()}", ORDERS_PER_FAULT, cluster.api_key
    ).start()
    load.wait_for(0.3)
    seen: dict[str, list[order_pb2.OrderEvent]] = {oid: [] for oid in load.acknowledged[:10]}
    watchers = [
        threading.Thread(
            target=resilient_watch, args=(cluster.order_address, cluster.api_key, oid, events)
        )
        for oid, events in seen.items()
    ]
    for w in watchers:
        w.start()
    load.wait_for(0.4)
    struck_at = time.monotonic()
    action()
    row = account(cluster.chain_redis.url, store, fault, load.finish(), struck_at)
    for w in watchers:
        w.join(60)
    for oid, events in seen.items():
        # The whole history, exactly once, in order, whatever broke.
        assert [e.sequence for e in events] == list(range(1, len(events) + 1)), oid
        assert events and Status.from_proto(events[-1].status) in TERMINAL, oid
    return row


def test_sigkill_a_worker_mid_job(cluster: Cluster, store: OrderStore) -> None:
    victim = cluster.workers()[0]

    def kill() -> None:
        cluster.kill(victim)
        time.sleep(1)
        cluster.start(victim)

    strike(cluster, store, "SIGKILL a worker", kill)


def test_restart_execution_service(cluster: Cluster, store: OrderStore) -> None:
    strike(cluster, store, "restart ExecutionService", lambda: cluster.restart("execution"))


def test_restart_quote_service(cluster: Cluster, store: OrderStore) -> None:
    strike(cluster, store, "restart QuoteService", lambda: cluster.restart("quote"))


def test_restart_order_service_with_streams_open(cluster: Cluster, store: OrderStore) -> None:
    strike(cluster, store, "restart OrderService", lambda: cluster.restart("order"))


def test_flush_redis(cluster: Cluster, store: OrderStore) -> None:
    def flush() -> None:
        client = Redis.from_url(cluster.redis.url)
        client.flushall()
        client.close()

    strike(cluster, store, "flush Redis", flush)


def test_restart_redis(cluster: Cluster, store: OrderStore) -> None:
    strike(cluster, store, "restart Redis", cluster.redis.restart)


def _postgres_restart_command() -> list[str] | None:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql") or shutil.which("pg_ctlcluster") is None:
        return None
    versions = sorted(Path("/etc/postgresql").glob("*"))
    if not versions or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "restart"]


def test_restart_postgresql(cluster: Cluster, store: OrderStore) -> None:
    command = _postgres_restart_command()
    if command is None:
        pytest.skip("runs against this machine's PostgreSQL (TEST_DATABASE_URL), as root")

    def restart() -> None:
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    strike(cluster, store, "restart PostgreSQL", restart)


def test_poison_orders_among_good_ones(cluster: Cluster, store: OrderStore) -> None:
    """Orders of the largest amount the engine accepts, which no pool can
    take without a holding passing it: once, they landed, broke a pool's
    flows ledger mid-MULTI, and paid out an amount the tracker could not
    parse, stalling every order whose entry came due with theirs. Each now
    fails alone (AMOUNT_OVERFLOW); the good ones around them all end. (Of
    pairs with two Raydium pools to enter by, SOL -> USDC through USDT, a
    split may share such an amount out so that neither overflows: these
    pairs have one.) Their owner's wallet holds all a token account holds
    of each token they sell, and SOL for the fees."""
    poison: list[str] = []
    engine = create_database_engine(cluster.database_url)
    try:
        whale, _ = ApiKeys(engine).create("whale")
    finally:
        engine.dispose()
    fund(
        cluster.chain_redis.url,
        "whale",
        {
            "SOL": "18446744073.709551615",
            "JUP": "18446744073709.551615",
            "RAY": "18446744073709.551615",
        },
    )

    def submit_poison() -> None:
        with grpc.insecure_channel(cluster.order_address) as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(
                with_metadata(channel, key_metadata(whale))
            )
            for index, (src, dst, most) in enumerate(
                [
                    ("JUP", "SOL", "18446744073709.551615"),
                    ("JUP", "USDC", "18446744073709.551615"),
                    ("RAY", "SOL", "18446744073709.551615"),
                ]
            ):
                reply = stub.SubmitOrder(
                    order_service_pb2.SubmitOrderRequest(
                        input_token=src,
                        output_token=dst,
                        amount=most,
                        slippage_bps=300,
                        client_order_id=f"poison-{time.time_ns()}-{index}",
                    ),
                    timeout=10,
                )
                poison.append(reply.order.order_id)

    strike(cluster, store, "poison orders", submit_poison)
    with store.engine.connect() as connection:
        ends = connection.execute(
            select(OrderRow.status, OrderRow.failure_reason).where(OrderRow.order_id.in_(poison))
        ).all()
    assert [status for status, _ in ends] == [Status.FAILED] * 3, ends
    assert all("would hold more than" in (reason or "") for _, reason in ends), ends
    assert [store.events(oid)[-1].reason_code for oid in poison] == ["AMOUNT_OVERFLOW"] * 3
    chain = Redis.from_url(cluster.chain_redis.url)
    try:
        assert not any(chain.hget(LANDED_BY_ORDER, oid) for oid in poison)
    finally:
        chain.close()
