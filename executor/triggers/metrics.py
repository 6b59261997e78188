"""The trigger part's figures (docs/operations.md, "Metrics"):

orderengine_waiting_orders{type}     waiting orders indexed, read at scrape
orderengine_triggers_total{type}     orders fired (a rate: triggers per second)
orderengine_trigger_lag_seconds      from the pool change to the order leaving OPEN"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orderengine.observability.buckets import seconds_buckets
from orderengine.store.models import StoredOrder

TRIGGERS = Counter("orderengine_triggers", "Waiting orders fired by their trigger", ["type"])
LAG = Histogram(
    "orderengine_trigger_lag_seconds",
    "From the pool change that crossed a waiting order to its leaving OPEN",
    buckets=seconds_buckets(0.001, 10.0),
)


def fired(rows: Sequence[StoredOrder], changed_at: float | None) -> None:
    now = time.time()
    for row in rows:
        TRIGGERS.labels(row.order_type).inc()
        if changed_at is not None:
            LAG.observe(max(now - changed_at, 0.0))


class _Waiting(Collector):
    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "orderengine_waiting_orders", "Waiting orders in the trigger index", labels=["type"]
        )
        try:
            for kind, value in self.count().items():
                family.add_metric([kind], value)
        except Exception:  # Redis away: no figure rather than a failed scrape
            pass
        yield family


def report_waiting(count: Callable[[], dict[str, int]]) -> None:
    REGISTRY.register(_Waiting(count))
