"""Per-method Prometheus metrics of every gRPC call, named and labelled as
go-grpc-prometheus names them, so that its dashboards and alerts work:

    grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
    grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}
    grpc_client_handled_total / grpc_client_handling_seconds (unary calls)

Cheap on the hot path: the label children of a method are resolved once
and kept; a call then costs a counter increment and a histogram
observation."""

from __future__ import annotations

import time
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from orderengine.observability.buckets import seconds_buckets

# Calls here take from a fraction of a millisecond (a cached read) to
# seconds (a stream, a slow database): finer than Prometheus' defaults below.
SECONDS_BUCKETS = seconds_buckets(0.0005, 10.0)
LABELS = ("grpc_type", "grpc_service", "grpc_method")


def _go_name(code: grpc.StatusCode) -> str:
    """The code as Go's codes.Code.String() spells it ("InvalidArgument")."""
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "OK" if code is grpc.StatusCode.OK else code.name.title().replace("_", "")


CODE_NAMES = {code: _go_name(code) for code in grpc.StatusCode}

SERVER_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and status code",
    [*LABELS, "grpc_code"],
)
SERVER_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's arrival to its answer on the server (for a "
    "stream, until it ends), by method",
    LABELS,
    buckets=SECONDS_BUCKETS,
)
CLIENT_HANDLED = Counter(
    "grpc_client_handled_total",
    "Unary RPCs this process made, completed, by method and status code",
    [*LABELS, "grpc_code"],
)
CLIENT_SECONDS = Histogram(
    "grpc_client_handling_seconds",
    "Time a unary RPC this process made took until its answer, by method",
    LABELS,
    buckets=SECONDS_BUCKETS,
)


class _MethodFigures:
    """One method's label children, resolved once."""

    __slots__ = ("_handled", "_handled_by_code", "_labels", "_seconds")

    def __init__(self, handled: Counter, seconds: Histogram, method: str, kind: str) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self._labels = (kind, service, name)
        self._handled = handled
        self._handled_by_code: dict[grpc.StatusCode, Any] = {}
        self._seconds = seconds.labels(*self._labels)

    def done(self, code: grpc.StatusCode, began: float) -> None:
        self.record(code, time.perf_counter() - began)

    def record(self, code: grpc.StatusCode, seconds: float) -> None:
        self._seconds.observe(seconds)
        child = self._handled_by_code.get(code)
        if child is None:
            child = self._handled_by_code[code] = self._handled.labels(
                *self._labels, CODE_NAMES[code]
            )
        child.inc()


def _kind(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


# -- servers ------------------------------------------------------------------


class ServerMetrics:
    """Counts and times every call a grpc.aio server takes, by method and code.
    Reported around the access checks, so that calls refused before their
    servicer (no API key) count too."""

    def __init__(self) -> None:
        self._methods: dict[str, _MethodFigures] = {}

    def figures(self, method: str, handler: grpc.RpcMethodHandler) -> _MethodFigures:
        # (An unknown method has no handler and never comes here: its name is
        # the caller's to choose, and no label may be.)
        figures = self._methods.get(method)
        if figures is None:
            figures = self._methods[method] = _MethodFigures(
                SERVER_HANDLED,
                SERVER_SECONDS,
                method,
                _kind(handler.request_streaming, handler.response_streaming),
            )
        return figures


# -- clients ------------------------------------------------------------------


class ClientMethods:
    """The label children of each unary method this process calls (the
    channels' side: orderengine.mesh.client_calls)."""

    def __init__(self) -> None:
        self._methods: dict[str | bytes, _MethodFigures] = {}

    def figures(self, method: str | bytes) -> _MethodFigures:
        figures = self._methods.get(method)
        if figures is None:
            name = method.decode() if isinstance(method, bytes) else method
            figures = self._methods[method] = _MethodFigures(
                CLIENT_HANDLED, CLIENT_SECONDS, name, "unary"
            )
        return figures


# One of each per process: their method caches are shared by every server
# and channel the process opens.
SERVER_METRICS = ServerMetrics()
CLIENT_METHODS = ClientMethods()
