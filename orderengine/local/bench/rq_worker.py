"""A burst RQ SimpleWorker for the queue ceiling:
``python -m orderengine.local.bench.rq_worker QUEUE``."""

from __future__ import annotations

import sys

from redis import Redis
from rq import Queue, SimpleWorker

from orderengine.settings import Settings

if __name__ == "__main__":
    redis = Redis.from_url(Settings().redis_url)
    SimpleWorker([Queue(sys.argv[1], connection=redis)], connection=redis).work(
        burst=True, logging_level="WARNING"
    )
