"""Runs OrderService: ``python -m order_service.main``."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

from redis import Redis

from order_service.histories import HistoryReads
from order_service.order_service import OrderServicer
from order_service.rate_limit import TokenBuckets
from order_service.submissions import Submissions
from order_service.wallets import Wallets
from order_service.watch_hub import WatchHub
from orderengine.market import launches
from orderengine.mesh.auth import ApiKeyGuard, token_metadata
from orderengine.mesh.channels import (
    EXECUTION_SERVICE,
    ORDER_SERVICE,
    QUOTE_SERVICE,
    aio_channel,
)
from orderengine.mesh.redis_clients import async_redis
from orderengine.mesh.serving import Server, Service, create_server, run
from orderengine.observability.metrics_orders import report_orders
from orderengine.order_queue import order_queue
from orderengine.settings import Settings
from orderengine.store.api_keys import ApiKeys, KeyCache
from orderengine.store.database import create_database_engine
from orderengine.store.orders import OrderStore
from orderengine.v1 import (
    execution_service_pb2_grpc,
    order_service_pb2_grpc,
    quote_service_pb2_grpc,
)


async def create_order_server(address: str, settings: Settings) -> Server:
    # Store and queue calls run here; sized for the database pool.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, "order-service"))
    # Closed in reverse order, by the server once it stops, or here at once
    # if it never starts (a busy port, a bad TLS setting).
    async with AsyncExitStack() as opened:
        engine = create_database_engine(settings.database_url)
        opened.callback(engine.dispose)
        redis = opened.enter_context(Redis.from_url(settings.redis_url))
        # The chain's Redis, where the pools are: QuoteOrder's pair price.
        market = await opened.enter_async_context(async_redis(settings.chain_redis_url))
        launches.install(settings.chain_redis_url)
        store = OrderStore(engine)
        hub = WatchHub(
            await opened.enter_async_context(async_redis(settings.redis_url)),
            HistoryReads(store),
            settings.watch_streams_per_owner,
            store.last_sequences,
            settings.watch_check_seconds,
        )
        hub.start()
        # After a start the server closes it first (before_stop below); again, a no-op.
        opened.push_async_callback(hub.close)
        quote_channel = aio_channel(
            settings.quote_service_address,
            token_metadata(settings.internal_token),
            service=QUOTE_SERVICE,
        )
        opened.push_async_callback(quote_channel.close, None)
        # The chain holds the wallets: balances, airdrops and the submit check.
        chain_channel = aio_channel(
            settings.execution_service_address,
            token_metadata(settings.internal_token),
            service=EXECUTION_SERVICE,
        )
        opened.push_async_callback(chain_channel.close, None)
        # Every call names its caller by API key, checked here before a handler runs.
        keys = KeyCache(ApiKeys(engine), settings.api_key_cache_seconds)
        # Per owner, shared by every replica through Redis; 0 turns it off.
        submit_rate = (
            TokenBuckets(redis, "submit", settings.submit_rate_per_second, settings.submit_burst)
            if settings.submit_rate_per_second
            else None
        )
        submissions = Submissions(
            store,
            redis,
            order_queue(redis, settings.queue_name),
            settings.max_queue_depth,
            submit_rate,
        )
        opened.callback(submissions.close)
        servicer = OrderServicer(
            store,
            redis,
            submissions,
            hub,
            quote_service_pb2_grpc.QuoteServiceStub(quote_channel),
            Wallets(execution_service_pb2_grpc.ExecutionServiceStub(chain_channel)),
            market,
            # At 100% QuoteService refuses no route: nothing to check at submit.
            check_price_impact=settings.max_price_impact_pct < 100,
        )
        # Orders by status and the queue, on this process's /metrics.
        opened.callback(report_orders(store, submissions.queue))
        server = await create_server(
            address,
            [
                Service(
                    ORDER_SERVICE,
                    order_service_pb2_grpc.add_OrderServiceServicer_to_server,
                    servicer,
                ),
            ],
            ApiKeyGuard(keys),
        )
        # Open streams end with UNAVAILABLE (clients resume elsewhere with
        # after_sequence) before the server waits out the unary calls.
        server.before_stop.append(hub.close)
        server.owns(opened)
    return server


# How long a thread may hold the GIL while another waits for it. Every order
# hops from the event loop to the submissions thread and back; at Python's
# default (5 ms) each hop may wait out a whole interval while the other
# thread runs Python, which is most of one order's latency on an idle
# server. A shorter one costs a few more switches under load.
SWITCH_INTERVAL_SECONDS = 0.0005


def main() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    run("OrderService", create_order_server, "ORDER_SERVICE", "order-service")


if __name__ == "__main__":
    main()
