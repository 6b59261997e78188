"""Request ids, call logs and traces across the real engine: the gRPC
services in this process (their spans in memory), the worker and the
tracker as processes (their spans printed by the console exporter to a
file), Redis and the database between them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from orderengine import observability
from orderengine.mesh.auth import token_metadata
from orderengine.mesh.channels import channel
from orderengine.observability import handoffs, tracing
from orderengine.v1 import order_service_pb2, quote_service_pb2, quote_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN, OWNER, ROOT, Processes, Services
from tests.helpers import eventually, statuses, watch_all

SUBMIT = "orderengine.v1.OrderService/SubmitOrder"
GET_QUOTE = "orderengine.v1.QuoteService/GetQuote"
# The worker's calls: one of each a job, for all its orders.
BATCH_GET_QUOTES = "orderengine.v1.QuoteService/BatchGetQuotes"
BATCH_SUBMIT_SWAPS = "orderengine.v1.ExecutionService/BatchSubmitSwaps"
ORDER = {"inputToken": "SOL", "outputToken": "USDC", "amount": "10"}
EXPECTED = ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]

Span = dict[str, Any]


@pytest.fixture
def in_memory_spans(env: dict[str, str]) -> Iterator[InMemorySpanExporter]:
    """Tracing on for what this process serves and calls from now on.
    Request it before ``services``: servers take their interceptors when made."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "services-under-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP collector: keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.received.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_collector(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """Tracing on, as a deployment configures it: OTEL_TRACES_EXPORTER=otlp
    to a collector. Request it before ``services``."""
    collector = Collector()
    server = grpc.server(ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-eu-1")
    tracing.configure("order-service")
    yield collector
    tracing.shutdown()
    server.stop(None)


def start(processes: Processes, part: str, output: Path, **env: str) -> subprocess.Popen[bytes]:
    """An executor part as a process, its standard output (the console
    exporter's spans) going to ``output``."""
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "executor.main", part],
            cwd=ROOT,
            env={**processes.env, **env},
            stdout=out,
        )
    processes.running.append(process)
    return process


def stop(processes: Processes) -> None:
    processes.stop()  # SIGTERM: a worker finishes its job, the exporters flush
    processes.running.clear()


def printed_spans(*outputs: Path) -> list[Span]:
    """The spans the console exporter printed, one JSON line each."""
    return [
        json.loads(line)
        for output in outputs
        for line in output.read_text().splitlines()
        if line.startswith('{"name"')
    ]


def named(spans: list[Span], name: str, kind: str) -> list[Span]:
    return [s for s in spans if s["name"] == name and s["kind"] == f"SpanKind.{kind}"]


def one(spans: list[Span], name: str, kind: str) -> Span:
    found = named(spans, name, kind)
    assert len(found) == 1, (name, kind, [(s["name"], s["kind"]) for s in spans])
    return found[0]


def child_of(span: Span, parent: Span) -> bool:
    return span["parent_id"] == parent["context"]["span_id"]


