"""What every gRPC server of the engine has: grpc.aio, the standard health
service, server reflection, and a graceful stop on SIGTERM or Ctrl-C
(in-flight calls get the grace period, then the server ends)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orderengine import observability

log = logging.getLogger(__name__)

# Bounded so that one bad client cannot make a server buffer without end.
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


@dataclass
class Service:
    """One servicer: the generated ``add_XServicer_to_server`` and its name."""

    name: str
    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


@dataclass
class Server:
    server: grpc.aio.Server
    port: int
    health: Any  # grpc_health.v1.health.aio.HealthServicer (not in grpc-stubs)
    names: list[str] = field(default_factory=list)
    # Run before the server stops taking calls (ending open streams cleanly),
    # and after it has stopped (closing what the servicers hold).
    before_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self, grace: float | None) -> None:
        """Reports NOT_SERVING, lets calls finish within ``grace``, then
        closes what the servicers hold."""
        await self.health.enter_graceful_shutdown()
        for hook in self.before_stop:
            await hook()
        await self.server.stop(grace)
        for hook in self.on_stop:
            await hook()


async def create_server(address: str, services: Iterable[Service],
                        interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> Server:
    """A started server on ``address`` (port 0 picks a free one); ``interceptors``
    decide who may call (orderengine.auth)."""
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[
        *observability.server_interceptors(), *interceptors])
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for service in services:
        service.add(service.servicer, server)
        names.append(service.name)
        await health_servicer.set(service.name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                        server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    return Server(server, port, health_servicer, names)


async def serve_until_signal(server: Server, grace: float) -> None:
    """Runs until SIGTERM or SIGINT, then stops gracefully."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    waiting = asyncio.ensure_future(server.server.wait_for_termination())
    stop_signal = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({waiting, stop_signal}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping %s (grace %.1fs)", ", ".join(server.names), grace)
    await server.stop(grace)
    waiting.cancel()
    stop_signal.cancel()


def configure_logging() -> None:
    import os

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
