"""Small things tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from executor.chain.faucet import airdrop
from executor.chain.wallets import FEE_COLLECTOR, MINTED, decode
from executor.driver.context import Context, context
from executor.triggers.engine import Triggers
from orderengine.cli import main as cli_main
from orderengine.market.pools import PoolState, all_pools, balances
from orderengine.market.state import read_pools
from orderengine.statuses import TRANSITIONS, Status
from orderengine.swaps import SwapRequest
from orderengine.tokens import TOKENS
from orderengine.v1 import (
    item_error_pb2,
    market_pb2,
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
)
from router_service.routing import route_swap

if TYPE_CHECKING:
    from tests.conftest import Services

T = TypeVar("T")

Submit = order_service_pb2.SubmitOrderRequest
# The statuses one attempt goes through on its way to the chain.
ATTEMPT = ["ROUTING", "ROUTED", "SUBMITTED"]
SOL_USDC = Submit(input_token="SOL", output_token="USDC", amount="1")


@contextmanager
def worker_context() -> Iterator[Context]:
    """What a worker or tracker holds, built from the environment as it is
    now (not the one cached from before), and closed after."""
    context.cache_clear()
    built = context()
    try:
        yield built
    finally:
        context.cache_clear()
        built.store.engine.dispose()
        built.redis.close()


def history(ctx: Context, order_id: str) -> list[tuple[str, str]]:
    """The order's events as (status, reason code), oldest first."""
    return [(Status.from_proto(e.status).value, e.reason_code) for e in ctx.store.events(order_id)]


def on_trigger_part(
    ctx: Context, redis_url: str, act: Callable[[Triggers], object], started: bool = False
) -> Any:
    """``act`` on a trigger part of its own over the chain's Redis at
    ``redis_url`` (awaited when it is a coroutine); ``started``: once it has
    started (its index built, the pool changes followed from now)."""

    async def go() -> Any:
        market = Redis.from_url(redis_url)
        try:
            triggers = Triggers(ctx, market)
            if started:
                await triggers.start()
            result = act(triggers)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        finally:
            await market.aclose()

    return asyncio.run(go())