def test_one_order_is_one_trace_from_the_gateway_to_the_chain(
    in_memory_spans: InMemorySpanExporter,
    services: Services,
    processes: Processes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="orderengine.calls")
    printed = {part: tmp_path / f"{part}.out" for part in ("worker", "tracker")}
    for part, output in printed.items():
        start(processes, part, output, OTEL_TRACES_EXPORTER="console")

    with TestClient(create_app(services.address("order"))) as client:
        reply = client.post(
            "/api/orders",
            json=ORDER,
            headers={"Authorization": f"Bearer {services.keys[OWNER]}", "X-Request-Id": "order-42"},
        )
    assert reply.status_code == 201, reply.text
    assert reply.headers["x-request-id"] == "order-42"
    order_id = reply.json()["orderId"]
    assert statuses(watch_all(services.orders(), order_id)) == EXPECTED
    stop(processes)

    spans = [json.loads(s.to_json()) for s in in_memory_spans.get_finished_spans()]
    spans += printed_spans(*printed.values())
    post = one(spans, "POST /api/orders", "SERVER")
    trace_id = post["context"]["trace_id"]
    trace = [s for s in spans if s["context"]["trace_id"] == trace_id]

    submit_client, submit = one(trace, SUBMIT, "CLIENT"), one(trace, SUBMIT, "SERVER")
    drive, confirm = one(trace, "drive order", "INTERNAL"), one(trace, "confirm order", "INTERNAL")
    # Quoted twice: its price impact checked at submit, its route by the worker.
    [checked_client] = [s for s in named(trace, BATCH_GET_QUOTES, "CLIENT") if child_of(s, submit)]
    [checked] = [s for s in named(trace, BATCH_GET_QUOTES, "SERVER") if child_of(s, checked_client)]
    [quote_client] = [s for s in named(trace, BATCH_GET_QUOTES, "CLIENT") if child_of(s, drive)]
    [quote] = [s for s in named(trace, BATCH_GET_QUOTES, "SERVER") if child_of(s, quote_client)]
    swap_client = one(trace, BATCH_SUBMIT_SWAPS, "CLIENT")
    swap = one(trace, BATCH_SUBMIT_SWAPS, "SERVER")
    # gateway -> OrderService -> (the queue) the worker's job -> QuoteService
    # and ExecutionService (a batch call of one order is that order's), then
    # the tracker's confirmation: one tree.
    assert post["parent_id"] is None
    assert child_of(submit_client, post) and child_of(submit, submit_client)
    assert child_of(drive, submit) and child_of(confirm, drive)
    assert child_of(quote_client, drive) and child_of(quote, quote_client)
    assert child_of(swap_client, drive) and child_of(swap, swap_client)
    assert drive["resource"]["attributes"][SERVICE_NAME] == "executor-worker"
    assert confirm["resource"]["attributes"][SERVICE_NAME] == "executor-tracker"
    for span in (submit, drive, confirm):
        assert span["attributes"]["order.id"] == order_id
    for span in (post, submit, checked, drive, quote, swap):
        assert span["attributes"]["request.id"] == "order-42"
    # The tracker's status polls are about many orders: no trace at all.
    assert not [s for s in spans if s["name"].endswith("/GetSignatureStatuses")]

    # The call log names the trace, to go from a line to its trace.
    [line] = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith(f"call=/{SUBMIT} ")
    ]
    assert f"order_id={order_id}" in line and f"trace_id={trace_id[2:]}" in line


