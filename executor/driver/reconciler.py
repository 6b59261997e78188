"""The reconciler: the database is the truth, so any order it shows in a
non-terminal status that nobody is moving is driven again. That covers a
worker killed mid-job (its lease runs out), a job or a whole queue lost with
Redis, and a swap handed to the tracker that Redis forgot. Driving an order
twice is harmless: every step is a compare-and-set, and the chain lands an
attempt key once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from rq.job import Job
from rq.queue import Queue
from rq.registry import clean_registries

from executor.driver.context import Context
from executor.driver.inflight import Inflight, track_if_missing
from executor.driver.leases import leased
from orderengine.order_queue import enqueue_orders, queued_since
from orderengine.statuses import Status

log = logging.getLogger(__name__)


# RQ's scheduler moves a due retry to the queue within a second. One whose
# time passed this long ago has no scheduler: its worker was killed holding
# the scheduler's lock, which lives 61 s and is taken over only by another
# worker's ten-minute maintenance.
OVERDUE_SECONDS = 5.0


@dataclass(frozen=True)
class Reconciled:
    queued: int
    tracked: int
    overdue: int = 0


def enqueue_overdue(queue: Queue, overdue_seconds: float = OVERDUE_SECONDS) -> int:
    """Queues the scheduled jobs (retries after a back-off) that RQ's
    scheduler should have queued ``overdue_seconds`` ago. Racing a scheduler
    that wakes up at the same moment queues a job twice, which is harmless:
    an order's job takes its lease and moves it by compare-and-set."""
    registry = queue.scheduled_job_registry
    job_ids = registry.get_jobs_to_schedule(int(time.time() - overdue_seconds))
    if not job_ids:
        return 0
    with queue.connection.pipeline() as pipe:
        for job in Job.fetch_many(job_ids, connection=queue.connection):
            if job is not None:
                queue.enqueue_job(job, pipeline=pipe)
        for job_id in job_ids:
            registry.remove(job_id, pipeline=pipe)
        pipe.execute()
    log.warning("reconciler: queued %d retries RQ's scheduler left overdue", len(job_ids))
    return len(job_ids)


def reconcile_once(ctx: Context) -> Reconciled:
    stale = ctx.store.stale(timedelta(seconds=ctx.settings.reconcile_after_seconds))
    ids = [row.order_id for row in stale]
    busy = leased(ctx.redis, ids)
    waiting = queued_since(ctx.redis, ids)
    patience = time.time() - ctx.settings.queue_patience_seconds
    again: list[str] = []
    swaps: list[Inflight] = []
    for row in stale:
        if row.order_id in busy:
            continue
        if row.status == Status.SUBMITTED and row.signature:
            swaps.append(Inflight(row.order_id, row.attempt, row.signature))
        elif waiting.get(row.order_id, 0.0) < patience:
            again.append(row.order_id)
    tracked = track_if_missing(ctx.redis, swaps)
    if again:
        enqueue_orders(ctx.queue, again)
    queued = len(again)
    if queued or tracked:
        log.info("reconciler: queued %d orders again, tracked %d swaps again", queued, tracked)
    # RQ's own bookkeeping of jobs whose worker died, without waiting for
    # its ten-minute maintenance.
    clean_registries(ctx.queue)
    return Reconciled(queued, tracked, enqueue_overdue(ctx.queue))
