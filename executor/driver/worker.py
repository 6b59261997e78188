"""An RQ worker for the order queue. SimpleWorker: jobs run in this process,
no fork per job, and the process keeps its gRPC channels and database pool.
SIGTERM is a warm stop: the current job finishes first, then the worker
and its scheduler end at once."""

from __future__ import annotations

import logging
import time

from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from rq import SimpleWorker

from executor.driver.context import context

log = logging.getLogger(__name__)

# After losing Redis, try again this often.
RESTART_SECONDS = 1.0
# How long a stopping worker waits for Redis to release its scheduler's lock.
GIVE_UP_SECONDS = 1.0


class OrderWorker(SimpleWorker):
    def stop_scheduler(self) -> None:
        """Ends RQ's scheduler process now and releases its lock from here.
        RQ's own stop waits for the process, which reads a stop request only
        after each of its 1-second sleeps: up to a second on every stop, in
        `make run`'s Ctrl-C and each rollout. Between sleeps it holds only its
        lock (a due job moves to the queue in one MULTI), so killing it loses
        nothing."""
        scheduler = self.scheduler
        process = scheduler._process if scheduler is not None else None
        # Not started (a stop while the worker starts), or ended already.
        if (
            scheduler is None
            or process is None
            or process.pid is None
            or process.exitcode is not None
        ):
            return
        process.kill()
        process.join()
        # Its lock (by its name) and record, released on a connection that
        # gives up at once: when Redis is going too (the whole stack is
        # stopping), retrying would only hold up this exit, and both expire.
        pool = self.connection.connection_pool
        scheduler._connection = Redis(
            connection_pool=ConnectionPool(
                connection_class=pool.connection_class,
                **{
                    **pool.connection_kwargs,
                    "socket_timeout": GIVE_UP_SECONDS,
                    "socket_connect_timeout": GIVE_UP_SECONDS,
                    "retry": Retry(NoBackoff(), 0),
                },
            )
        )
        try:
            scheduler.stop()
        except RedisError as exc:
            log.warning("RQ's scheduler lock left to expire: %s", exc)
        finally:
            scheduler._connection.close()


def _asked_to_stop(worker: SimpleWorker) -> bool:
    # RQ records a warm-stop request only as these two (a busy worker sets
    # the first, an idle one only the date).
    return worker._stop_requested or worker._shutdown_requested_date is not None


def run(burst: bool = False) -> None:
    ctx = context()
    while True:
        worker: OrderWorker | None = None
        try:
            worker = OrderWorker([ctx.queue], connection=ctx.redis)
            # The scheduler enqueues retries whose back-off has passed; one
            # worker at a time holds its lock.
            worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
        except RedisError as exc:  # Redis down at start, or in RQ's own teardown
            log.warning("worker stopped on %s", exc)
        if burst or (worker is not None and _asked_to_stop(worker)):
            return
        # RQ gives up when Redis goes away in the middle of a job; the order
        # itself is safe (the reconciler drives it again), so start over.
        log.warning("worker lost Redis; starting again in %.0fs", RESTART_SECONDS)
        time.sleep(RESTART_SECONDS)
        if worker is not None and _asked_to_stop(worker):  # a SIGTERM while we waited
            return
