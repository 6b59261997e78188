"""Live figures: every process of the engine serves its Prometheus metrics
on ``/metrics`` (docs/operations.md, "Metrics").

Each process is a target of its own, RQ workers included, each on its own
port (METRICS_PORT): a worker is one process (SimpleWorker, no fork per
job), so prometheus-client's multiprocess mode, with its shared directory
to clean and no custom collectors, would buy nothing. The gateway serves
the same page on its HTTP port (``exposition()``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Gauge,
    generate_latest,
    start_http_server,
)

from orderengine.client.version import VERSION
from orderengine.settings import Settings

log = logging.getLogger(__name__)

PATH = "/metrics"

# Which version each process runs (orderengine_build_info{version="..."} 1):
# a dashboard can tell an upgrade half done.
BUILD_INFO = Gauge(
    "orderengine_build_info", "the version this process runs, as its label", ["version"]
)
BUILD_INFO.labels(version=VERSION).set(1)


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` HTTP server (a daemon thread)."""

    server: WSGIServer
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    @classmethod
    def start(cls, host: str, port: int) -> MetricsEndpoint:
        """Serves the process's metrics on ``host:port`` (0 picks a free port)."""
        if not 0 <= port <= 65535:
            raise ValueError(f"METRICS_PORT must be a port number (0 picks a free one), got {port}")
        try:
            server, _ = start_http_server(port, host)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
        # A forked child (RQ's scheduler) must not keep the port: it serves
        # nothing, and would hold the port after the worker is gone.
        os.register_at_fork(after_in_child=server.socket.close)
        return cls(server, host, int(server.server_port))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(settings: Settings, part: str) -> MetricsEndpoint | None:
    """Starts this process's ``/metrics`` as METRICS_PORT says (none when it
    is unset or "off") and logs where."""
    if settings.metrics_port is None:
        return None
    endpoint = MetricsEndpoint.start(settings.metrics_host, settings.metrics_port)
    log.info("%s: metrics on %s", part, endpoint.url)
    return endpoint


def exposition() -> tuple[bytes, str]:
    """The metrics page and its content type, for a server that has its own
    HTTP port (the gateway)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