@pytest.mark.parametrize(
    "request_ids", [("req-a", "req-b"), ("req-s", "req-s")], ids=["two-requests", "one-request"]
)
def test_a_batch_call_for_several_orders_is_linked_to_each_orders_trace(
    in_memory_spans: InMemorySpanExporter,
    services: Services,
    request_ids: tuple[str, str],
) -> None:
    """A job of several orders, each from a request of its own, quotes them
    in one call: no one order's. The call is the child of a span of its own
    (a trace of its own), linked to each order's span and each to it; it
    sends the request id the orders share, if they do."""
    order_ids = ["order-a", "order-b"]
    carried = {
        order_id: {"x-request-id": request_id}
        for order_id, request_id in zip(order_ids, request_ids, strict=True)
    }
    # As the worker's: this process's channel, made with tracing on.
    traced = channel(services.address("quote"), token_metadata(INTERNAL_TOKEN))
    services.channels.append(traced)  # closed with the services
    quotes = quote_service_pb2_grpc.QuoteServiceStub(traced)
    quote = quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="USDC", amount="1")
    with (
        handoffs.order_work("drive order", order_ids, carried),
        handoffs.within_orders("quote orders", order_ids),
    ):
        quotes.BatchGetQuotes(
            quote_service_pb2.BatchGetQuotesRequest(requests=[quote] * 2), timeout=10
        )

    spans = [json.loads(s.to_json()) for s in in_memory_spans.get_finished_spans()]
    batch = one(spans, "quote orders", "INTERNAL")
    client, server = one(spans, BATCH_GET_QUOTES, "CLIENT"), one(spans, BATCH_GET_QUOTES, "SERVER")
    drives = [s for s in spans if s["name"] == "drive order"]
    assert sorted(d["attributes"]["order.id"] for d in drives) == order_ids
    assert batch["parent_id"] is None and batch["attributes"]["order.count"] == 2
    assert child_of(client, batch) and child_of(server, client)
    assert all(d["context"]["trace_id"] != batch["context"]["trace_id"] for d in drives)

    def linked(span: Span) -> list[tuple[str, str]]:
        return [(link["context"]["trace_id"], link["context"]["span_id"]) for link in span["links"]]

    def ids(span: Span) -> tuple[str, str]:
        return span["context"]["trace_id"], span["context"]["span_id"]

    assert sorted(linked(batch)) == sorted(ids(d) for d in drives)
    assert all(linked(d) == [ids(batch)] for d in drives)
    if request_ids[0] == request_ids[1]:
        assert server["attributes"]["request.id"] == request_ids[0]
    else:  # neither's: the server made one
        assert server["attributes"]["request.id"] not in request_ids


