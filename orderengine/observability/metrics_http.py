"""Prometheus metrics of every HTTP request the gateway answers, named and
labelled as prometheus-fastapi-instrumentator names them, so that its
dashboards work:

    http_requests_total{handler,method,status}
    http_request_duration_seconds{handler,method}

``handler`` is the route's template (``/api/orders/{order_id}``, never an
order id), or ``none`` for a path no route serves; a method outside HTTP's
own is ``other``: what a client sends cannot make new series without end.
Recorded by the gateway's one request middleware
(orderengine.observability.http_requests), with the label children of each
route, method and status resolved once: that library's middleware would
cost each request a Request, a Response and a walk over every route."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from orderengine.observability.metrics_grpc import SECONDS_BUCKETS

UNROUTED = "none"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status code",
    ["handler", "method", "status"],
)
SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from an HTTP request's arrival to the end of its answer, by route template and method",
    ["handler", "method"],
    buckets=SECONDS_BUCKETS,
)

Children = tuple[Counter, Histogram]


class HttpFigures:
    """The label children of each (route, method, status) met so far."""

    def __init__(self) -> None:
        self._children: dict[tuple[str | None, str, int], Children] = {}

    def record(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """A request to ``route`` (its template; None when unrouted) answered ``status``."""
        if method not in METHODS:
            method = "other"
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            handler = route or UNROUTED
            children = self._children[key] = (
                REQUESTS.labels(handler, method, str(status)),
                SECONDS.labels(handler, method),
            )
        children[0].inc()
        children[1].observe(seconds)
