"""Reading the engine's /metrics pages back, as Prometheus would: the
benchmark's account of where an order's time goes, and the tests'."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]

# Where an order's time goes, in order: each stage's histogram and label.
STAGES = (
    ("queue wait", "orderengine_order_status_seconds", ("status", "PENDING")),
    ("routing (quote)", "orderengine_order_status_seconds", ("status", "ROUTING")),
    ("submit", "orderengine_order_status_seconds", ("status", "ROUTED")),
    ("landing", "orderengine_execution_seconds", ("commitment", "processed")),
    # Submission to confirmed, less landing: confirmation itself.
    ("confirmation", "orderengine_execution_seconds", ("commitment", "confirmed")),
)


@dataclass
class Samples:
    """Every sample of one or more pages, summed over pages by name and labels."""

    values: dict[tuple[str, Labels], float]

    def get(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, have), value in self.values.items()
            if sample == name and wanted <= have
        )

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """The samples named ``name`` whose labels include ``labels``, summed
        by the value of ``label``."""
        wanted = set(labels.items())
        found: dict[str, float] = defaultdict(float)
        for (sample, have), value in self.values.items():
            if sample == name and wanted <= have:
                found[dict(have).get(label, "")] += value
        return dict(found)

    def mean(self, histogram: str, **labels: str) -> float | None:
        """The mean of a histogram's observations (None: none yet)."""
        count = self.get(f"{histogram}_count", **labels)
        return self.get(f"{histogram}_sum", **labels) / count if count else None


def parse(pages: Iterable[str]) -> Samples:
    values: dict[tuple[str, Labels], float] = defaultdict(float)
    for page in pages:
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                values[(sample.name, frozenset(sample.labels.items()))] += sample.value
    return Samples(dict(values))


def fetch(url: str, timeout: float = 5.0) -> str:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with direct.open(url, timeout=timeout) as reply:
        return str(reply.read().decode())


def scrape(urls: Iterable[str]) -> Samples:
    """The pages at ``urls``, summed (one figure across every process)."""
    return parse(fetch(url) for url in urls)


def time_breakdown(samples: Samples) -> dict[str, float | None]:
    """Seconds an order spends, on average, in each stage (None: no order
    has passed it). Landing and confirmation are swaps' figures: a retried
    order has several."""
    means = {stage: samples.mean(name, **dict([label])) for stage, name, label in STAGES}
    confirmed, landed = means["confirmation"], means["landing"]
    means["confirmation"] = (
        max(confirmed - landed, 0.0) if confirmed is not None and landed is not None else None
    )
    return means
