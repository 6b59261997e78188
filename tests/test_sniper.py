"""Sniper orders: one waits OPEN for its token's launch, fires once when a
pool for it appears and a route buys within its max_price, and lands as a
market order; a launch too thin to buy anything leaves it OPEN until it
expires. Amounts are Raydium's formula worked by hand."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis as AsyncRedis

from executor.driver.context import Context
from executor.triggers.engine import SNIPE_RETRY_SECONDS, Triggers
from orderengine.cli import main
from orderengine.market import launches
from orderengine.market.launches import checked
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Processes, Services
from tests.helpers import (
    Submit,
    eventually,
    field_violations,
    history,
    on_trigger_part,
    rejected,
)

USDC = 10**6
# Launched with 6 decimals, as USDC: base units alike.
NEWT = 10**6


@pytest.fixture(autouse=True)
def market_as_listed() -> Iterator[None]:
    launches.forget()
    yield
    launches.forget()


def sniper(
    services: Services, max_price: str = "", expires_in: float | None = None
) -> order_pb2.Order:
    fields: dict[str, Any] = {}
    if expires_in is not None:
        stamp = Timestamp()
        stamp.FromDatetime(datetime.now(UTC) + timedelta(seconds=expires_in))
        fields["expire_time"] = stamp
    request = Submit(
        input_token="USDC",
        output_token="newt",
        amount="5",
        sniper=order_pb2.SniperOrder(max_price=max_price),
        **fields,
    )
    return services.orders().SubmitOrder(request, timeout=10).order


async def launch(market: AsyncRedis, new: str, paired: str) -> None:
    """NEWT against USDC, whole tokens of each."""
    await launches.launch(
        market, checked("NEWT", 6, "USDC", int(float(new) * NEWT), int(float(paired) * USDC))
    )


def bought(usdc_in: int) -> int:
    """NEWT base units 5 USDC buy from 1,000,000 NEWT and 50,000 USDC: 0.25%
    off the input (rounded up), the rest on x·y = k (rounded down)."""
    net = usdc_in - -(-usdc_in * 2500 // 10**6)
    return net * (1_000_000 * NEWT) // (50_000 * USDC + net)


def test_a_sniper_fires_once_when_its_pool_launches_and_confirms(
    services: Services, engine: Processes, ctx: Context, redis_url: str
) -> None:
    order = sniper(services)
    assert order.status == order_pb2.ORDER_STATUS_OPEN and order.output_token == "NEWT"
    assert order.WhichOneof("order_type") == "sniper"

    async def act(triggers: Triggers) -> list[int]:
        waiting = (await triggers.step(10)).fired
        await launch(triggers.market, "1000000", "50000")
        launches.forget()  # the trigger part learns of it from the chain
        fired = (await triggers.step(10)).fired
        return [waiting, fired, (await triggers.step(10)).fired]

    assert on_trigger_part(ctx, redis_url, act, started=True) == [0, 1, 0]

    def confirmed() -> Any:
        row = ctx.store.get(order.order_id)
        return row if row is not None and row.status == Status.CONFIRMED else None

    row = eventually(confirmed)
    assert row.amount_out == bought(5 * USDC) == 99_740_050
    steps = history(ctx, order.order_id)
    assert steps[:2] == [("OPEN", ""), ("ROUTING", Reason.TRIGGERED)]
    assert [s for s, _ in steps].count("ROUTING") == 1
    assert "NEWT has a pool" in ctx.store.events(order.order_id)[1].reason


def test_a_launch_too_thin_leaves_the_sniper_open_until_it_expires(
    services: Services, ctx: Context, redis_url: str
) -> None:
    order = sniper(services, expires_in=1.0)

    async def act(triggers: Triggers) -> tuple[int, int, int]:
        # One base unit of NEWT against 1,000 USDC: 5 USDC buys none of it.
        await launch(triggers.market, "0.000001", "1000")
        fired = (await triggers.step(10)).fired
        await asyncio.sleep(1.1)
        later = await triggers.step(10)
        return fired, later.fired, later.expired

    assert on_trigger_part(ctx, redis_url, act, started=True) == (0, 0, 1)
    assert history(ctx, order.order_id) == [("OPEN", ""), ("EXPIRED", Reason.EXPIRED)]


class NotLoadedYet:
    """QuoteService as a process that has not registered the launch yet (it
    looks at most every LOAD_EVERY_SECONDS): the first BatchGetQuotes asks
    it for a token it does not know, and gets its real answer to that."""

    def __init__(self, quotes: Any) -> None:
        self._quotes = quotes
        self.calls = 0

    def BatchGetQuotes(self, request: Any, **options: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            unknown = type(request)()
            unknown.CopyFrom(request)
            for item in unknown.requests:
                item.output_token = "NEWTX"
            request = unknown
        return self._quotes.BatchGetQuotes(request, **options)


def test_a_launch_quotes_do_not_know_yet_fires_its_sniper_at_the_next_look(
    services: Services, ctx: Context, redis_url: str
) -> None:
    order = sniper(services)
    quotes = NotLoadedYet(ctx.quotes)
    late = dataclasses.replace(ctx, quotes=cast(Any, quotes))

    async def act(triggers: Triggers) -> list[int]:
        await launch(triggers.market, "1000000", "50000")
        launches.forget()
        first = (await triggers.step(10)).fired  # quoted as unknown: not yet
        soon = (await triggers.step(10)).fired  # not asked again at once
        await asyncio.sleep(SNIPE_RETRY_SECONDS + 0.05)
        return [first, soon, (await triggers.step(10)).fired]

    assert on_trigger_part(late, redis_url, act, started=True) == [0, 0, 1]
    assert quotes.calls == 2
    assert ctx.store.get(order.order_id).status != Status.OPEN  # type: ignore[union-attr]


def test_a_sniper_fires_only_within_its_max_price(
    services: Services, ctx: Context, redis_url: str
) -> None:
    # 5 USDC buy 99.74005 NEWT: 0.0501303... USDC each, fee and impact in.
    assert 5 * USDC * 10_000 // bought(5 * USDC) == 501  # 0.0501 < cost < 0.0502
    cheap = sniper(services, max_price="0.0501")
    enough = sniper(services, max_price="0.0502")

    async def act(triggers: Triggers) -> int:
        await launch(triggers.market, "1000000", "50000")
        return (await triggers.step(10)).fired

    assert on_trigger_part(ctx, redis_url, act, started=True) == 1
    assert history(ctx, cheap.order_id) == [("OPEN", "")]
    assert history(ctx, enough.order_id) == [("OPEN", ""), ("ROUTING", Reason.TRIGGERED)]
    shown = services.orders().GetOrder(
        order_service_pb2.GetOrderRequest(order_id=cheap.order_id), timeout=10
    )
    assert shown.sniper.max_price == "0.0501"


def test_a_sniper_names_a_token_not_launched_yet_but_a_symbol_and_pays_in_a_known_one(
    services: Services,
) -> None:
    def submit(input_token: str, output_token: str) -> grpc.RpcError:
        request = Submit(
            input_token=input_token,
            output_token=output_token,
            amount="5",
            sniper=order_pb2.SniperOrder(),
        )
        return rejected(lambda: services.orders().SubmitOrder(request, timeout=10))

    assert field_violations(submit("USDC", "new token")) == ["output_token"]
    assert field_violations(submit("NEWT", "USDC")) == ["input_token"]
    # A market order still needs a token that is there.
    request = Submit(input_token="USDC", output_token="NEWT", amount="5")
    error = rejected(lambda: services.orders().SubmitOrder(request, timeout=10))
    assert field_violations(error) == ["output_token"]


def test_the_cli_snipes_a_token_not_launched_yet(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "--address",
                services.address("order"),
                "snipe",
                "newtoken",
                "--with",
                "5",
                "USDC",
                "--max-price",
                "0.06",
                "--expires",
                "1h",
            ]
        )
    out = capsys.readouterr().out
    assert exited.value.code == 0, out
    assert "5 USDC -> NEWTOKEN" in out
    assert "sniper: buys once NEWTOKEN has a pool, at most 0.06 USDC each, expires" in out
    order_id = out.split()[1].rstrip(":")
    shown = services.orders().GetOrder(
        order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10
    )
    assert shown.status == order_pb2.ORDER_STATUS_OPEN and shown.amount == "5"
    assert shown.sniper.max_price == "0.06" and shown.HasField("expire_time")
