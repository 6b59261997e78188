"""The figures a user watches about orders (docs/operations.md, "Metrics"), each
observed where the thing happens:

    orderengine_orders{status}                      OrderService, from the database
    orderengine_order_status_seconds{status}        whoever moves an order on
    orderengine_queue_depth{queue}                  OrderService, from Redis
    orderengine_queue_oldest_job_age_seconds{queue} OrderService, from Redis
    orderengine_quote_seconds                       QuoteService
    orderengine_execution_seconds{commitment}       the chain (processed), the tracker (confirmed)
    orderengine_watch_streams                       OrderService
    orderengine_drive_orders                        workers

Orders by status and the queue are read at scrape time from the database
and Redis, the truth every replica shares (so every OrderService replica
reports the same figure: aggregate them with max, not sum). Counters of
transitions kept by each process could not say how many orders are in a
status now. Times are histograms, observed once per event in the process
where it happens, so they add up across replicas."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from rq.job import Job
from rq.utils import utcparse

from orderengine.observability.buckets import seconds_buckets
from orderengine.statuses import Status
from orderengine.store.changes import Transition
from orderengine.store.models import StoredOrder
from orderengine.store.orders import OrderStore
from orderengine.v1 import order_pb2

log = logging.getLogger(__name__)

# An order waits from milliseconds (a quiet engine) to minutes (a backlog,
# retries' back-off); a quote or a landing takes milliseconds to a second.
STATUS_BUCKETS = (*seconds_buckets(0.005, 10.0), 30.0, 60.0, 120.0, 300.0)
QUOTE_BUCKETS = seconds_buckets(0.0005, 2.5)
# What a scrape reads from the database and Redis is kept this long, so that
# several scrapers (or a fast one) cost one query.
SCRAPE_CACHE_SECONDS = 1.0

STATUS_SECONDS = Histogram(
    "orderengine_order_status_seconds",
    "Time an order spent in a status, observed as it leaves it (PENDING: the wait in the "
    "queue; ROUTING: the quote; ROUTED: handing the swap to the chain; SUBMITTED: landing "
    "and confirmation)",
    ["status"],
    buckets=STATUS_BUCKETS,
)
EXECUTION_SECONDS = Histogram(
    "orderengine_execution_seconds",
    "Time from a swap's submission until it reached a commitment: processed (landed, as the "
    "chain lands it) or confirmed (as the engine records the confirmation)",
    ["commitment"],
    buckets=STATUS_BUCKETS,
)
QUOTE_SECONDS = Histogram(
    "orderengine_quote_seconds",
    "Time QuoteService took to price a swap on every venue and choose its route",
    buckets=QUOTE_BUCKETS,
)
DRIVE_ORDERS = Histogram(
    "orderengine_drive_orders",
    "Orders a worker drove at once: its job's and those of the jobs it took from behind it "
    "(after its linger, when it waited for them)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
WATCH_STREAMS = Gauge("orderengine_watch_streams", "WatchOrder streams open on this OrderService")
SUBMITS_REFUSED = Counter(
    "orderengine_submits_refused",
    "Orders SubmitOrder and BatchSubmitOrders answered with an error and did not store, by "
    "reason (INVALID_FIELD, QUEUE_FULL, RATE_LIMITED, INSUFFICIENT_FUNDS, ...)",
    ["reason"],
)

# Only a status an order can leave has a time in it.
_LEFT = {status: STATUS_SECONDS.labels(status.value) for status in Status if not status.terminal}
_PROCESSED = EXECUTION_SECONDS.labels("processed")
_CONFIRMED = EXECUTION_SECONDS.labels("confirmed")


def _seconds(moment: datetime | Timestamp) -> float:
    if isinstance(moment, Timestamp):
        return moment.seconds + moment.nanos / 1e9
    # SQLite gives back naive datetimes; the store writes UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# -- times ----------------------------------------------------------------------


def transitions_made(
    current: Iterable[StoredOrder],
    transitions: Sequence[Transition],
    results: Sequence[tuple[StoredOrder, order_pb2.OrderEvent] | None],
) -> None:
    """Observes how long each moved order spent in the status it left.
    ``current``: the orders as read before the change (the status each was
    in, since its last change); ``results``: what the store did with each
    transition. One order may take several steps at once (PENDING, ROUTING,
    ROUTED): each step's start is the previous one's end."""
    since = {row.order_id: (Status(row.status), _seconds(row.updated_at)) for row in current}
    for transition, result in zip(transitions, results, strict=True):
        if result is None:
            continue
        began = _seconds(result[1].event_time)
        left = since.get(transition.order_id)
        if left is not None:
            status, entered = left
            if status in _LEFT:
                _LEFT[status].observe(max(began - entered, 0.0))
            if transition.target is Status.CONFIRMED:
                _CONFIRMED.observe(max(began - entered, 0.0))
        since[transition.order_id] = (transition.target, began)


def swap_landed(submitted_at: bytes | str | None, landed_at: float) -> None:
    """The chain landed a swap (with or without an error) it took at
    ``submitted_at`` (epoch seconds, as it stores them)."""
    if submitted_at:
        _PROCESSED.observe(max(landed_at - float(submitted_at), 0.0))


def submits_refused(reasons: Iterable[str]) -> None:
    """OrderService answered one order with an error for each of ``reasons``."""
    for reason in reasons:
        SUBMITS_REFUSED.labels(reason).inc()


def quote_priced(seconds: float) -> None:
    """QuoteService priced one swap in ``seconds``: the read of the pools it
    needed (shared with the other swaps of a batch call, one round trip) and
    its own routing. One observation per quote, batched or not; a refusal
    (a bad field, no route) is none."""
    QUOTE_SECONDS.observe(seconds)


# -- read at scrape time ------------------------------------------------------------


def _orders_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "orderengine_orders",
        "Orders in each status now (the database's count: the same on every replica)",
        labels=["status"],
    )


def _depth_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "orderengine_queue_depth",
        "Jobs waiting in the order queue (each "
        "drives up to 32 orders); MAX_QUEUE_DEPTH counts orders, not jobs",
        labels=["queue"],
    )


def _age_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "orderengine_queue_oldest_job_age_seconds",
        "How long the oldest job waiting in the order queue has waited (0 when empty)",
        labels=["queue"],
    )


def orders_by_status(store: OrderStore) -> list[GaugeMetricFamily]:
    counts = store.count_by_status()
    family = _orders_family()
    for status in Status:
        family.add_metric([status.value], counts.get(status.value, 0))
    return [family]


def queue_figures(queue: Queue) -> list[GaugeMetricFamily]:
    redis = queue.connection
    with redis.pipeline(transaction=False) as pipe:
        pipe.llen(queue.key)
        pipe.lindex(queue.key, 0)  # RQ takes jobs from the head
        depth, head = pipe.execute()
    age = 0.0
    if head is not None:
        job_id = head.decode() if isinstance(head, bytes) else str(head)
        enqueued = redis.hget(Job.key_for(job_id), "enqueued_at")
        if enqueued:
            text = enqueued.decode() if isinstance(enqueued, bytes) else str(enqueued)
            age = max(time.time() - utcparse(text).timestamp(), 0.0)
    depth_family, age_family = _depth_family(), _age_family()
    depth_family.add_metric([queue.name], int(depth))
    age_family.add_metric([queue.name], age)
    return [depth_family, age_family]


class OrderFigures(Collector):
    """Orders by status and the queue, read when scraped from the store and
    queue of the OrderService this process runs (none: no figures). What it
    reads is kept SCRAPE_CACHE_SECONDS, so several scrapers cost one query;
    a store that does not answer leaves its figures out of the scrape (and
    a warning in the log) rather than failing the page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (store, queue) of each OrderService running here, newest last.
        self.sources: list[tuple[OrderStore, Queue]] = []
        self._families: list[GaugeMetricFamily] = []
        self._read_at = float("-inf")

    def describe(self) -> list[GaugeMetricFamily]:
        return [_orders_family(), _depth_family(), _age_family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if not self.sources:
                return iter(())
            if time.monotonic() - self._read_at >= SCRAPE_CACHE_SECONDS:
                store, queue = self.sources[-1]
                self._families = [
                    *self._read("orders by status", orders_by_status, store),
                    *self._read("the order queue", queue_figures, queue),
                ]
                self._read_at = time.monotonic()
            return iter(self._families)

    @staticmethod
    def _read(
        what: str, read: Callable[[Any], list[GaugeMetricFamily]], source: Any
    ) -> list[GaugeMetricFamily]:
        try:
            return read(source)
        except Exception as exc:  # the rest of the page still serves
            log.warning("metrics: cannot read %s: %s", what, exc)
            return []


ORDER_FIGURES = OrderFigures()
REGISTRY.register(ORDER_FIGURES)


def report_orders(store: OrderStore, queue: Queue) -> Callable[[], None]:
    """This process's /metrics reports orders by status from ``store`` and
    the queue's figures; returns what stops it (a server that stops, once
    or more)."""
    source = (store, queue)
    ORDER_FIGURES.sources.append(source)

    def stop() -> None:
        if source in ORDER_FIGURES.sources:
            ORDER_FIGURES.sources.remove(source)

    return stop
