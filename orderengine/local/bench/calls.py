"""The calls the load process makes: to OrderService with the bench's API
key, to QuoteService with the internal token, and the bare health Check."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.mesh.auth import key_metadata, token_metadata
from orderengine.mesh.channels import aio_channel
from orderengine.settings import Settings
from orderengine.v1 import (
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)

Call = Callable[[], Awaitable[Any]]


def orders_channel(address: str) -> grpc.aio.Channel:
    """To OrderService, with the bench's API key (ORDERENGINE_API_KEY)."""
    key = Settings().api_key
    return aio_channel(address, key_metadata(key))


def submit_call(address: str) -> Call:
    channel = orders_channel(address)
    stub = order_service_pb2_grpc.OrderServiceStub(channel)
    rng = random.Random(1)

    def call() -> Awaitable[Any]:
        amount = f"0.{rng.randint(1, 999):03d}"
        return stub.SubmitOrder(
            order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount=amount
            ),
            timeout=10,
        )

    return call


def _quote_call(address: str) -> Call:
    # Straight to the internal service, as the engine's own parts call it.
    stub = quote_service_pb2_grpc.QuoteServiceStub(
        aio_channel(address, token_metadata(Settings().internal_token))
    )
    rng = random.Random(2)
    pairs = [("SOL", "USDC"), ("USDC", "SOL"), ("SOL", "USDT"), ("JUP", "SOL")]

    def call() -> Awaitable[Any]:
        src, dst = rng.choice(pairs)
        return stub.GetQuote(
            quote_service_pb2.GetQuoteRequest(
                input_token=src, output_token=dst, amount=str(rng.randint(1, 500)), slippage_bps=50
            ),
            timeout=10,
        )

    return call


def _echo_call(address: str) -> Call:
    stub = health_pb2_grpc.HealthStub(aio_channel(address))

    def call() -> Awaitable[Any]:
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=10)

    return call


TARGETS = {"submit": submit_call, "quote": _quote_call, "echo": _echo_call}
