"""Calls between services as the channels make them: addresses naming
several replicas, balancing by health, retries through gRPC's service
config, deadlines that end calls (and the calls they made) on time, and
keepalive that the servers accept."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from executor.main import create_execution_server
from order_service.main import create_order_server
from orderengine.client.dialing import (
    ORDER_SERVICE,
    QUOTE_SERVICE,
    RETRY_POLICY,
    dial,
    parse_target,
)
from orderengine.client.keepalive import KEEPALIVE, KeepalivePolicy
from orderengine.local.ports import free_port
from orderengine.mesh import serving
from orderengine.mesh.auth import key_metadata, token_metadata
from orderengine.mesh.channels import channel
from orderengine.mesh.serving import SERVER_OPTIONS, Server, Service, create_server
from orderengine.settings import Settings
from orderengine.store.orders import OrderStore
from orderengine.v1 import (
    market_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)
from tests.conftest import INTERNAL_TOKEN, OWNER, LoopThread
from tests.helpers import eventually, fund

QUOTE = quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="USDC", amount="1")


@dataclass
class FakeQuotes(quote_service_pb2_grpc.QuoteServiceServicer):
    """A QuoteService replica that names itself in its answer, and can be
    made slow or failing; it records what its calls saw."""

    name: str
    delay: float = 0.0
    failures: int = 0  # the first this many calls answer UNAVAILABLE
    calls: int = 0
    cancelled: int = 0
    time_remaining: list[float | None] = field(default_factory=list)

    async def GetQuote(
        self, request: quote_service_pb2.GetQuoteRequest, context: grpc.aio.ServicerContext
    ) -> quote_service_pb2.GetQuoteResponse:
        self.calls += 1
        self.time_remaining.append(context.time_remaining())
        if self.calls <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return quote_service_pb2.GetQuoteResponse(quotes=[market_pb2.VenueQuote(pool_id=self.name)])

    async def BatchGetQuotes(
        self,
        request: quote_service_pb2.BatchGetQuotesRequest,
        context: grpc.aio.ServicerContext,
    ) -> quote_service_pb2.BatchGetQuotesResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "these tests ask GetQuote only")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


@pytest.fixture
def start(loop: LoopThread) -> Iterator[Any]:
    """Starts FakeQuotes replicas: start(replica) -> Server; stopped after."""
    servers: list[Server] = []

    def run(
        servicer: Any,
        add: Any = quote_service_pb2_grpc.add_QuoteServiceServicer_to_server,
        name: str = QUOTE_SERVICE,
    ) -> Server:
        server = loop.run(create_server("127.0.0.1:0", [Service(name, add, servicer)]))
        servers.append(server)
        return server

    yield run
    for server in servers:
        loop.run(server.stop(0))


def quotes_channel(address: str) -> grpc.Channel:
    return channel(address, token_metadata(INTERNAL_TOKEN), service=QUOTE_SERVICE)


def who(stub: quote_service_pb2_grpc.QuoteServiceStub) -> str:
    return stub.GetQuote(QUOTE, timeout=5).quotes[0].pool_id


# -- addresses and replicas -------------------------------------------------


@pytest.mark.parametrize(
    ("address", "target", "host"),
    [
        ("127.0.0.1:50052", "127.0.0.1:50052", "127.0.0.1"),
        ("quotes.internal:50052", "quotes.internal:50052", "quotes.internal"),
        ("127.0.0.1:1, 127.0.0.2:2", "ipv4:127.0.0.1:1,127.0.0.2:2", None),
        ("localhost:1,localhost:2", "ipv4:127.0.0.1:1,127.0.0.1:2", "localhost"),
        ("[::1]:1,[::1]:2", "ipv6:[::1]:1,[::1]:2", "::1"),
        ("dns:///quotes.internal:50052", "dns:///quotes.internal:50052", "quotes.internal"),
    ],
)
def test_address_forms_become_grpc_targets(address: str, target: str, host: str | None) -> None:
    parsed = parse_target(address)
    assert (parsed.target, parsed.host) == (target, host)


@pytest.mark.parametrize("address", ["", "127.0.0.1:1,nonsense", "127.0.0.1:1,host:port"])
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError):
        parse_target(address)


def test_a_server_never_listens_on_a_list(loop: LoopThread) -> None:
    with pytest.raises(ValueError, match="_BIND"):
        loop.run(create_server("127.0.0.1:1,127.0.0.1:2", []))


def test_calls_go_round_the_healthy_replicas(start: Any, loop: LoopThread) -> None:
    a, b = FakeQuotes("a"), FakeQuotes("b")
    server_a, server_b = start(a), start(b)
    with quotes_channel(f"127.0.0.1:{server_a.port},localhost:{server_b.port}") as ch:
        stub = quote_service_pb2_grpc.QuoteServiceStub(ch)
        eventually(lambda: {who(stub) for _ in range(6)} == {"a", "b"} or None, timeout=5)
        # A replica that says NOT_SERVING gets no more calls.
        loop.run(server_a.health.set(QUOTE_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING))
        eventually(lambda: {who(stub) for _ in range(6)} == {"b"} or None, timeout=5)
        loop.run(server_a.health.set(QUOTE_SERVICE, health_pb2.HealthCheckResponse.SERVING))
        eventually(lambda: {who(stub) for _ in range(6)} == {"a", "b"} or None, timeout=5)
        # One stopping gracefully: every call still answered, by the other.
        # (Without the drain about one run in ten saw a call CANCELLED.)
        stopping = threading.Thread(target=lambda: loop.run(server_b.stop(1.0, drain=2.0)))
        stopping.start()
        answered = [who(stub) for _ in range(50)]
        stopping.join()
        answered += [who(stub) for _ in range(10)]
        assert answered[-10:] == ["a"] * 10


def test_a_stopping_replica_drains_while_calls_still_come(
    start: Any, loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller, the server and the stop share one process: on a busy
    # machine its calls can be 0.1 s apart, which would end the drain.
    monkeypatch.setattr("orderengine.mesh.arrivals.QUIET_SECONDS", 0.5)
    replica = FakeQuotes("only")
    server = start(replica)
    # A caller that never asks the server's health: it keeps calling.
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = quote_service_pb2_grpc.QuoteServiceStub(ch)
        who(stub)
        stop_at: list[float] = []
        answered_after_stop = 0

        def stop() -> None:
            stop_at.append(time.monotonic())
            loop.run(server.stop(1.0, drain=1.0))
            stop_at.append(time.monotonic())

        stopping = threading.Thread(target=stop)
        stopping.start()
        while stopping.is_alive():
            try:
                who(stub)
            except grpc.RpcError:
                break  # the drain is over and the server has stopped
            if stop_at:
                answered_after_stop += 1
        stopping.join()
    assert stop_at[1] - stop_at[0] >= 1.0
    assert answered_after_stop > 10


def test_the_drain_ends_once_calls_stop_coming(start: Any, loop: LoopThread) -> None:
    server = start(FakeQuotes("only"))
    with quotes_channel(f"127.0.0.1:{server.port}") as ch:
        who(quote_service_pb2_grpc.QuoteServiceStub(ch))
    began = time.monotonic()
    loop.run(server.stop(1.0, drain=10.0))
    assert time.monotonic() - began < 2.0


# -- retries ----------------------------------------------------------------


def test_idempotent_calls_are_retried_on_unavailable(start: Any) -> None:
    flaky = FakeQuotes("flaky", failures=2)
    server = start(flaky)
    with quotes_channel(f"127.0.0.1:{server.port}") as ch:
        assert who(quote_service_pb2_grpc.QuoteServiceStub(ch)) == "flaky"
    assert flaky.calls == 3


class DownOrders(order_service_pb2_grpc.OrderServiceServicer):
    """An OrderService whose store is down: every call UNAVAILABLE."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def _down(self, name: str, context: grpc.aio.ServicerContext) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")

    async def SubmitOrder(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._down("SubmitOrder", context)

    async def GetOrder(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._down("GetOrder", context)


def test_submit_order_is_not_retried_but_reads_are(start: Any) -> None:
    down = DownOrders()  # type: ignore[abstract]  # the others: UNIMPLEMENTED
    server = start(down, order_service_pb2_grpc.add_OrderServiceServicer_to_server, ORDER_SERVICE)
    with channel(f"127.0.0.1:{server.port}", service=ORDER_SERVICE) as ch:
        stub = order_service_pb2_grpc.OrderServiceStub(ch)
        for call in (
            lambda: stub.SubmitOrder(order_service_pb2.SubmitOrderRequest(), timeout=5),
            lambda: stub.GetOrder(order_service_pb2.GetOrderRequest(), timeout=5),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # Without a client_order_id a second SubmitOrder could store a second order.
    assert down.calls == {"SubmitOrder": 1, "GetOrder": RETRY_POLICY["maxAttempts"]}


# -- deadlines --------------------------------------------------------------


@contextmanager
def order_service(
    loop: LoopThread, api_key: str
) -> Iterator[order_service_pb2_grpc.OrderServiceStub]:
    """A real OrderService on a free port, and a stub calling it as ``api_key``'s owner."""
    orders = loop.run(create_order_server("127.0.0.1:0", Settings()))
    try:
        with channel(
            f"127.0.0.1:{orders.port}", key_metadata(api_key), service=ORDER_SERVICE
        ) as ch:
            yield order_service_pb2_grpc.OrderServiceStub(ch)
    finally:
        loop.run(orders.stop(0))


def deadline_exceeded(call: Any) -> float:
    """How long ``call`` took to end with DEADLINE_EXCEEDED."""
    began = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, caught.value
    return time.monotonic() - began


def test_a_slow_peer_ends_at_the_callers_deadline(start: Any) -> None:
    slow = FakeQuotes("slow", delay=30)
    server = start(slow)
    with quotes_channel(f"127.0.0.1:{server.port}") as ch:
        stub = quote_service_pb2_grpc.QuoteServiceStub(ch)
        took = deadline_exceeded(lambda: stub.GetQuote(QUOTE, timeout=0.5))
    assert 0.45 < took < 1.5
    # The server saw the deadline and stopped working for nobody.
    assert slow.time_remaining[0] is not None and slow.time_remaining[0] <= 0.5
    eventually(lambda: slow.cancelled == 1 or None, timeout=3)


def test_quote_order_passes_its_deadline_on(
    start: Any, loop: LoopThread, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = FakeQuotes("slow", delay=30)
    quotes = start(slow)
    monkeypatch.setenv("QUOTE_SERVICE_ADDRESS", f"127.0.0.1:{quotes.port}")
    with order_service(loop, env["ORDERENGINE_API_KEY"]) as stub:
        took = deadline_exceeded(
            lambda: stub.QuoteOrder(
                order_service_pb2.QuoteOrderRequest(
                    input_token="SOL", output_token="USDC", amount="1"
                ),
                timeout=0.6,
            )
        )
    assert 0.55 < took < 1.5
    # The inner call had what was left of the outer one (not QuoteOrder's
    # own 5 s), and ended with it.
    remaining = slow.time_remaining[0]
    assert remaining is not None and remaining <= 0.6
    eventually(lambda: slow.cancelled == 1 or None, timeout=3)


def test_nothing_waits_forever_on_a_dead_peer() -> None:
    # Nothing listens: refused at once.
    with quotes_channel(f"127.0.0.1:{free_port()}") as ch:
        began = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            quote_service_pb2_grpc.QuoteServiceStub(ch).GetQuote(QUOTE, timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - began < 3
    # A peer that takes the connection and never says a word: over by the
    # deadline (UNAVAILABLE when gRPC gives up on the handshake first).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with quotes_channel(f"127.0.0.1:{silent.getsockname()[1]}") as ch:
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                quote_service_pb2_grpc.QuoteServiceStub(ch).GetQuote(QUOTE, timeout=1)
            assert caught.value.code() in (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.UNAVAILABLE,
            )
            assert time.monotonic() - began < 1.5


def test_submit_order_does_not_wait_past_its_deadline(
    env: dict[str, str],
    loop: LoopThread,
    store: OrderStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write = OrderStore.submit_many

    def slow_write(self: OrderStore, news: Any) -> Any:
        time.sleep(0.8)
        return write(self, news)

    monkeypatch.setattr(OrderStore, "submit_many", slow_write)
    # The chain, for the submit's look at the owner's wallet.
    chain = loop.run(create_execution_server("127.0.0.1:0", Settings()))
    monkeypatch.setenv("EXECUTION_SERVICE_ADDRESS", f"127.0.0.1:{chain.port}")
    fund(env["REDIS_URL"], OWNER)
    # No QuoteService here: SubmitOrder asks it nothing (no price impact limit).
    monkeypatch.setenv("MAX_PRICE_IMPACT_PCT", "100")
    try:
        with order_service(loop, env["ORDERENGINE_API_KEY"]) as stub:

            def submit(client_order_id: str, timeout: float) -> Any:
                return stub.SubmitOrder(
                    order_service_pb2.SubmitOrderRequest(
                        input_token="SOL",
                        output_token="USDC",
                        amount="1",
                        client_order_id=client_order_id,
                    ),
                    timeout=timeout,
                )

            # Its write begins at once and outlives the deadline...
            first = threading.Thread(
                target=lambda: deadline_exceeded(lambda: submit("written", 0.3))
            )
            first.start()
            time.sleep(0.1)
            # ...this one waits for the next batch, and stops waiting on time.
            assert deadline_exceeded(lambda: submit("dropped", 0.3)) < 0.6
            first.join()
            time.sleep(1.0)  # the first batch done
            stored = store.list_page(OWNER, 10)[0]
            assert [row.client_order_id for row in stored] == ["written"]
            # The client that timed out finds its order by its client_order_id.
            again = submit("written", 10)
            assert again.already_exists and again.order.order_id == stored[0].order_id
            assert not submit("dropped", 10).already_exists
    finally:
        loop.run(chain.stop(0))


# -- keepalive --------------------------------------------------------------


def test_clients_ping_no_faster_than_servers_allow() -> None:
    client = dict(dial("127.0.0.1:1", QUOTE_SERVICE).options)
    server = dict(SERVER_OPTIONS)
    assert (
        client["grpc.keepalive_time_ms"] >= server["grpc.http2.min_ping_interval_without_data_ms"]
    )
    assert client["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.http2.max_ping_strikes"] > 0
    # A dead peer is noticed within seconds, not minutes.
    assert client["grpc.keepalive_time_ms"] + client["grpc.keepalive_timeout_ms"] <= 20_000
    with pytest.raises(ValueError):
        KeepalivePolicy(client_ping_ms=1_000, server_min_ping_interval_ms=5_000)


def idle_stream_through(
    loop: LoopThread, server_policy: KeepalivePolicy, client_policy: KeepalivePolicy, idle: float
) -> list[bytes]:
    """What a client reads from a stream that idles ``idle`` seconds between
    two messages, both sides using their policy's options."""

    async def idle_stream(
        request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(idle)
        yield b"second"

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=server_policy.server_options())
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "test.Idle", {"Watch": grpc.unary_stream_rpc_method_handler(idle_stream)}
                )
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop.run(start())
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=client_policy.client_options()
        ) as ch:
            watch = ch.unary_stream(
                "/test.Idle/Watch", request_serializer=None, response_deserializer=None
            )
            return list(watch(b"", timeout=10))
    finally:
        loop.run(server.stop(0))


# The engine's policy, ten times faster, so that an idle stream sees several
# pings within a test.
FAST = KeepalivePolicy(
    client_ping_ms=KEEPALIVE.client_ping_ms // 10,
    ping_timeout_ms=KEEPALIVE.ping_timeout_ms // 10,
    server_min_ping_interval_ms=KEEPALIVE.server_min_ping_interval_ms // 10,
    server_ping_ms=KEEPALIVE.server_ping_ms // 10,
)


def test_an_idle_stream_survives_the_pings(loop: LoopThread) -> None:
    assert idle_stream_through(loop, FAST, FAST, idle=2.5) == [b"first", b"second"]


def test_a_client_pinging_too_often_is_cut_off(loop: LoopThread) -> None:
    # What the agreement prevents: the server's GOAWAY ends the stream. (One
    # strike forgiven here, to see it within a test: gRPC's clients ping
    # at most once a second.)
    strict = KeepalivePolicy(server_max_ping_strikes=1)
    eager = KeepalivePolicy(client_ping_ms=1_000, server_min_ping_interval_ms=1_000)
    with pytest.raises(grpc.RpcError) as caught:
        idle_stream_through(loop, strict, eager, idle=3.5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_an_aged_connection_is_replaced_while_its_stream_goes_on(
    loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server tells a connection past its age to go away: the client
    connects again (and asks DNS again, which is how a dns:/// client finds
    the replicas of a scale-out), while a stream open on it runs to its end."""
    aged = [
        (name, 300 if name == "grpc.max_connection_age_ms" else value)
        for name, value in SERVER_OPTIONS
    ]
    assert aged != SERVER_OPTIONS
    monkeypatch.setattr(serving, "SERVER_OPTIONS", aged)
    server = loop.run(create_server("127.0.0.1:0", []))
    states: list[grpc.ChannelConnectivity] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            ch.subscribe(states.append, try_to_connect=False)
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=20)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            time.sleep(1.0)  # past the age: the server has sent its GOAWAY
            loop.run(server.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING))
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            # The old connection closes once its stream is done...
            ready = states.index(grpc.ChannelConnectivity.READY)
            eventually(lambda: grpc.ChannelConnectivity.IDLE in states[ready:], timeout=10)
            idle = states.index(grpc.ChannelConnectivity.IDLE, ready)
            # ...and the next call opens a new one. (grpc reports connectivity
            # on a thread of its own, so the READY may follow the answer.)
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            eventually(lambda: grpc.ChannelConnectivity.READY in states[idle:], timeout=10)
    finally:
        loop.run(server.stop(0))
