"""Histogram bounds in seconds, 1-2.5-5 in every decade, as Prometheus'
own defaults run."""

from __future__ import annotations


def seconds_buckets(low: float, high: float) -> tuple[float, ...]:
    """Every bound of 1, 2.5 and 5 times a power of ten from ``low`` to
    ``high``, both included, each exactly the float its decimal names."""
    bounds = (float(f"{m}e{e}") for e in range(-6, 6) for m in ("1", "2.5", "5"))
    return tuple(b for b in bounds if low <= b <= high)
