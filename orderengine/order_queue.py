"""The order queue: RQ on Redis, a buffer between "accepted" and "executed".
The database stays the truth: a job only says "drive this order", and
driving an order that has moved on does nothing."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis
from redis.client import Pipeline
from rq import Queue

# Named, not imported: services meet over Redis, never by importing another
# service's code.
DRIVE_ORDER = "executor.jobs.drive_order"

# A job that has not finished in this long is killed and its order
# reconciled; the job itself does two gRPC calls and a few writes.
JOB_TIMEOUT_SECONDS = 60


def order_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis)


def enqueue_order(
    queue: Queue, order_id: str, *, delay_seconds: float = 0.0, pipeline: Pipeline | None = None
) -> None:
    """Queues the job that drives the order; after ``delay_seconds`` if set
    (a retry's back-off), which needs a worker running RQ's scheduler."""
    options = {
        "job_timeout": JOB_TIMEOUT_SECONDS,
        # Results are in the database; keep nothing in Redis.
        "result_ttl": 0,
        "failure_ttl": 24 * 3600,
        "description": f"drive order {order_id}",
    }
    if delay_seconds > 0:
        queue.enqueue_in(timedelta(seconds=delay_seconds), DRIVE_ORDER, order_id,
                         pipeline=pipeline, **options)
    else:
        queue.enqueue(DRIVE_ORDER, order_id, pipeline=pipeline, **options)
