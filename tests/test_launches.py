"""Launches: a new token and its pool appear on the chain at run time, and
every service sees them (the quote server here learns of a launch it did
not make); a symbol launches once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from orderengine.cli import main
from orderengine.local.launcher import Launcher, run_launches
from orderengine.market import launches
from orderengine.market.launches import LaunchError, checked
from orderengine.market.state import POOL_CHANGES
from orderengine.v1 import quote_service_pb2
from tests.conftest import Services

USDC = 10**6


@pytest.fixture(autouse=True)
def market_as_listed() -> Iterator[None]:
    launches.forget()
    yield
    launches.forget()


def launch(redis_url: str, symbol: str, new: int, paired: int, decimals: int = 6) -> None:
    async def go() -> None:
        async with AsyncRedis.from_url(redis_url) as market:
            await launches.launch(market, checked(symbol, decimals, "USDC", new, paired))

    asyncio.run(go())


def test_a_launched_pool_is_quoted_by_a_service_that_did_not_launch_it(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(grpc.RpcError) as before:
        services.quotes().GetQuote(
            quote_service_pb2.GetQuoteRequest(
                input_token="USDC", output_token="NEWT", amount="100", slippage_bps=50
            ),
            timeout=10,
        )
    assert before.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(SystemExit) as exited:
        main(["launch", "newt", "--paired-with", "USDC", "--reserves", "1000000", "50000"])
    assert exited.value.code == 0
    assert "launched NEWT (6 decimals): pool launch-newt-usdc" in capsys.readouterr().out
    launches.forget()  # as if another process had launched it
    reply = services.quotes().GetQuote(
        quote_service_pb2.GetQuoteRequest(
            input_token="USDC", output_token="NEWT", amount="100", slippage_bps=50
        ),
        timeout=10,
    )
    # Raydium's formula by hand: 0.25% off 100 USDC, the rest on x·y = k.
    net = 100 * USDC - 250_000
    out = net * (1_000_000 * USDC) // (50_000 * USDC + net)
    assert reply.route.amount_out == f"{out // USDC}.{out % USDC:06d}".rstrip("0").rstrip(".")
    assert [leg.pool_id for leg in reply.route.legs] == ["launch-newt-usdc"]


def test_a_symbol_launches_once_and_a_listed_one_never(services: Services, redis_url: str) -> None:
    launch(redis_url, "NEWT", 1_000, 1_000)
    with pytest.raises(LaunchError, match="symbol: NEWT is already a token"):
        launch(redis_url, "NEWT", 2_000, 2_000)
    launches.forget()  # another process, which has not seen it: the chain refuses
    with pytest.raises(LaunchError, match="symbol: NEWT was launched already"):
        launch(redis_url, "NEWT", 2_000, 2_000)
    with pytest.raises(LaunchError, match="symbol: SOL is already a token"):
        checked("SOL", 9, "USDC", 1, 1)
    with pytest.raises(LaunchError, match="paired_with"):
        checked("NEWER", 9, "NOPE", 1, 1)
    with pytest.raises(LaunchError, match="reserve_new"):
        checked("NEWER", 9, "USDC", 0, 1)
    with pytest.raises(LaunchError, match="symbol: 'new token' is no symbol"):
        checked("new token", 9, "USDC", 1, 1)


def test_a_launch_is_announced_on_the_pool_changes(services: Services, redis_url: str) -> None:
    async def go() -> list[tuple[bytes, dict[bytes, bytes]]]:
        async with AsyncRedis.from_url(redis_url) as market:
            await launches.launch(market, checked("NEWT", 6, "USDC", 10, 10))
            return await market.xrange(POOL_CHANGES)  # type: ignore[return-value]

    entries = asyncio.run(go())
    assert entries[-1][1] == {b"pools": b"launch-newt-usdc", b"launch": b"NEWT"}


def test_the_market_flow_launches_now_and_then_the_same_for_a_seed(
    redis: Redis, redis_url: str
) -> None:
    first, again = Launcher(7, 3600), Launcher(7, 3600)
    assert [first.wait_seconds() for _ in range(3)] == [again.wait_seconds() for _ in range(3)]
    assert first.next() == again.next()
    # 3,600 an hour is one a second on average: 2,000 waits average about that.
    waits = [Launcher(seed, 3600).wait_seconds() for seed in range(2000)]
    assert 0.9 < sum(waits) / len(waits) < 1.1
    assert Launcher(1, 0).per_hour == 0

    async def go() -> tuple[list[str], list[str]]:
        async with AsyncRedis.from_url(redis_url) as market:
            # The second, on the same seed, finds NEW1 taken and goes on.
            made = [await Launcher(3, 1).launch_one(market) for _ in range(2)]
            stopping = asyncio.Event()
            seen: list[str] = []
            fast = Launcher(4, 3600 * 200)  # about one every 5 ms
            task = asyncio.create_task(
                run_launches(market, fast, stopping, lambda new: seen.append(new.symbol))
            )
            await asyncio.sleep(0.3)
            stopping.set()
            assert await task == len(seen)
            return [new.symbol for new in made if new is not None], seen

    made, seen = asyncio.run(go())
    assert made == ["NEW1", "NEW2"]
    assert len(seen) >= 3 and seen[:1] == ["NEW3"]  # NEW1 and NEW2 were taken
    held = {
        key.decode() if isinstance(key, bytes) else key for key in redis.hkeys(launches.LAUNCHES)
    }
    assert held == {"NEW1", "NEW2", *seen}
