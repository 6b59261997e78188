"""The price of a pair (docs/market.md): the best path's mid price, exact;
QuoteOrder shows it; every pool change is announced on the stream."""

from __future__ import annotations

import asyncio
from fractions import Fraction

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from orderengine.market.cpmm import Reserves
from orderengine.market.pools import all_pools
from orderengine.market.prices import format_price, pair_price
from orderengine.market.routes import Leg
from orderengine.market.state import POOL_CHANGES, encode, land_route, pool_key
from orderengine.v1 import order_service_pb2
from tests.conftest import Services

SOL, USDC = 10**9, 10**6


def seeded() -> dict[str, object]:
    return {pool.id: pool.initial_state() for pool in all_pools().values()}


def test_the_pair_price_is_the_best_paths_mid_price() -> None:
    states = seeded()
    # 1,000 SOL against 200,000 USDC: 200 USDC a SOL, above every other
    # path (about 140), so it is the pair's price, exactly.
    states["raydium-sol-usdc"] = Reserves(1_000 * SOL, 200_000 * USDC)
    assert pair_price(states, "SOL", "USDC") == 200  # type: ignore[arg-type]
    # SOL at 100 USDC: a USDC buys 0.01 SOL there, more than anywhere else.
    states["raydium-sol-usdc"] = Reserves(1_000 * SOL, 100_000 * USDC)
    assert pair_price(states, "USDC", "SOL") == Fraction(1, 100)  # type: ignore[arg-type]


def test_a_price_is_shown_to_eighteen_significant_digits() -> None:
    assert format_price(Fraction(200)) == "200"
    assert format_price(Fraction(1, 100)) == "0.01"
    assert format_price(Fraction(1, 3)) == "0." + "3" * 18
    assert format_price(Fraction(140125, 1000)) == "140.125"


def test_quote_order_shows_the_pairs_price(services: Services, redis: Redis) -> None:
    pool = all_pools()["raydium-sol-usdc"]
    redis.hset(
        pool_key(pool.id),
        mapping=encode(pool, Reserves(1_000 * SOL, 200_000 * USDC)),  # type: ignore[arg-type]
    )
    reply = services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
        timeout=10,
    )
    assert reply.price == "200"


def test_a_landed_swap_announces_the_pools_it_moved(redis: Redis, redis_url: str) -> None:
    async def land() -> None:
        client = AsyncRedis.from_url(redis_url)
        try:
            landed = await land_route(
                client,
                [Leg("raydium-sol-usdc", "SOL", "USDC")],
                "SOL",
                "USDC",
                SOL,
                now=0,
            )
            assert landed is not None
        finally:
            await client.aclose()

    asyncio.run(land())
    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis.xrange(POOL_CHANGES)  # type: ignore[assignment]
    assert [fields[b"pools"] for _, fields in entries] == [b"raydium-sol-usdc"]