def test_request_ids_cross_every_hop_and_untraced_calls_cost_no_span(
    services: Services,
    processes: Processes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tracing off (the default): the request id a client sends is in the
    call logs of OrderService and, across the queue, of QuoteService and
    ExecutionService; nothing prints a span or names a trace."""
    caplog.set_level(logging.DEBUG, logger="orderengine.calls")
    assert tracing.server_observers() == []
    assert observability.aio_client_interceptors() == []
    with channel(services.address("quote")) as plain:
        assert type(plain).__module__.startswith("grpc.")
    printed = {part: tmp_path / f"{part}.out" for part in ("worker", "tracker")}
    for part, output in printed.items():
        start(processes, part, output)

    stub = services.orders()
    quoted = stub.QuoteOrder(
        order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
        metadata=(("x-request-id", "quote-7"),),
        timeout=10,
    )
    assert quoted.route.amount_out
    reply = stub.SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount="10"),
        metadata=(("x-request-id", "order-7"),),
        timeout=10,
    )
    order_id = reply.order.order_id
    assert statuses(watch_all(stub, order_id)) == EXPECTED
    stop(processes)

    lines = [r.getMessage() for r in caplog.records]

    def logged(method: str, request_id: str) -> list[str]:
        return [
            line
            for line in lines
            if line.startswith(f"call=/{method} ") and f"request_id={request_id}" in line
        ]

    # OrderService -> QuoteService, on one call's behalf.
    assert logged("orderengine.v1.OrderService/QuoteOrder", "quote-7")
    assert logged(GET_QUOTE, "quote-7")
    # OrderService -> the queue -> the worker -> QuoteService, ExecutionService.
    [submitted] = logged(SUBMIT, "order-7")
    assert "code=OK" in submitted and f"order_id={order_id}" in submitted
    assert logged(BATCH_GET_QUOTES, "order-7") and logged(BATCH_SUBMIT_SWAPS, "order-7")
    assert not [line for line in lines if "trace_id=" in line]
    assert not printed_spans(*printed.values())


def test_the_gateway_answers_with_the_request_id_and_passes_it_on(
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="orderengine.calls")
    key = {"Authorization": f"Bearer {services.keys[OWNER]}"}
    with TestClient(create_app(services.address("order"))) as client:
        given = client.get("/api/orders", headers={**key, "X-Request-Id": "list-1"})
        made = client.get("/api/orders", headers=key)
        # Not an id to put in a log line: replaced.
        odd = client.get("/api/orders", headers={**key, "X-Request-Id": "a b\tc"})
        refused = client.get("/api/orders", headers={"X-Request-Id": "nokey-1"})
    assert given.headers["x-request-id"] == "list-1"
    assert len(made.headers["x-request-id"]) == 32
    assert odd.headers["x-request-id"] not in ("a b\tc", made.headers["x-request-id"])
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "nokey-1"

    lines = [r.getMessage() for r in caplog.records]
    for request_id in ("list-1", made.headers["x-request-id"]):
        # The gateway's line and OrderService's, under one id.
        assert [
            line
            for line in lines
            if line.startswith("http=GET /api/orders ") and f"request_id={request_id}" in line
        ]
        assert [
            line
            for line in lines
            if "OrderService/ListOrders" in line and f"request_id={request_id}" in line
        ]
    [failed] = [
        r
        for r in caplog.records
        if "request_id=nokey-1" in r.getMessage() and r.getMessage().startswith("call=")
    ]
    assert failed.levelno == logging.INFO and "code=UNAUTHENTICATED" in failed.getMessage()
    # A key never reaches a log line.
    assert not [line for line in lines if services.keys[OWNER] in line]


def test_with_tracing_off_no_tracer_and_no_tracing_interceptor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    tracing.configure("test")
    assert tracing.tracer() is None
    assert tracing.server_observers() == []
    assert tracing.aio_client_interceptors() == []
    plain = grpc.insecure_channel("127.0.0.1:9")
    assert tracing.traced_channel(plain) is plain
    plain.close()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        tracing.configure("test")
    assert tracing.tracer() is None


def test_a_failed_call_is_logged_at_info_with_its_code(
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orderengine.calls")
    with pytest.raises(grpc.RpcError) as failed:
        services.orders().GetOrder(
            order_service_pb2.GetOrderRequest(order_id="00000000-0000-4000-8000-000000000000"),
            metadata=(("x-request-id", "missing-1"),),
            timeout=10,
        )
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    # The client may have its answer a moment before the line is written.
    [record] = eventually(
        lambda: [r for r in caplog.records if "request_id=missing-1" in r.getMessage()]
    )
    assert record.levelno == logging.INFO
    assert "code=NOT_FOUND" in record.getMessage()
    assert "order_id=00000000-0000-4000-8000-000000000000" in record.getMessage()


def test_spans_reach_an_otlp_collector(otlp_collector: Collector, services: Services) -> None:
    services.orders().ListOrders(order_service_pb2.ListOrdersRequest(), timeout=10)
    tracing.shutdown()  # sends the batch
    [request] = otlp_collector.received
    [resource_spans] = request.resource_spans
    names = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert names[SERVICE_NAME] == "orders-eu-1"
    sent = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert "orderengine.v1.OrderService/ListOrders" in sent


@pytest.fixture
def no_global_propagator() -> Iterator[None]:
    """As OTEL_PROPAGATORS=none would leave it: a global propagator that
    sends nothing. Request it before ``in_memory_spans``."""
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([]))
    yield
    propagate.set_global_textmap(before)


def test_channels_send_the_w3c_header_the_servers_read(
    no_global_propagator: None, in_memory_spans: InMemorySpanExporter, services: Services
) -> None:
    """The channels' spans come from a library that injects with the global
    propagator; tracing sets it to the one the servers and the queue read."""
    # As the executor's: this process's channel, made with tracing on.
    traced = channel(services.address("quote"), token_metadata(INTERNAL_TOKEN))
    services.channels.append(traced)
    quote = quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="USDC", amount="1")
    quote_service_pb2_grpc.QuoteServiceStub(traced).GetQuote(quote, timeout=10)
    spans = [json.loads(s.to_json()) for s in in_memory_spans.get_finished_spans()]
    client, server = one(spans, GET_QUOTE, "CLIENT"), one(spans, GET_QUOTE, "SERVER")
    assert child_of(server, client)
