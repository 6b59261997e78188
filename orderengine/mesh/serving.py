"""What every gRPC server of the engine has: grpc.aio, the standard health
service, server reflection, and a graceful stop on SIGTERM or Ctrl-C
(clients are told NOT_SERVING and given a moment to move away, in-flight
calls get the grace period, then the server ends)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from orderengine.client.keepalive import KEEPALIVE
from orderengine.client.tls import tls
from orderengine.client.version import VERSION
from orderengine.mesh import auth
from orderengine.mesh.arrivals import Arrivals
from orderengine.mesh.channels import is_single_address
from orderengine.mesh.wrapped_handlers import wrapped
from orderengine.observability.logs import configure_logging, say
from orderengine.observability.metrics import serve_metrics
from orderengine.settings import Settings

log = logging.getLogger(__name__)

MAX_CONNECTION_AGE_MS = 300_000

SERVER_OPTIONS = [
    # Bounded so that one bad client cannot make a server buffer without end:
    # the largest request (256 signatures to GetSignatureStatuses) is ~23 KiB.
    ("grpc.max_receive_message_length", 64 * 1024),
    # What the engine's clients' pings must respect (orderengine.client.keepalive).
    *KEEPALIVE.server_options(),
    # gRPC core cancels new calls once 1,000 wait for the server to pick them
    # up; thousands of watchers opening at once (or reconnecting after a
    # replica stops) are such a burst, and each is cheap once running.
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 20_000),
    # ...and cancels a call that waited 30 s for it: 10,000 opening at once
    # take about that long. A caller's own deadline still bounds its wait.
    ("grpc.server_max_unrequested_time_in_server", 120),
    # A connection this old is told to go away (GOAWAY; calls and streams
    # under way go on to their end): its client connects again, and asks
    # DNS again, so replicas added since (a scale-out behind a dns:///
    # name) get their share of its calls.
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
]


class _Wrapping:
    """What a generated ``add_XServicer_to_server`` is given in place of the
    server: it registers each method's handler wrapped (wrapped_handlers),
    once per method."""

    def __init__(
        self, server: grpc.aio.Server, arrivals: Arrivals, guard: auth.Guard | None
    ) -> None:
        self._server = server
        self._arrivals = arrivals
        self._guard = guard
        self._slow_ms = Settings().call_log_slow_ms
        self._by_method: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        known = self._by_method.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        made = wrapped(method, handler, self._arrivals, self._guard, self._slow_ms)
        self._by_method[method] = (handler, made)
        return made

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            [_WrappedGeneric(found, self.wrap) for found in handlers]
        )

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(  # type: ignore[attr-defined]
            service,
            {name: self.wrap(f"/{service}/{name}", handler) for name, handler in handlers.items()},
        )


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose methods' handlers are wrapped. A method it
    does not serve (the caller's name to choose) is remembered nowhere."""

    def __init__(
        self,
        inner: grpc.GenericRpcHandler,
        wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler],
    ) -> None:
        self._inner = inner
        self._wrap = wrap

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        found = self._inner.service(handler_call_details)
        return None if found is None else self._wrap(handler_call_details.method, found)


@dataclass
class Service:
    """One servicer: the generated ``add_XServicer_to_server`` and its name."""

    name: str
    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


@dataclass
class Server:
    """A started server of the engine: the grpc.aio server inside, its
    port, its health, and what runs as it stops."""

    grpc_server: grpc.aio.Server
    port: int
    health: Any  # grpc_health.v1.health.aio.HealthServicer (not in grpc-stubs)
    names: list[str] = field(default_factory=list)
    arrivals: Arrivals = field(default_factory=Arrivals)
    # Run before the server stops taking calls (ending open streams cleanly),
    # and after it has stopped (closing what the servicers hold).
    before_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self, grace: float | None, drain: float = 0.0) -> None:
        """Reports NOT_SERVING, keeps taking calls for up to ``drain`` while
        they still come, lets calls finish within ``grace``, then closes
        what the servicers hold."""
        await self.health.enter_graceful_shutdown()
        # Calls a client sent before it heard NOT_SERVING are still on their
        # way. grpc.aio cancels a call that reaches gRPC core as the server
        # stops, before the application picked it up (grpc/grpc#41785), so
        # the client would see CANCELLED, which it must not retry.
        await self.arrivals.quiet(drain)
        for hook in self.before_stop:
            await hook()
        await self.grpc_server.stop(grace)
        for hook in self.on_stop:
            await hook()

    def owns(self, opened: AsyncExitStack) -> None:
        """Takes over what ``opened`` holds, to close once the server has
        stopped. A service's factory opens into the stack so that, if the
        server never starts, leaving the stack closes what was opened."""
        self.on_stop.append(opened.pop_all().aclose)


