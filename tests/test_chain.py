"""ExecutionService and QuoteService over gRPC: swaps land once, at the pools' real price."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import base58
import grpc
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from executor.chain.chain import _SUBMIT as chain_script
from executor.chain.chain import (
    LANDED_BY_ORDER,
    Chain,
    Submitted,
    SwapTransaction,
    b58encode,
    signature_for,
)
from executor.chain.execution_service import MAX_SWAPS_PER_CALL
from orderengine.amounts import MAX_BASE_UNITS, format_amount
from orderengine.client.dialing import RETRIED
from orderengine.market.cpmm import Reserves
from orderengine.market.pools import PoolState, all_pools, balances
from orderengine.market.routes import Leg, apply_route
from orderengine.market.state import (
    FLOW_A,
    FLOW_B,
    pool_key,
    read_pools,
    read_reserves,
    write_reserves,
)
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2, market_pb2, quote_service_pb2
from tests.conftest import OWNER, Services
from tests.helpers import (
    BAD_SWAP_FIELDS,
    conservation_errors,
    details,
    eventually,
    field_violations,
    fund_wallet,
    item_error_of,
    one_pool_route,
    rejected,
)

Commitment = execution_service_pb2.Commitment
# Swaps the conftest's funded owner signs.
SubmitSwap = functools.partial(execution_service_pb2.SubmitSwapRequest, owner=OWNER)
# A wallet holding as much SOL as a token account holds, for swaps of the
# largest amounts.
WHALE = "whale"
BatchSubmitSwaps = execution_service_pb2.BatchSubmitSwapsRequest
Statuses = execution_service_pb2.GetSignatureStatusesRequest


def quote(services: Services, amount: str = "1400") -> market_pb2.Route:
    """The route QuoteService picks for buying SOL with ``amount`` USDC: in
    sizes like this one leg, on Meteora's SOL/USDC pool. (Selling SOL pays
    more through USDT, in two legs: tests/test_routing.py.)"""
    reply = services.quotes().GetQuote(
        quote_service_pb2.GetQuoteRequest(
            input_token="USDC", output_token="SOL", amount=amount, slippage_bps=50
        ),
        timeout=10,
    )
    assert len(reply.route.legs) == 1, reply.route
    return reply.route


def attempt_key(attempt: int = 1) -> tuple[str, str]:
    """A fresh order id and its attempt key, as the worker makes them."""
    order_id = str(uuid.uuid4())
    return order_id, f"{order_id}:{attempt}"


def base_units(amount: str, symbol: str) -> int:
    value = Decimal(amount).scaleb(token(symbol).decimals)
    assert value == value.to_integral_value(), f"{amount} {symbol} is not whole base units"
    return int(value)


def reserves(redis: Redis, pool_id: str) -> tuple[int, int]:
    a, b = redis.hmget(f"market:pool:{pool_id}", ["a", "b"])
    assert a is not None and b is not None, f"pool {pool_id} is not in Redis"
    return int(a), int(b)


def after_one_swap(before: tuple[int, int], route: market_pb2.Route) -> tuple[int, int]:
    """The pool's reserves once the route's single leg has been swapped."""
    (leg,) = route.legs
    pool = all_pools()[leg.pool_id]
    paid = base_units(leg.amount_in, leg.input_token)
    got = base_units(leg.amount_out, leg.output_token)
    a, b = before
    return (a + paid, b - got) if leg.input_token == pool.token_a else (a - got, b + paid)


def landings(redis: Redis, order_id: str) -> int:
    return int(redis.hget("chain:landed-by-order", order_id) or 0)


@dataclass(frozen=True)
class OneSwap:
    """A swap of the route QuoteService picks, its pool's reserves before it
    and the attempt key it is sent with."""

    route: market_pb2.Route
    before: tuple[int, int]
    order_id: str
    key: str

    def landed_once(self, redis: Redis) -> None:
        """The pool moved by this swap alone, and it landed once."""
        assert reserves(redis, self.route.legs[0].pool_id) == after_one_swap(
            self.before, self.route
        )
        assert landings(redis, self.order_id) == 1


@pytest.fixture
def swap(services: Services, redis: Redis) -> OneSwap:
    route = quote(services)
    return OneSwap(route, reserves(redis, route.legs[0].pool_id), *attempt_key())


def status_of(services: Services, signature: str) -> execution_service_pb2.SignatureStatus:
    (status,) = (
        services.chain().GetSignatureStatuses(Statuses(signatures=[signature]), timeout=10).statuses
    )
    return status


def landed(services: Services, signature: str) -> execution_service_pb2.SignatureStatus:
    """The swap's status once it has landed (or failed) on the chain."""

    def check() -> execution_service_pb2.SignatureStatus | None:
        status = status_of(services, signature)
        assert status.found
        return status if status.commitment != Commitment.COMMITMENT_PENDING else None

    return eventually(check, timeout=10)


