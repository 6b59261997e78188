"""The Python client (orderengine.client), blocking and asyncio, against real
servers: what each call gives back, what it refuses, and a watch that follows
an order to CONFIRMED through a real worker and tracker. (A watch through an
OrderService restart: tests/test_watch_resumption.py; the distribution
itself: tests/test_client_dist.py.)"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from orderengine.client import AsyncClient, Client, NoApiKey
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import OTHER_OWNER, OWNER, Processes, Services

PENDING = order_pb2.ORDER_STATUS_PENDING
CANCELLED = order_pb2.ORDER_STATUS_CANCELLED
TO_CONFIRMED = [
    order_pb2.ORDER_STATUS_PENDING,
    order_pb2.ORDER_STATUS_ROUTING,
    order_pb2.ORDER_STATUS_ROUTED,
    order_pb2.ORDER_STATUS_SUBMITTED,
    order_pb2.ORDER_STATUS_CONFIRMED,
]


def test_submit_get_list_cancel(services: Services) -> None:
    with Client(services.address("order"), api_key=services.keys[OWNER]) as orders:
        first = orders.submit("SOL", "USDC", "1.5", client_order_id="mine-1")
        order = first.order
        assert not first.already_exists
        assert (order.input_token, order.output_token, order.amount) == ("SOL", "USDC", "1.5")
        assert order.slippage_bps == 50 and order.status == PENDING  # no worker runs here
        # The same client order id: the first order, said so.
        again = orders.submit("SOL", "USDC", "1.5", client_order_id="mine-1")
        assert again.already_exists and again.order.order_id == order.order_id
        # An amount as a Decimal or an int goes as its exact decimal string.
        second = orders.submit("SOL", "USDC", Decimal("0.25"), slippage_bps=120).order
        third = orders.submit("USDC", "SOL", 7).order
        assert (second.amount, second.slippage_bps, third.amount) == ("0.25", 120, "7")

        assert orders.get(order.order_id).order_id == order.order_id
        listed = orders.list()
        assert [o.order_id for o in listed.orders] == [
            third.order_id,
            second.order_id,
            order.order_id,
        ]
        page = orders.list(page_size=2)
        assert len(page.orders) == 2 and page.next_page_token
        rest = orders.list(page_size=2, page_token=page.next_page_token)
        assert [o.order_id for o in rest.orders] == [order.order_id] and not rest.next_page_token

        cancelled = orders.cancel(order.order_id)
        assert cancelled.status == CANCELLED
        with pytest.raises(grpc.RpcError) as refused:
            orders.cancel(order.order_id)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # Another owner's key reaches none of it.
    with Client(services.address("order"), api_key=services.keys[OTHER_OWNER]) as others:
        with pytest.raises(grpc.RpcError) as hidden:
            others.get(order.order_id)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        assert not others.list().orders


def test_quote_is_the_services_own(services: Services) -> None:
    with Client(services.address("order"), api_key=services.keys[OWNER]) as orders:
        reply = orders.quote("SOL", "USDC", "5000", slippage_bps=100)
    direct = services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(
            input_token="SOL", output_token="USDC", amount="5000", slippage_bps=100
        ),
        timeout=10,
    )
    assert reply == direct
    # 100 bps below the route's amount out, in USDC's 6 decimals.
    assert Decimal(reply.route.min_amount_out) == (
        Decimal(reply.route.amount_out) * Decimal("0.99")
    ).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")


def test_bad_input_is_refused_naming_the_field(services: Services) -> None:
    with Client(services.address("order"), api_key=services.keys[OWNER]) as orders:
        with pytest.raises(grpc.RpcError) as unknown:
            orders.submit("SOL", "DOGE", "1")
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(unknown.value.details()).startswith("output_token: unknown token 'DOGE'")
        # Refused before anything is sent: a float is not an exact amount.
        with pytest.raises(TypeError, match=r"^amount: a float cannot carry an amount exactly"):
            orders.submit("SOL", "USDC", 0.1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^slippage_bps: "):
            orders.quote("SOL", "USDC", "1", slippage_bps=-1)
        assert not orders.list().orders


def test_the_key_comes_from_the_environment_or_the_key_file(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ORDERENGINE_API_KEY")
    monkeypatch.setenv("ORDERENGINE_API_KEY_FILE", str(tmp_path / "none"))
    with pytest.raises(NoApiKey, match=r"^no API key: set ORDERENGINE_API_KEY"):
        Client(services.address("order"))
    (tmp_path / "key").write_text(services.keys[OTHER_OWNER] + "\n")
    monkeypatch.setenv("ORDERENGINE_API_KEY_FILE", str(tmp_path / "key"))
    mine = services.orders(OTHER_OWNER).SubmitOrder(
        order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="USDC", amount="1"),
        timeout=10,
    )
    # The address from ORDER_SERVICE_ADDRESS (the fixture sets it).
    with Client() as orders:
        assert [o.order_id for o in orders.list().orders] == [mine.order.order_id]


def test_async_client_submit_get_list_quote_cancel(services: Services) -> None:
    async def calls() -> None:
        async with AsyncClient(services.address("order"), api_key=services.keys[OWNER]) as orders:
            submitted = await orders.submit("SOL", "USDC", "2", client_order_id="async-1")
            order = submitted.order
            assert order.amount == "2" and order.status == PENDING
            assert (
                await orders.submit("SOL", "USDC", "2", client_order_id="async-1")
            ).already_exists
            assert (await orders.get(order.order_id)).order_id == order.order_id
            assert [o.order_id for o in (await orders.list()).orders] == [order.order_id]
            quote = await orders.quote("SOL", "USDC", "2")
            assert Decimal(quote.route.amount_out) > 0 and quote.quotes
            assert (await orders.cancel(order.order_id)).status == CANCELLED
            with pytest.raises(grpc.RpcError) as missing:
                await orders.get("00000000-0000-4000-8000-000000000000")
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    asyncio.run(calls())


def test_watch_follows_an_order_to_confirmed(services: Services, engine: Processes) -> None:
    with Client(services.address("order"), api_key=services.keys[OWNER]) as orders:
        order = orders.submit("SOL", "USDC", "1").order
        events = list(orders.watch(order.order_id))
        # After the third event: the rest only.
        later = [e.sequence for e in orders.watch(order.order_id, after_sequence=3)]
        stored = orders.get(order.order_id)

    async def watched() -> list[order_pb2.OrderEvent]:
        async with AsyncClient(services.address("order"), api_key=services.keys[OWNER]) as orders:
            mine = (await orders.submit("SOL", "USDC", "1")).order
            return [event async for event in orders.watch(mine.order_id)]

    async_events = asyncio.run(asyncio.wait_for(watched(), 60))
    for seen in (events, async_events):
        assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
        assert [e.status for e in seen] == TO_CONFIRMED
    assert later == [4, 5]
    assert stored.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert events[-1].amount_out == stored.amount_out and Decimal(stored.amount_out) > 0


def test_airdrop_and_balances_blocking_and_asyncio(services: Services) -> None:
    with Client(services.address("order"), api_key=services.keys[OWNER]) as orders:
        (sol,) = orders.balances("SOL").balances
        before = Decimal(sol.amount)
        funded = orders.airdrop("SOL", Decimal("1.5"), request_id="client-drop")
        assert not funded.duplicate and Decimal(funded.balance.amount) == before + Decimal("1.5")
        # The same request id funds nothing more.
        again = orders.airdrop("SOL", "1.5", request_id="client-drop")
        assert again.duplicate and again.balance.amount == funded.balance.amount
        with pytest.raises(TypeError, match="amount"):
            orders.airdrop("SOL", 1.5)  # type: ignore[arg-type]

    async def run() -> str:
        async with AsyncClient(services.address("order"), api_key=services.keys[OWNER]) as orders:
            await orders.airdrop("SOL", "0.5")
            (sol,) = (await orders.balances("SOL")).balances
            return sol.amount

    assert Decimal(asyncio.run(run())) == before + 2