async def create_server(
    address: str, services: Iterable[Service], guard: auth.Guard | None = None
) -> Server:
    """A started server on ``address`` (port 0 picks a free one), with TLS
    when TLS_CERT_FILE and TLS_KEY_FILE are set; ``guard`` decides who may
    call (orderengine.mesh.auth)."""
    if not is_single_address(address):
        # Clients may name every replica; each server listens on one.
        raise ValueError(
            f"cannot listen on {address!r}: it names several replicas or a "
            "resolver target; set <SERVICE>_BIND to this replica's HOST:PORT"
        )
    credentials = tls().server_credentials()  # a bad TLS_* setting fails here, at start
    arrivals = Arrivals()
    # No interceptor: every handler is wrapped as it is registered.
    server = grpc.aio.server(options=SERVER_OPTIONS)
    try:
        return await _start(server, address, credentials, services, arrivals, guard)
    except BaseException:
        # Not started (a busy port, say): what gRPC core holds for it goes now.
        await server.stop(None)
        raise


async def _start(
    server: grpc.aio.Server,
    address: str,
    credentials: grpc.ServerCredentials | None,
    services: Iterable[Service],
    arrivals: Arrivals,
    guard: auth.Guard | None,
) -> Server:
    wrapping: Any = _Wrapping(server, arrivals, guard)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, wrapping)
    names = []
    for service in services:
        service.add(service.servicer, wrapping)
        names.append(service.name)
        await health_servicer.set(service.name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # What enable_server_reflection adds to a grpc.aio server, here wrapped too.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(  # type: ignore[attr-defined]
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        ),
        wrapping,
    )
    port = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    probes = await _probe_server(address, health_servicer, Settings().health_port)
    try:
        await server.start()
    except BaseException:
        if probes is not None:
            await probes.stop(None)
        raise
    started = Server(server, port, health_servicer, names, arrivals)
    if probes is not None:
        # After the server: probes see NOT_SERVING while it drains.
        started.on_stop.insert(0, lambda: probes.stop(None))
    return started


async def _probe_server(
    address: str, health_servicer: Any, port: int | None
) -> grpc.aio.Server | None:
    """HEALTH_PORT: the same health service, on its own plaintext port of
    ``address``'s host, for probes that cannot speak TLS. Nothing else is
    served there, so nothing that needs TLS or a key is exposed."""
    if port is None:
        return None
    # Not shared (gRPC shares a port by default): a second server on this
    # host given the same port must fail, not take half the probes.
    probes = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probes)
    where = f"{address.rpartition(':')[0]}:{port}"
    try:
        if not probes.add_insecure_port(where):
            raise RuntimeError("Failed to bind")
        await probes.start()
    except BaseException as exc:
        await probes.stop(None)
        if isinstance(exc, RuntimeError):
            raise OSError(f"HEALTH_PORT: cannot listen on {where} ({exc})") from None
        raise
    return probes


CreateServer = Callable[[str, Settings], Awaitable[Server]]


async def serve(name: str, create: CreateServer, address_setting: str) -> None:
    """Creates the server on ``<address_setting>_BIND`` (else its address),
    says so on stdout, and serves until SIGTERM or SIGINT."""
    settings = Settings()
    server = await create(settings.bind_address(address_setting), settings)
    say(f"{name} {VERSION} listening on port {server.port}")
    await serve_until_signal(
        server, settings.shutdown_grace_seconds, settings.shutdown_drain_seconds
    )


def run(name: str, create: CreateServer, address_setting: str, process: str) -> None:
    """A service's main: logs and traces as ``process``, serves /metrics
    (METRICS_PORT), then ``serve``."""
    configure_logging(process)
    auth.exit_on_placeholder_token(process)
    serve_metrics(Settings(), name)
    asyncio.run(serve(name, create, address_setting))


async def serve_until_signal(server: Server, grace: float, drain: float = 0.0) -> None:
    """Runs until SIGTERM or SIGINT, then stops gracefully (Server.stop)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    waiting = asyncio.ensure_future(server.grpc_server.wait_for_termination())
    stop_signal = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({waiting, stop_signal}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping %s (drain up to %.1fs, grace %.1fs)", ", ".join(server.names), drain, grace)
    await server.stop(grace, drain)
    waiting.cancel()
    stop_signal.cancel()