@pytest.fixture
def slow_chain(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain that takes a slot and a confirmation of 0.2 s each (request before services)."""
    monkeypatch.setenv("CHAIN_SLOT_SECONDS", "0.2")
    monkeypatch.setenv("CHAIN_CONFIRM_SECONDS", "0.2")


# -- SubmitSwap: one signature per attempt key, one landing --------------------------------


def test_a_swap_gets_its_signature_at_once_and_lands_exactly_once(
    services: Services, redis: Redis, swap: OneSwap
) -> None:
    route, key = swap.route, swap.key
    chain = services.chain()

    first = chain.SubmitSwap(SubmitSwap(attempt_key=key, route=route), timeout=10)
    assert not first.duplicate
    assert len(base58.b58decode(first.signature)) == 64

    again = chain.SubmitSwap(SubmitSwap(attempt_key=key, route=route), timeout=10)
    assert (again.signature, again.duplicate) == (first.signature, True)

    status = landed(services, first.signature)
    assert status.error_code == "" and status.amount_out == route.amount_out
    swap.landed_once(redis)

    # Sent once more after landing: still the same transaction, and nothing moves.
    late = chain.SubmitSwap(SubmitSwap(attempt_key=key, route=route), timeout=10)
    assert (late.signature, late.duplicate) == (first.signature, True)
    assert landed(services, first.signature).amount_out == route.amount_out
    swap.landed_once(redis)


def test_swaps_landed_together_land_one_after_another(
    services: Services, redis: Redis, redis_url: str
) -> None:
    # The lander lands every due swap in one transaction: each must still see
    # the pool as the swaps before it left it, and fail on its own.
    route = quote(services, "20000")  # across bins: each such swap moves the price
    (leg,) = route.legs
    # Its floor is exactly the quote: met by the first swap, missed once others moved the pool.
    tight = market_pb2.Route()
    tight.CopyFrom(route)
    tight.min_amount_out = route.amount_out
    bad = market_pb2.Route(
        input_token="USDC", output_token="SOL", amount_in="1", min_amount_out="0"
    )  # no legs
    before = reserves(redis, leg.pool_id)
    keys = [attempt_key() for _ in range(4)]

    async def land_together() -> list[execution_service_pb2.SignatureStatus]:
        client = AsyncRedis.from_url(redis_url)
        try:
            # Not due for a minute: only this call lands them.
            chain = Chain(client, slot_seconds=60, confirm_seconds=0)
            taken = await chain.submit_many(
                [
                    SwapTransaction(key, r, OWNER)
                    for (_, key), r in zip(keys, [tight, route, tight, bad], strict=True)
                ]
            )
            signatures = [t.signature for t in taken if isinstance(t, Submitted)]
            assert len(signatures) == 3, taken  # the route without legs is refused at once
            await chain.land_many(signatures)
            return await chain.statuses(signatures)
        finally:
            await client.aclose()

    first, second, third = asyncio.run(land_together())

    assert (first.error_code, first.amount_out) == ("", route.amount_out)
    assert second.error_code == "" and Decimal(second.amount_out) < Decimal(route.amount_out)
    assert third.error_code == "SLIPPAGE_EXCEEDED"
    assert [landings(redis, order_id) for order_id, _ in keys] == [1, 1, 0, 0]
    # The pool moved by exactly the two swaps that landed.
    pool = all_pools()[leg.pool_id]
    paid = 2 * base_units(leg.amount_in, "USDC")
    got = base_units(first.amount_out, "SOL") + base_units(second.amount_out, "SOL")
    a, b = before
    assert reserves(redis, leg.pool_id) == (
        (a + paid, b - got) if pool.token_a == "USDC" else (a - got, b + paid)
    )


def test_another_attempt_of_the_same_order_is_another_transaction(services: Services) -> None:
    route = quote(services)
    order_id = str(uuid.uuid4())
    chain = services.chain()
    one = chain.SubmitSwap(SubmitSwap(attempt_key=f"{order_id}:1", route=route), timeout=10)
    two = chain.SubmitSwap(SubmitSwap(attempt_key=f"{order_id}:2", route=route), timeout=10)
    assert not one.duplicate and not two.duplicate
    assert one.signature != two.signature


def test_concurrent_duplicate_submits_get_one_signature_and_land_once(
    services: Services, redis: Redis, swap: OneSwap
) -> None:
    route, key = swap.route, swap.key
    chain = services.chain()
    start = threading.Barrier(10)

    def submit(_: int) -> execution_service_pb2.SubmitSwapResponse:
        start.wait(5)
        return chain.SubmitSwap(SubmitSwap(attempt_key=key, route=route), timeout=10)

    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(submit, range(10)))

    assert len({r.signature for r in replies}) == 1
    assert sorted(r.duplicate for r in replies) == [False] + [True] * 9
    landed(services, replies[0].signature)
    swap.landed_once(redis)


# -- GetSignatureStatuses ---------------------------------------------------------------


def test_an_unknown_signature_is_not_found(services: Services) -> None:
    signature = base58.b58encode(os.urandom(64)).decode()
    status = status_of(services, signature)
    assert status.signature == signature
    assert not status.found
    assert status.commitment == Commitment.COMMITMENT_UNSPECIFIED


def test_a_swap_is_pending_then_processed_after_its_slot_then_confirmed(
    slow_chain: None, services: Services
) -> None:
    reply = services.chain().SubmitSwap(
        SubmitSwap(attempt_key=attempt_key()[1], route=quote(services)), timeout=10
    )
    seen: list[execution_service_pb2.SignatureStatus] = []

    def confirmed() -> bool:
        status = status_of(services, reply.signature)
        if not seen or seen[-1].commitment != status.commitment:
            seen.append(status)
        return status.commitment == Commitment.COMMITMENT_CONFIRMED

    eventually(confirmed, timeout=10, every=0.01)
    assert [s.commitment for s in seen] == [
        Commitment.COMMITMENT_PENDING,
        Commitment.COMMITMENT_PROCESSED,
        Commitment.COMMITMENT_CONFIRMED,
    ]
    pending, processed, confirmed_status = seen
    assert pending.found and pending.slot == 0 and pending.amount_out == ""
    assert processed.slot > 0 and processed.amount_out
    assert (confirmed_status.slot, confirmed_status.amount_out) == (
        processed.slot,
        processed.amount_out,
    )


def test_statuses_take_at_most_256_signatures(services: Services) -> None:
    signatures = [base58.b58encode(os.urandom(64)).decode() for _ in range(257)]
    chain = services.chain()

    reply = chain.GetSignatureStatuses(Statuses(signatures=signatures[:256]), timeout=10)
    assert [s.signature for s in reply.statuses] == signatures[:256]
    assert not any(s.found for s in reply.statuses)

    error = rejected(
        lambda: chain.GetSignatureStatuses(Statuses(signatures=signatures), timeout=10)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).startswith("signatures:")
    assert "257" in details(error)
    assert field_violations(error) == ["signatures"]


# -- Slippage: a swap lands at the pool's price when it lands, not when it was quoted -----------


def test_a_swap_the_market_moved_against_fails_on_slippage_and_leaves_the_pool_alone(
    services: Services, redis: Redis
) -> None:
    route = quote(services)
    leg = route.legs[0]
    # Someone else buys SOL for 200000 USDC in the same pool before our swap is sent.
    dump = one_pool_route(leg.pool_id, "USDC", "SOL", "200000", venue=leg.venue)
    chain = services.chain()
    other_order, other_key = attempt_key()
    dumped = landed(
        services,
        chain.SubmitSwap(SubmitSwap(attempt_key=other_key, route=dump), timeout=10).signature,
    )
    assert dumped.error_code == "" and dumped.amount_out
    moved = reserves(redis, leg.pool_id)

    order_id, key = attempt_key()
    status = landed(
        services, chain.SubmitSwap(SubmitSwap(attempt_key=key, route=route), timeout=10).signature
    )

    assert status.error_code == "SLIPPAGE_EXCEEDED"
    assert "slippage" in status.error and route.min_amount_out in status.error
    assert status.amount_out == ""
    assert reserves(redis, leg.pool_id) == moved
    assert landings(redis, order_id) == 0
    assert landings(redis, other_order) == 1


# -- Bad input ----------------------------------------------------------------------------


def one_leg(
    *,
    pool_id: str = "raydium-sol-usdc",
    input_token: str = "SOL",
    amount_in: str = "1",
    share_bps: int = 10_000,
) -> market_pb2.Route:
    """A route selling SOL for USDC over one pool, with one field spoilt at will."""
    return market_pb2.Route(
        input_token=input_token,
        output_token="USDC",
        amount_in=amount_in,
        legs=[
            market_pb2.RouteLeg(
                pool_id=pool_id, input_token="SOL", output_token="USDC", share_bps=share_bps
            )
        ],
    )


@pytest.mark.parametrize(
    ("key", "route", "field", "words"),
    [
        ("", one_leg(), "attempt_key", "required"),
        ("x" * 129, one_leg(), "attempt_key", "at most 128"),
        (
            "o:1",
            market_pb2.Route(input_token="SOL", output_token="USDC", amount_in="1"),
            "route",
            "route.legs",
        ),
        ("o:1", one_leg(input_token="DOGE"), "route", "route.input_token"),
        ("o:1", one_leg(amount_in="ten"), "route", "route.amount_in"),
        ("o:1", one_leg(share_bps=0), "route", "route.legs[0].share_bps"),
        ("o:1", one_leg(pool_id="raydium-sol-nope"), "route", "route.legs[0].pool_id"),
        ("o:1", one_leg(pool_id="raydium-jup-sol"), "route", "does not trade SOL/USDC"),
    ],
    ids=[
        "no-key",
        "long-key",
        "no-legs",
        "unknown-token",
        "bad-amount",
        "zero-share",
        "unknown-pool",
        "pool-of-other-tokens",
    ],
)
def test_bad_swaps_are_refused_naming_the_field(
    services: Services, redis: Redis, key: str, route: market_pb2.Route, field: str, words: str
) -> None:
    chain = services.chain()
    error = rejected(lambda: chain.SubmitSwap(SubmitSwap(attempt_key=key, route=route), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).startswith(f"{field}:")
    assert words in details(error)
    assert field_violations(error) == [field]
    assert redis.zcard("chain:landing") == 0  # nothing was taken


# -- BatchSubmitSwaps: SubmitSwap's answers, one round trip -------------------------------


@pytest.fixture
def timing_out_chain(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain whose every answer to a new swap is lost (request before services)."""
    monkeypatch.setenv("CHAIN_RPC_TIMEOUT_RATE", "1")


def test_a_batch_answers_each_swap_in_order_as_submit_swap_would(
    services: Services, redis: Redis
) -> None:
    route = quote(services, amount="100")
    orders, keys = zip(*(attempt_key() for _ in range(3)), strict=True)
    bad_route = one_leg(pool_id="raydium-sol-nope")
    items = [
        SubmitSwap(attempt_key=keys[0], route=route),
        SubmitSwap(attempt_key="o:1", route=bad_route),
        SubmitSwap(attempt_key=keys[1], route=route),
        SubmitSwap(attempt_key="", route=route),
        SubmitSwap(attempt_key=keys[2], route=route),
    ]
    chain = services.chain()

    results = chain.BatchSubmitSwaps(BatchSubmitSwaps(requests=items), timeout=10).results

    assert [r.WhichOneof("result") for r in results] == [
        "response",
        "error",
        "response",
        "error",
        "response",
    ]
    for index in (0, 2, 4):
        answer = results[index].response
        assert (answer.signature, answer.duplicate) == (
            signature_for(items[index].attempt_key),
            False,
        )
        # SubmitSwap, asked the same now, answers the same transaction.
        again = chain.SubmitSwap(items[index], timeout=10)
        assert (again.signature, again.duplicate) == (answer.signature, True)
        assert landed(services, answer.signature).amount_out
    for index, field in ((1, "route"), (3, "attempt_key")):
        error = results[index].error
        assert (error.code, error.reason, error.field) == (
            code_pb2.INVALID_ARGUMENT,
            "INVALID_FIELD",
            field,
        )
        assert error.message.startswith(f"{field}:")
        unary = rejected(functools.partial(chain.SubmitSwap, items[index], timeout=10))
        assert error == item_error_of(unary)
    assert [landings(redis, order_id) for order_id in orders] == [1, 1, 1]


def script_calls(redis: Redis) -> int:
    """SCRIPT commands (EXISTS, LOAD...) Redis has run."""
    return sum(
        int(stats.get("calls", 0))
        for name, stats in redis.info("commandstats").items()
        if name.startswith("cmdstat_script")
    )


def test_an_attempt_key_twice_in_a_batch_is_one_transaction_landing_once(
    services: Services, redis: Redis, swap: OneSwap
) -> None:
    route, key = swap.route, swap.key
    redis.script_load(chain_script)  # as by any swap before (this test may run first)
    scripts_before = script_calls(redis)

    first, second = (
        services.chain()
        .BatchSubmitSwaps(
            BatchSubmitSwaps(requests=[SubmitSwap(attempt_key=key, route=route)] * 2), timeout=10
        )
        .results
    )

    assert (first.response.signature, first.response.duplicate) == (signature_for(key), False)
    assert (second.response.signature, second.response.duplicate) == (signature_for(key), True)
    # One pipeline of the chain's script, by its SHA: no SCRIPT EXISTS round trip first.
    assert script_calls(redis) == scripts_before
    landed(services, first.response.signature)
    swap.landed_once(redis)


def test_a_redis_that_lost_the_script_still_takes_a_batch_once(
    services: Services, redis: Redis
) -> None:
    route = quote(services)
    order_id, key = attempt_key()
    redis.script_flush()  # as a restarted Redis: the chain's script is gone

    first, second = (
        services.chain()
        .BatchSubmitSwaps(
            BatchSubmitSwaps(requests=[SubmitSwap(attempt_key=key, route=route)] * 2), timeout=10
        )
        .results
    )

    assert (first.response.duplicate, second.response.duplicate) == (False, True)
    landed(services, first.response.signature)
    assert landings(redis, order_id) == 1


def test_a_lost_answer_in_a_batch_is_that_swaps_deadline_exceeded_as_submit_swap_says(
    timing_out_chain: None, services: Services, redis: Redis
) -> None:
    route = quote(services)
    order_id, key = attempt_key()
    chain = services.chain()

    (lost,) = chain.BatchSubmitSwaps(
        BatchSubmitSwaps(requests=[SubmitSwap(attempt_key=key, route=route)]), timeout=10
    ).results

    assert (lost.error.code, lost.error.reason) == (code_pb2.DEADLINE_EXCEEDED, "RPC_TIMEOUT")
    unary = rejected(
        lambda: chain.SubmitSwap(SubmitSwap(attempt_key=attempt_key()[1], route=route), timeout=10)
    )
    assert lost.error == item_error_of(unary)
    # Taken all the same: sent again, it is known, and it lands once.
    (again,) = chain.BatchSubmitSwaps(
        BatchSubmitSwaps(requests=[SubmitSwap(attempt_key=key, route=route)]), timeout=10
    ).results
    assert (again.response.signature, again.response.duplicate) == (signature_for(key), True)
    landed(services, signature_for(key))
    assert landings(redis, order_id) == 1


def test_a_batch_takes_at_most_64_swaps_and_none_answers_none(services: Services) -> None:
    chain = services.chain()
    unkeyed = [SubmitSwap(route=one_leg())] * (MAX_SWAPS_PER_CALL + 1)
    assert MAX_SWAPS_PER_CALL == 64

    results = chain.BatchSubmitSwaps(BatchSubmitSwaps(requests=unkeyed[:64]), timeout=10).results
    assert [r.error.field for r in results] == ["attempt_key"] * 64

    error = rejected(lambda: chain.BatchSubmitSwaps(BatchSubmitSwaps(requests=unkeyed), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).startswith("requests:") and "65" in details(error)
    assert field_violations(error) == ["requests"]

    assert not chain.BatchSubmitSwaps(BatchSubmitSwaps(), timeout=10).results


def test_every_method_of_the_internal_services_is_retried_on_unavailable() -> None:
    """Each is safe to repeat (orderengine/mesh/channels.py says why): a method
    added to them must be classed there."""
    named = {(entry["service"], entry["method"]) for entry in RETRIED}
    for module, name in (
        (quote_service_pb2, "QuoteService"),
        (execution_service_pb2, "ExecutionService"),
    ):
        service = module.DESCRIPTOR.services_by_name[name]
        for method in service.methods:
            assert (service.full_name, method.name) in named, method.full_name


# -- QuoteService ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field", "words"), BAD_SWAP_FIELDS)
def test_bad_quotes_are_refused_naming_the_field(
    services: Services, fields: dict[str, object], field: str, words: str
) -> None:
    request = quote_service_pb2.GetQuoteRequest(
        **{"input_token": "SOL", "output_token": "USDC", "amount": "10", **fields}  # type: ignore[arg-type]
    )
    quotes = services.quotes()
    error = rejected(lambda: quotes.GetQuote(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).startswith(f"{field}:")
    assert words in details(error)
    assert field_violations(error) == [field]


def test_an_amount_no_path_can_give_anything_for_has_no_route(services: Services) -> None:
    quotes = services.quotes()
    # No pool trades JUP/BONK: both go through SOL, and one base unit of JUP
    # pays the first pool's fee and passes nothing on.
    error = rejected(
        lambda: quotes.GetQuote(
            quote_service_pb2.GetQuoteRequest(
                input_token="JUP", output_token="BONK", amount="0.000001"
            ),
            timeout=10,
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "JUP" in details(error) and "BONK" in details(error)


def test_a_quote_prices_both_venues_and_routes_over_the_best(services: Services) -> None:
    reply = services.quotes().GetQuote(
        quote_service_pb2.GetQuoteRequest(
            input_token="SOL", output_token="USDC", amount="10", slippage_bps=50
        ),
        timeout=10,
    )
    assert {q.pool_id for q in reply.quotes} == {"raydium-sol-usdc", "meteora-sol-usdc"}
    best = max(reply.quotes, key=lambda q: Decimal(q.amount_out))
    # The route gives at least the best venue (here more, through USDT).
    assert Decimal(reply.route.amount_out) >= Decimal(best.amount_out)
    floor = base_units(reply.route.amount_out, "USDC") * 9950 // 10_000
    assert base_units(reply.route.min_amount_out, "USDC") == floor


# -- Health and reflection ----------------------------------------------------------------


@pytest.mark.parametrize("service", ["", "orderengine.v1.ExecutionService"])
def test_the_execution_service_reports_serving(services: Services, service: str) -> None:
    health = health_pb2_grpc.HealthStub(services.channel("execution"))
    reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_execution_service_is_listed_by_reflection(services: Services) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(services.channel("execution"))
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"orderengine.v1.ExecutionService", "grpc.health.v1.Health"} <= names


# -- Overflow: the programs' amounts are bounded, and a landing is all or nothing ----------


def test_a_swap_that_would_overflow_a_pool_reverts_alone_and_writes_nothing(
    redis: Redis, redis_url: str
) -> None:
    """Two swaps of the largest amount of SOL into one pool: once, the second
    took the pool's flows past what Redis's counters hold, and the MULTI wrote
    the reserves but not the flows ledger. Each now reverts with AMOUNT_OVERFLOW,
    and the ordinary swap landed with them lands, conserving every pool."""
    pool_id = "raydium-sol-usdc"
    most_sol = format_amount(MAX_BASE_UNITS, token("SOL").decimals)

    def route(amount: str) -> market_pb2.Route:
        return one_pool_route(pool_id, "SOL", "USDC", amount)

    async def run() -> list[execution_service_pb2.SignatureStatus]:
        client = AsyncRedis.from_url(redis_url)
        try:
            chain = Chain(client, slot_seconds=0.0, confirm_seconds=0.0)
            await fund_wallet(client, WHALE, {"SOL": most_sol})
            swaps = [
                SwapTransaction(attempt_key()[1], route(most_sol), WHALE),
                SwapTransaction(attempt_key()[1], route("1"), WHALE),
                SwapTransaction(attempt_key()[1], route(most_sol), WHALE),
            ]
            taken = await chain.submit_many(swaps)
            signatures = [outcome.signature for outcome in taken if isinstance(outcome, Submitted)]
            assert len(signatures) == 3
            await read_reserves(client, [pool_id])  # seeded, as a quote would
            await chain.land_many(signatures)
            assert await conservation_errors(client) == []
            return await chain.statuses(signatures)
        finally:
            await client.aclose()

    big, small, big_again = asyncio.run(run())
    for status in (big, big_again):
        assert (status.error_code, status.amount_out) == ("AMOUNT_OVERFLOW", "")
        assert "would hold more than 18446744073709551615 base units" in status.error
    assert (small.error_code, small.amount_out != "") == ("", True)
    pool = all_pools()[pool_id]
    start = balances(pool, pool.initial_state())
    assert reserves(redis, pool_id)[0] == start[0] + base_units("1", "SOL")
    assert sorted(int(v) for v in redis.hgetall(LANDED_BY_ORDER).values()) == [1]


# Pools of SOL, USDC and USDT holding near a u64 each, so that one swap moves
# more than 2**63 base units in and out.
BIG_POOLS: dict[str, PoolState] = {
    "raydium-sol-usdc": Reserves(2**62, 2**64 - 2**60),
    "raydium-sol-usdt": Reserves(2**62, 2**64 - 2**60),
    "raydium-usdc-usdt": Reserves(2**64 - 2**60, 2**62),
}


async def push_pools(client: AsyncRedis, states: dict[str, PoolState]) -> None:
    """Moves pools to ``states`` as landed swaps would: the flows ledger moves
    with them, so conservation still holds."""
    await read_reserves(client, list(states))  # seeded first: seeding moves a watched key
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(*(pool_key(p) for p in states))
        before, flows = await read_pools(pipe, list(states))
        pipe.multi()
        write_reserves(pipe, states, before, flows)
        await pipe.execute()


def a_route(amount: str, *legs: tuple[str, str, str, int]) -> market_pb2.Route:
    return market_pb2.Route(
        input_token=legs[0][1],
        output_token=legs[-1][2],
        amount_in=amount,
        legs=[
            market_pb2.RouteLeg(pool_id=pool_id, input_token=src, output_token=dst, share_bps=share)
            for pool_id, src, dst, share in legs
        ],
    )


def land(
    redis_url: str, routes: list[market_pb2.Route], pools: dict[str, PoolState]
) -> list[execution_service_pb2.SignatureStatus]:
    async def run() -> list[execution_service_pb2.SignatureStatus]:
        client = AsyncRedis.from_url(redis_url)
        try:
            await push_pools(client, pools)
            chain = Chain(client, slot_seconds=0.0, confirm_seconds=0.0)
            await fund_wallet(client, WHALE, {"SOL": format_amount(MAX_BASE_UNITS, 9)})
            taken = await chain.submit_many(
                [SwapTransaction(attempt_key()[1], r, WHALE) for r in routes]
            )
            signatures = [o.signature for o in taken if isinstance(o, Submitted)]
            assert len(signatures) == len(routes)
            await chain.land_many(signatures)
            assert await conservation_errors(client) == []
            return await chain.statuses(signatures)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_swap_moving_more_than_2_63_units_lands_exactly_and_conserves(
    redis: Redis, redis_url: str
) -> None:
    """u64 amounts past a signed 64-bit integer: 2**63 base units of SOL in,
    more than 2**63 of USDC out. The pool, its flows ledger and the amount
    out hold them to the last unit."""
    pool_id = "raydium-sol-usdc"
    amount_in = 2**63
    (status,) = land(
        redis_url,
        [a_route(format_amount(amount_in, 9), (pool_id, "SOL", "USDC", 10_000))],
        BIG_POOLS,
    )
    expected = apply_route([Leg(pool_id, "SOL", "USDC")], "SOL", "USDC", amount_in, dict(BIG_POOLS))
    assert 2**63 < expected.amount_out < 2**64
    assert (status.error_code, status.amount_out) == ("", format_amount(expected.amount_out, 6))
    assert reserves(redis, pool_id) == (2**62 + amount_in, 2**64 - 2**60 - expected.amount_out)
    pool = all_pools()[pool_id]
    start = balances(pool, pool.initial_state())
    assert redis.hmget(pool_key(pool_id), [FLOW_A, FLOW_B]) == [
        str(2**62 + amount_in - start[0]).encode(),
        str(2**64 - 2**60 - expected.amount_out - start[1]).encode(),
    ]


def test_a_swap_paying_out_past_u64_reverts_alone_and_writes_nothing(
    redis: Redis, redis_url: str
) -> None:
    """Two paths to USDC whose payouts sum past a u64 (no pool passes it):
    the program's checked add reverts the swap, the pools stay as they were,
    and the ordinary swap landed with it lands."""
    split = a_route(
        format_amount(2**63, 9),
        ("raydium-sol-usdc", "SOL", "USDC", 5_000),
        ("raydium-sol-usdt", "SOL", "USDT", 10_000),
        ("raydium-usdc-usdt", "USDT", "USDC", 10_000),
    )
    small = a_route("1", ("raydium-sol-usdc", "SOL", "USDC", 10_000))
    over, fine = land(redis_url, [split, small], BIG_POOLS)
    assert (over.error_code, over.amount_out) == ("AMOUNT_OVERFLOW", "")
    assert "pay out more than 18446744073709.551615 USDC" in over.error
    assert fine.error_code == "" and fine.amount_out != ""
    assert reserves(redis, "raydium-sol-usdc")[0] == 2**62 + 10**9
    for pool_id in ("raydium-sol-usdt", "raydium-usdc-usdt"):
        assert reserves(redis, pool_id) == balances(all_pools()[pool_id], BIG_POOLS[pool_id])


def test_the_chains_base58_is_the_base58_librarys() -> None:
    """Signatures are base58 as everyone else spells it: every length,
    leading zero bytes, and the 64-byte signatures themselves."""
    rng = random.Random(58)
    cases = [b"", b"\0", b"\0\0\x01", bytes(64), b"\xff" * 64]
    cases += [bytes(rng.getrandbits(8) for _ in range(n)) for n in range(80) for _ in range(20)]
    cases += [b"\0" * z + bytes(rng.getrandbits(8) for _ in range(64)) for z in range(4)]
    for data in cases:
        assert b58encode(data) == base58.b58encode(data).decode()
    for k in range(200):
        assert base58.b58decode(signature_for(f"order-{k}:1")).__len__() == 64
