"""The bare parts the engine is built on, measured the same way on the same
machine: RQ enqueue plus a no-op job, a grpc.aio unary call, an idle
grpc.aio stream (bare_watch), and one row inserted and committed. Every
engine figure is printed as a ratio to these."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from rq import Queue
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert

from orderengine.store.database import create_database_engine

NOOP = "orderengine.local.bench.noop.noop"


def rq_jobs_per_second(redis_url: str, workers: int, jobs: int) -> float:
    """Enqueues ``jobs`` no-op jobs, then times ``workers`` burst workers
    through them, from the first job taken to the last."""
    redis = Redis.from_url(redis_url)
    queue = Queue(f"bench-ceiling-{time.time_ns()}", connection=redis)
    queue.enqueue_many([Queue.prepare_data(NOOP, result_ttl=0) for _ in range(jobs)])
    env = {**os.environ, "REDIS_URL": redis_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "orderengine.local.bench.rq_worker", queue.name], env=env
        )
        for _ in range(workers)
    ]
    started = None
    while any(p.poll() is None for p in processes):
        if started is None and queue.count < jobs:
            started = time.perf_counter()
        time.sleep(0.005)
    finished = time.perf_counter()
    queue.delete(delete_jobs=True)
    redis.close()
    return jobs / (finished - (started or finished - 1e-9))


@contextmanager
def _scratch_table(database_url: str) -> Iterator[tuple[Connection, Table]]:
    """A table of its own, on one connection of the stack's engine, dropped after."""
    engine = create_database_engine(database_url)
    table = Table(
        f"bench_commit_{time.time_ns()}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("payload", String(64)),
    )
    table.create(engine)
    try:
        with engine.connect() as connection:
            yield connection, table
    finally:
        table.drop(engine)
        engine.dispose()


def _commit_one_row(connection: Connection, table: Table) -> None:
    with connection.begin():
        connection.execute(insert(table).values(payload="x" * 36))


def inserts_per_second(database_url: str, seconds: float) -> float:
    """One row per transaction, on one connection, for ``seconds``."""
    with _scratch_table(database_url) as (connection, table):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            _commit_one_row(connection, table)
            count += 1
        return count / (time.perf_counter() - start)


class EchoServer:
    """A bare server in a process of its own: ``module`` prints its port."""

    def __init__(self, module: str = "orderengine.local.bench.echo") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.address = f"127.0.0.1:{self.process.stdout.readline().strip()}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def commit_latencies(database_url: str, commits: int) -> list[float]:
    """Seconds each of ``commits`` one-row transactions takes, begun and
    committed as the stack's own engine does (its PRAGMAs, its write lock):
    the floor one durable write puts under anything that waits for it."""
    latencies = []
    with _scratch_table(database_url) as (connection, table):
        for _ in range(commits):
            began = time.perf_counter()
            _commit_one_row(connection, table)
            latencies.append(time.perf_counter() - began)
    return latencies


def synced_commit_latencies(directory: Path, commits: int) -> list[float]:
    """The same on SQLite with synchronous=FULL: an fsync every commit, the
    disk's own floor (the stack's synchronous=NORMAL in WAL syncs at
    checkpoints instead)."""
    path = directory / f"bench-commit-full-{time.time_ns()}.db"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
        latencies = []
        for _ in range(commits):
            began = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO t (payload) VALUES (?)", ("x" * 36,))
            connection.execute("COMMIT")
            latencies.append(time.perf_counter() - began)
        return latencies
    finally:
        connection.close()
        for leftover in directory.glob(f"{path.name}*"):
            leftover.unlink()
