"""The order queue: RQ on Redis, a buffer between "accepted" and "executed".
The database stays the truth: a job only says "drive this order", and
driving an order that has moved on does nothing.

Beside each job the queue keeps a marker, order id -> when queued, so the
reconciler can tell an order whose job waits in a long queue from one whose
job was lost (a flushed Redis loses both, and the order is queued again)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job

from orderengine.observability import handoffs

# Named, not imported: services meet over Redis, never by importing another
# service's code.
DRIVE_ORDERS = "executor.driver.jobs.drive_orders"
# Orders per job: one job moves several orders with one transaction per
# step and one call to each peer, yet a burst still spreads over every
# worker. Larger jobs mean fewer transactions and calls per order; at most
# the 64 a batch call takes.
ORDERS_PER_JOB = 32
# The markers, order id -> when queued: also how many orders wait for a
# worker (HLEN), whatever the jobs hold. Keyed by order id, the count cannot
# drift as a counter would: an order queued again (the reconciler, a retry,
# a job run twice) is still one, a worker killed holding a job leaves its
# orders to the reconciler, which queues and marks them again, and a flushed
# Redis forgets markers and jobs together.
QUEUED = "orderengine:queued"
# Orders a worker drives at once: its job's and those of jobs queued behind
# it (take_queued), up to what one batch call to a peer takes. A backlog
# thus drains in fewer, larger batches (fewer transactions, calls and RQ job
# runs per order), while a lone job still runs at once.
ORDERS_PER_DRIVE = 64
# Queued jobs a worker looks at in one round trip, beside its own.
JOBS_TAKEN_AT_ONCE = 8
# A job's meta flag: drive its orders without waiting for more
# (DRIVE_LINGER_SECONDS), for orders whose moment is now.
AT_ONCE = "at_once"

# A job that has not finished in this long is killed and its order
# reconciled; the job itself does two gRPC calls and a few writes.
JOB_TIMEOUT_SECONDS = 60


def order_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis)


_JOB_OPTIONS = {
    "timeout": JOB_TIMEOUT_SECONDS,
    # Results are in the database; keep nothing in Redis.
    "result_ttl": 0,
    "failure_ttl": 24 * 3600,
}


def enqueue_orders(
    queue: Queue,
    order_ids: list[str],
    *,
    pipeline: Pipeline | None = None,
    carried: Mapping[str, handoffs.Carrier] | None = None,
    at_once: bool = False,
) -> None:
    """Queues the jobs that drive the orders, in one round trip (or with the
    given pipeline's next execute()); each job carries ``carried``'s context
    of its orders (the requests that submitted them). ``at_once``: a worker
    drives them without waiting for more orders (orders a trigger fired)."""
    pipe = pipeline if pipeline is not None else queue.connection.pipeline()
    batches = [order_ids[i : i + ORDERS_PER_JOB] for i in range(0, len(order_ids), ORDERS_PER_JOB)]
    queue.enqueue_many(
        [
            Queue.prepare_data(
                DRIVE_ORDERS,
                (batch,),
                description=f"drive {len(batch)} orders",
                meta=_job_meta(carried or {}, batch, at_once),
                **_JOB_OPTIONS,  # type: ignore[arg-type]
            )
            for batch in batches
        ],
        pipeline=pipe,
    )
    now = repr(time.time())
    pipe.hset(QUEUED, mapping=dict.fromkeys(order_ids, now))
    if pipeline is None:
        pipe.execute()


def _job_meta(
    carried: Mapping[str, handoffs.Carrier], order_ids: list[str], at_once: bool
) -> dict[str, Any] | None:
    """A job's meta: its orders' carriers and the AT_ONCE flag (None: neither)."""
    meta = handoffs.job_meta(carried, order_ids) or {}
    if at_once:
        meta[AT_ONCE] = True
    return meta or None


def enqueue_order(queue: Queue, order_id: str, *, delay_seconds: float = 0.0) -> None:
    """Queues the job that drives the order; after ``delay_seconds`` if set
    (a retry's back-off), which needs a worker running RQ's scheduler. The
    job carries the current request's context (handoffs.within_order)."""
    carried = {order_id: handoffs.capture()}
    if delay_seconds <= 0:
        enqueue_orders(queue, [order_id], carried=carried)
        return
    with queue.connection.pipeline() as pipe:
        queue.enqueue_in(
            timedelta(seconds=delay_seconds),
            DRIVE_ORDERS,
            [order_id],
            pipeline=pipe,
            job_timeout=JOB_TIMEOUT_SECONDS,
            result_ttl=0,
            failure_ttl=_JOB_OPTIONS["failure_ttl"],
            description=f"drive order {order_id}",
            meta=handoffs.job_meta(carried, [order_id]),
        )
        pipe.hset(QUEUED, order_id, repr(time.time() + delay_seconds))
        pipe.execute()


def take_queued(queue: Queue, room: int) -> tuple[list[str], dict[str, handoffs.Carrier]]:
    """Takes jobs waiting in the queue, for a worker to drive their orders
    with its own job's: their orders (at most ``room``, each once) and what
    each carries. The jobs taken are deleted; those that do not fit go back
    to the head of the queue. A worker that dies holding them loses only
    jobs: their orders keep their markers, so the reconciler queues them
    again once the queue's patience runs out, as for any lost job."""
    if room <= 0:
        return [], {}
    redis = queue.connection
    job_ids = redis.lpop(queue.key, min(JOBS_TAKEN_AT_ONCE, room))
    if not job_ids:
        return [], {}
    jobs = Job.fetch_many(
        [i.decode() if isinstance(i, bytes) else str(i) for i in job_ids],
        connection=redis,
        serializer=queue.serializer,
    )
    orders: dict[str, None] = {}
    carried: dict[str, handoffs.Carrier] = {}
    taken: list[Job] = []
    back: list[str] = []
    for job in jobs:
        if job is None:  # deleted since it was queued: nothing to run
            continue
        ids = _orders_of(job)
        if ids is None or len(orders) + len(ids) > room:
            back.append(job.id)
            continue
        taken.append(job)
        orders.update(dict.fromkeys(ids))
        carried.update(job.meta.get(handoffs.JOB_META_KEY) or {})
    with redis.pipeline(transaction=False) as pipe:
        if back:
            pipe.lpush(queue.key, *reversed(back))  # at the head, in their order
        for job in taken:
            # Queued jobs are in no registry: deleting the hash is all.
            pipe.delete(job.key)
        pipe.execute()
    return list(orders), carried


def _orders_of(job: Job) -> list[str] | None:
    """The orders of a job that drives orders; None for any other job."""
    try:
        if job.func_name != DRIVE_ORDERS or len(job.args) != 1 or job.kwargs:
            return None
        ids = job.args[0]
    except Exception:  # a job whose data does not load is its worker's to fail
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


def picked_up_by_worker(redis: Redis | Pipeline, order_ids: list[str]) -> None:
    """A worker has the orders' job: they no longer wait in the queue."""
    if order_ids:
        redis.hdel(QUEUED, *order_ids)


def queued_since(redis: Redis, order_ids: list[str]) -> dict[str, float]:
    """When each order was queued, for those whose job is still waiting."""
    if not order_ids:
        return {}
    values = redis.hmget(QUEUED, order_ids)
    return {i: float(v) for i, v in zip(order_ids, values, strict=True) if v is not None}
