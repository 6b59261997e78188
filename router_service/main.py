"""Runs QuoteService: ``python -m router_service.main``."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from orderengine.mesh.auth import InternalTokenInterceptor
from orderengine.mesh.channels import QUOTE_SERVICE
from orderengine.mesh.serving import (
    Server,
    Service,
    configure_logging,
    create_server,
    serve_until_signal,
)
from orderengine.observability.metrics import serve_metrics
from orderengine.settings import Settings
from orderengine.v1 import quote_service_pb2_grpc
from router_service.quote_service import QuoteServicer


async def create_quote_server(address: str, settings: Settings) -> Server:
    # Internal: only the engine's own services (raises without INTERNAL_TOKEN).
    internal_only = InternalTokenInterceptor(settings.internal_token)
    # Closed by the server once it stops, or here if it never starts.
    async with AsyncExitStack() as opened:
        # Pool state is chain state: it lives in the chain's store.
        redis = await opened.enter_async_context(Redis.from_url(settings.chain_redis_url))
        server = await create_server(address, [
            Service(QUOTE_SERVICE, quote_service_pb2_grpc.add_QuoteServiceServicer_to_server,
                    QuoteServicer(redis)),
        ], [internal_only])
        server.owns(opened)
    return server


async def serve() -> None:
    settings = Settings()
    serve_metrics(settings, "QuoteService")
    server = await create_quote_server(settings.bind_address("QUOTE_SERVICE"), settings)
    print(f"QuoteService listening on port {server.port}", flush=True)
    await serve_until_signal(server, settings.shutdown_grace_seconds,
                             settings.shutdown_drain_seconds)


def main() -> None:
    configure_logging("quote-service")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
