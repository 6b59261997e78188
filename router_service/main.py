"""Runs QuoteService: ``python -m router_service.main``."""

from __future__ import annotations

from contextlib import AsyncExitStack

from orderengine.market import launches
from orderengine.mesh.auth import InternalTokenGuard
from orderengine.mesh.channels import QUOTE_SERVICE
from orderengine.mesh.redis_clients import async_redis
from orderengine.mesh.serving import Server, Service, create_server, run
from orderengine.settings import Settings
from orderengine.v1 import quote_service_pb2_grpc
from router_service.quote_service import QuoteServicer


async def create_quote_server(address: str, settings: Settings) -> Server:
    # Internal: only the engine's own services (raises without INTERNAL_TOKEN).
    internal_only = InternalTokenGuard(settings.internal_token)
    # Closed by the server once it stops, or here if it never starts.
    async with AsyncExitStack() as opened:
        # Pool state is chain state: it lives in the chain's store.
        redis = await opened.enter_async_context(async_redis(settings.chain_redis_url))
        launches.install(settings.chain_redis_url)
        server = await create_server(
            address,
            [
                Service(
                    QUOTE_SERVICE,
                    quote_service_pb2_grpc.add_QuoteServiceServicer_to_server,
                    QuoteServicer(redis, settings.max_price_impact_pct),
                ),
            ],
            internal_only,
        )
        server.owns(opened)
    return server


def main() -> None:
    run("QuoteService", create_quote_server, "QUOTE_SERVICE", "quote-service")


if __name__ == "__main__":
    main()
