"""An RQ worker for the order queue. SimpleWorker: jobs run in this process,
no fork per job, and the process keeps its gRPC channels and database pool.
SIGTERM is a warm stop: the current job finishes first."""

from __future__ import annotations

from rq import SimpleWorker

from executor.context import context


def run(burst: bool = False) -> None:
    ctx = context()
    worker = SimpleWorker([ctx.queue], connection=ctx.redis)
    # The scheduler enqueues retries whose back-off has passed; one worker
    # at a time holds its lock.
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
