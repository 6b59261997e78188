"""Two replicas of every service, and one of each struck while orders flow:
every order ends, confirmed ones landed exactly once, no client sees an
error its own deadline does not cover, and a watcher whose OrderService
replica died carries on from the other one with after_sequence, missing
nothing. The watchers run the CLI's own resuming watch."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import grpc
import pytest
from redis import Redis
from rq import Worker

from orderengine.client import Client, Resuming
from orderengine.mesh.channels import ORDER_SERVICE
from orderengine.mesh.channels import channel as orderengine_channel
from orderengine.statuses import TERMINAL, Status
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2
from tests.chaos.cluster import Cluster
from tests.chaos.test_faults import Load, Row, account

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

ORDERS = 60
WORKERS = 4
WATCHED = 10
# Submissions are spread over ORDERS·PACE seconds, so that orders still
# arrive while the struck replicas are gone.
PACE_SECONDS = 0.05
# What the client allows one order's submission, its retries included.
ORDER_DEADLINE_SECONDS = 10.0
WAITED = {Status.SUBMITTED, *TERMINAL}
# The parts struck: one replica of each service, and one tracker. (A killed
# worker is test_faults' own fault.)
ONE_OF_EACH = ("order-1", "quote-1", "execution-1", "tracker-1")


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Cluster]:
    # Confirmation takes a while, so that the watched streams are still open
    # when a replica dies.
    running = Cluster(
        tmp_path_factory.mktemp("replicas"),
        database_url,
        workers=WORKERS,
        replicas=2,
        env={"CHAIN_CONFIRM_SECONDS": "1.5"},
    )
    # The servers are up; the workers take longer: orders should flow at once.
    redis = Redis.from_url(running.redis.url)
    deadline = time.monotonic() + 60
    while Worker.count(connection=redis) < WORKERS:
        assert time.monotonic() < deadline, "the RQ workers did not start"
        time.sleep(0.1)
    redis.close()
    yield running
    running.stop()


class BalancedLoad(Load):
    """test_faults' careful client, on one long-lived channel balanced over
    every OrderService replica, as the CLI and the gateway open it."""

    def __init__(self, shared: grpc.Channel, *args: Any) -> None:
        super().__init__(*args)
        self.shared = shared
        self.began = time.monotonic()

    def channel(self) -> AbstractContextManager[grpc.Channel]:
        return nullcontext(self.shared)

    def _submit(self, index: int) -> None:
        time.sleep(max(0.0, self.began + index * PACE_SECONDS - time.monotonic()))
        super()._submit(index)


class Watcher:
    """Follows one order with the client's resuming watch (the CLI's),
    noting the after_sequence of every WatchOrder stream it opens."""

    def __init__(self, orders: Client, order_id: str) -> None:
        self.order_id = order_id
        self.orders = orders
        self.opened_after: list[int] = [0]
        self.events: list[order_pb2.OrderEvent] = []
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _resumed(self, notice: Resuming) -> None:
        self.opened_after.append(notice.after_sequence)

    def _run(self) -> None:
        try:
            for event in self.orders.watch(self.order_id, on_resume=self._resumed):
                self.events.append(event)
        except grpc.RpcError as exc:
            self.error = f"{exc.code().name}: {exc.details()}"

    def check(self) -> None:
        self.thread.join(60)
        assert self.error is None, (self.order_id, self.error)
        sequences = [e.sequence for e in self.events]
        # The whole history, once each, in order, whichever replica served it.
        assert sequences == list(range(1, len(sequences) + 1)), (self.order_id, sequences)
        assert sequences and Status.from_proto(self.events[-1].status) in TERMINAL, self.order_id
        # Each stream opened again after exactly what had been seen.
        assert self.opened_after[0] == 0
        assert all(0 <= after <= sequences[-1] for after in self.opened_after[1:])

    @property
    def resumed(self) -> bool:
        return len(self.opened_after) > 1


def strike_replicas(
    cluster: Cluster, store: OrderStore, fault: str, sig: int
) -> tuple[Row, BalancedLoad, list[Watcher]]:
    """Orders flow, ten are watched through OrderService, then ``sig``
    strikes one replica of each service and a tracker at once; every order
    is accounted for (test_faults.account)."""
    shared = orderengine_channel(cluster.order_address, service=ORDER_SERVICE)
    watching = Client(cluster.order_address, api_key=cluster.api_key, watch_give_up_seconds=30)
    try:
        load = BalancedLoad(
            shared, cluster.order_address, f"{fault}-{time.time_ns()}", ORDERS, cluster.api_key
        )
        load.start()
        load.wait_for(0.3)
        # The latest orders: their streams stay open across the strike, each
        # waiting for its swap's confirmation.
        watchers = [Watcher(watching, oid) for oid in load.acknowledged[-WATCHED:]]
        deadline = time.monotonic() + 10
        while not all(
            w.events and Status.from_proto(w.events[-1].status) in WAITED for w in watchers
        ):
            assert time.monotonic() < deadline, [len(w.events) for w in watchers]
            time.sleep(0.01)
        struck_at = time.monotonic()
        acknowledged_before = len(load.acknowledged)
        # All at once, each struck once.
        struck = [cluster.parts[name].process for name in ONE_OF_EACH]
        for process in struck:
            assert process is not None
            process.send_signal(sig)
        for process in struck:
            assert process is not None
            process.wait(30)
        row = account(cluster.chain_redis.url, store, fault, load.finish(), struck_at)
        for watcher in watchers:
            watcher.check()
        assert acknowledged_before < ORDERS, "the strike came after the last submission"
    finally:
        shared.close()
        watching.close()
    # No client error beyond its own deadline: every order was acknowledged,
    # each within the time the client allows it, retries included.
    assert max(load.seconds) <= ORDER_DEADLINE_SECONDS, sorted(load.seconds)[-3:]
    return row, load, watchers


def restart(cluster: Cluster, names: tuple[str, ...]) -> None:
    for name in names:
        process = cluster.parts[name].process
        if process is None or process.poll() is not None:
            cluster.start(name)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_one_replica_of_each_struck(
    replicated: Cluster, store: OrderStore, sig: signal.Signals
) -> None:
    try:
        row, load, watchers = strike_replicas(replicated, store, f"{sig.name} 1 of 2 replicas", sig)
    finally:
        restart(replicated, ONE_OF_EACH)
    # The struck OrderService had streams (round robin spreads them); killed
    # or stopping gracefully (UNAVAILABLE first), they came back on the other
    # replica and missed nothing (checked in strike_replicas).
    assert any(w.resumed for w in watchers), [w.opened_after for w in watchers]
    print(
        f"\n{row.fault}: {len(load.retried)} submissions retried with their "
        f"client_order_id ({sorted(set(r.split(': ')[1] for r in load.retried))}); "
        f"{sum(w.resumed for w in watchers)}/{WATCHED} watchers resumed; slowest "
        f"acknowledgement {max(load.seconds):.2f}s"
    )