def is_legal(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def statuses(events: list[order_pb2.OrderEvent]) -> list[str]:
    return [Status.from_proto(e.status).value for e in events]


def watch_all(
    stub: order_service_pb2_grpc.OrderServiceStub,
    order_id: str,
    after: int = 0,
    timeout: float = 30,
) -> list[order_pb2.OrderEvent]:
    """Every event the stream sends until it ends."""
    stream = stub.WatchOrder(
        order_service_pb2.WatchOrderRequest(order_id=order_id, after_sequence=after),
        timeout=timeout,
    )
    return list(stream)


def eventually(check: Callable[[], T | None], timeout: float = 20, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(every)


def details(error: grpc.RpcError) -> str:
    """The status message of a failed call."""
    return error.details() or ""


def field_violations(error: grpc.RpcError) -> list[str]:
    """The fields a google.rpc.BadRequest detail of the error names."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def rejected(call: Callable[[], Any]) -> grpc.RpcError:
    """The error a call fails with; a stream is read to its end, where it may fail."""
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)):
            list(result)
    return caught.value


def item_error_of(error: grpc.RpcError) -> item_error_pb2.ItemError:
    """A unary call's failure as a batch answers it for an item: its code,
    message, ErrorInfo reason and metadata, BadRequest field and RetryInfo delay."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    found = item_error_pb2.ItemError(code=status.code, message=status.message)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason = info.reason
            found.metadata.update(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found.retry_delay.CopyFrom(retry.retry_delay)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            (violation,) = bad.field_violations
            found.field = violation.field
    assert found.code == error.code().value[0]
    return found


# Swaps every service that takes one refuses, each naming its bad field
# (orderengine.swaps.parse_swap): the changed fields, the field, words of the message.
BAD_SWAP_FIELDS = [
    ({"input_token": "DOGE"}, "input_token", "unknown token"),
    ({"output_token": "XYZ"}, "output_token", "unknown token"),
    ({"output_token": ""}, "output_token", "unknown token"),
    ({"output_token": "SOL"}, "output_token", "must differ"),
    ({"amount": "0"}, "amount", "greater than zero"),
    ({"amount": "-5"}, "amount", "positive decimal"),
    ({"amount": "ten"}, "amount", "positive decimal"),
    ({"amount": ""}, "amount", "required"),
    ({"amount": "1.0000000001"}, "amount", "decimal places"),
    ({"amount": "1" * 30}, "amount", "too large"),
    # 2**64 base units of SOL (9 decimals): one more than a u64 holds.
    ({"amount": "18446744073.709551616"}, "amount", "is too large: at most 18446744073.709551615"),
    ({"slippage_bps": 5001}, "slippage_bps", "1 to 5000"),
]


def run_cli(
    capsys: pytest.CaptureFixture[str], services: Services, *args: str
) -> tuple[int, str, str]:
    """The CLI against the test's OrderService: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        cli_main(["--address", services.address("order"), *args])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def one_pool_route(
    pool_id: str,
    input_token: str,
    output_token: str,
    amount_in: str,
    venue: market_pb2.Venue = market_pb2.VENUE_UNSPECIFIED,
    **more: str,
) -> market_pb2.Route:
    """A route of one leg, all of ``amount_in`` through ``pool_id``; ``more``:
    the route's other fields (amount_out, min_amount_out)."""
    leg = market_pb2.RouteLeg(
        venue=venue,
        pool_id=pool_id,
        input_token=input_token,
        output_token=output_token,
        share_bps=10_000,
    )
    return market_pb2.Route(
        input_token=input_token,
        output_token=output_token,
        amount_in=amount_in,
        legs=[leg],
        **more,
    )


def best_route(
    request: SwapRequest,
    reserves: Mapping[str, PoolState],
    now: int | None = None,
) -> tuple[list[market_pb2.VenueQuote], market_pb2.Route]:
    """Each venue's quote (best first) and the route to take."""
    routed = route_swap(request, reserves, now)
    return routed.quotes, routed.route


async def conservation_errors(redis: Redis) -> list[str]:
    """Pools whose holdings differ from their first state plus every flow the
    ledger recorded: empty when nothing was created or lost."""
    pools = all_pools()
    states, flows = await read_pools(redis, pools)
    errors = []
    for pool_id, pool in pools.items():
        now = balances(pool, states[pool_id])
        first = balances(pool, pool.initial_state())
        for token, held, start, moved in (
            (pool.token_a, now[0], first[0], flows[pool_id][0]),
            (pool.token_b, now[1], first[1], flows[pool_id][1]),
        ):
            if held != start + moved:
                errors.append(f"{pool_id}: holds {held} {token}, expected {start} + {moved}")
    return errors


# What the conftest's owners hold when a test starts: far more of every token
# than any test spends, and far from what a token account holds at most.
PLENTY = {
    "SOL": "100000000",
    "USDC": "1000000000",
    "USDT": "1000000000",
    "JUP": "1000000000",
    "RAY": "1000000000",
    "BONK": "1000000000000",
}


async def fund_wallet(redis: Redis, owner: str, amounts: Mapping[str, str]) -> None:
    """Credits ``owner``'s wallet on the chain (``redis`` is the chain's) with
    whole-token amounts, as the faucet does but without its limits."""
    for symbol, amount in amounts.items():
        units = int(Decimal(amount).scaleb(TOKENS[symbol].decimals))
        await airdrop(redis, owner, symbol, units, None)


def fund(redis_url: str, owner: str, amounts: Mapping[str, str] = PLENTY) -> None:
    """``fund_wallet`` from synchronous code."""

    async def run() -> None:
        client = Redis.from_url(redis_url)
        try:
            await fund_wallet(client, owner, amounts)
        finally:
            await client.aclose()

    asyncio.run(run())


async def token_totals(redis: Redis) -> tuple[dict[str, int], dict[str, int]]:
    """Per token, in base units: what every wallet, every pool and the fee
    collector hold together now; and what they held at the start (the
    pools' first state) plus what the faucet minted. Equal when no swap,
    fee or airdrop created or lost a base unit."""
    held = dict.fromkeys(TOKENS, 0)
    expected = dict.fromkeys(TOKENS, 0)
    pools = all_pools()
    states, _ = await read_pools(redis, pools)
    for pool_id, pool in pools.items():
        for symbol, now, first in zip(
            (pool.token_a, pool.token_b),
            balances(pool, states[pool_id]),
            balances(pool, pool.initial_state()),
            strict=True,
        ):
            held[symbol] += now
            expected[symbol] += first
    async for key in redis.scan_iter(match="chain:wallet:*", count=1000):
        for symbol, units in decode(await redis.hgetall(key)).items():
            held[symbol] += units
    for symbol, units in decode(await redis.hgetall(FEE_COLLECTOR)).items():
        held[symbol] += units
    for symbol, units in decode(await redis.hgetall(MINTED)).items():
        expected[symbol] += units
    return held, expected
