"""What a worker or tracker process holds on to between jobs: settings, the
store, Redis, the queue and channels to the internal services. Built once
per process, on first use (after any fork)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from redis import Redis
from rq import Queue

from executor.driver.retries import RetryPolicy
from orderengine.market import launches
from orderengine.mesh.auth import token_metadata
from orderengine.mesh.channels import EXECUTION_SERVICE, QUOTE_SERVICE, channel
from orderengine.order_queue import order_queue
from orderengine.settings import Settings
from orderengine.store.database import create_database_engine
from orderengine.store.orders import OrderStore
from orderengine.v1 import execution_service_pb2_grpc, quote_service_pb2_grpc

# Internal calls are quick; a peer that does not answer in this long is down.
RPC_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: OrderStore
    redis: Redis
    queue: Queue
    quotes: quote_service_pb2_grpc.QuoteServiceStub
    chain: execution_service_pb2_grpc.ExecutionServiceStub
    retry: RetryPolicy


@cache
def context() -> Context:
    settings = Settings()
    redis = Redis.from_url(settings.redis_url)
    # Quotes and landings name launched tokens: their decimals are the chain's.
    launches.install(settings.chain_redis_url)
    return Context(
        settings=settings,
        store=OrderStore(create_database_engine(settings.database_url)),
        redis=redis,
        queue=order_queue(redis, settings.queue_name),
        quotes=quote_service_pb2_grpc.QuoteServiceStub(
            channel(
                settings.quote_service_address,
                token_metadata(settings.internal_token),
                service=QUOTE_SERVICE,
            )
        ),
        chain=execution_service_pb2_grpc.ExecutionServiceStub(
            channel(
                settings.execution_service_address,
                token_metadata(settings.internal_token),
                service=EXECUTION_SERVICE,
            )
        ),
        retry=RetryPolicy.from_settings(settings),
    )
