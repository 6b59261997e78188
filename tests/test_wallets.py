"""Wallets on the simulated chain: a landed swap moves its owner's wallet by
exactly its input and output and takes the network fee (5,000 lamports) and
the priority fee into the fee collector; a failed one pays the fee and moves
nothing else; one the fee payer cannot pay is not processed at all. Every
wallet, pool and the collector together always hold what the pools started
with plus what the faucet minted. The chain itself, on a real Redis."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from executor.chain.chain import Chain, Submitted, SwapTransaction
from executor.chain.faucet import FaucetLimits, FaucetRefused, airdrop, parse_limits
from executor.chain.faults import FailureRates, Faults
from executor.chain.wallets import FEE_COLLECTOR, read_wallets
from orderengine.amounts import MAX_BASE_UNITS, format_amount
from orderengine.market.pools import all_pools, balances
from orderengine.market.state import read_reserves
from orderengine.v1 import execution_service_pb2, market_pb2
from tests.helpers import fund_wallet, token_totals

T = TypeVar("T")
LAMPORTS = 10**9  # a SOL
MICRO = 10**6  # a USDC
SOL_USDC = "raydium-sol-usdc"  # SOL is its token_a


def leg_route(pool_id: str, src: str, dst: str, amount: str, floor: str = "") -> market_pb2.Route:
    return market_pb2.Route(
        input_token=src,
        output_token=dst,
        amount_in=amount,
        min_amount_out=floor,
        legs=[
            market_pb2.RouteLeg(
                pool_id=pool_id, input_token=src, output_token=dst, share_bps=10_000
            )
        ],
    )


def on_chain(
    redis_url: str, body: Callable[[Chain, AsyncRedis], Awaitable[T]], faults: Faults | None = None
) -> T:
    """Runs ``body`` with a chain that lands only when told, on the test's Redis."""

    async def run() -> T:
        client = AsyncRedis.from_url(redis_url)
        try:
            await read_reserves(client, list(all_pools()))  # seeded, as a quote would
            chain = Chain(client, slot_seconds=60, confirm_seconds=0, **_faults(faults))
            return await body(chain, client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _faults(faults: Faults | None) -> dict[str, Faults]:
    return {} if faults is None else {"faults": faults}


async def land(
    chain: Chain, swaps: Sequence[SwapTransaction]
) -> list[execution_service_pb2.SignatureStatus]:
    """Takes the swaps and lands them together, in one round, as the lander would."""
    taken = await chain.submit_many(swaps)
    signatures = [t.signature for t in taken if isinstance(t, Submitted)]
    assert len(signatures) == len(swaps), taken
    await chain.land_many(signatures)
    return await chain.statuses(signatures)


def swap(route: market_pb2.Route, owner: str, priority_fee: int = 0) -> SwapTransaction:
    return SwapTransaction(f"{uuid.uuid4()}:1", route, owner, priority_fee)


async def wallet(client: AsyncRedis, owner: str) -> dict[str, int]:
    return (await read_wallets(client, [owner]))[owner]


async def collected(client: AsyncRedis) -> int:
    return int(await client.hget(FEE_COLLECTOR, "SOL") or 0)


async def pool_holdings(client: AsyncRedis, pool_id: str) -> tuple[int, int]:
    return balances(all_pools()[pool_id], (await read_reserves(client, [pool_id]))[pool_id])


# -- What a landing moves ------------------------------------------------------------------


def test_a_landed_swap_moves_its_input_its_output_and_the_network_fee(
    redis_url: str, redis: Redis
) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        await fund_wallet(client, "alice", {"SOL": "12", "USDC": "5"})
        sol, usdc = await pool_holdings(client, SOL_USDC)
        (status,) = await land(chain, [swap(leg_route(SOL_USDC, "SOL", "USDC", "10"), "alice")])
        assert status.error_code == "" and status.fee == "0.000005"
        sol_after, usdc_after = await pool_holdings(client, SOL_USDC)
        paid_out = usdc - usdc_after
        assert sol_after - sol == 10 * LAMPORTS
        assert format_amount(paid_out, 6) == status.amount_out
        # 12 SOL - 10 SOL - 5,000 lamports; 5 USDC + what the pool paid out.
        assert await wallet(client, "alice") == {
            "SOL": 2 * LAMPORTS - 5_000,
            "USDC": 5 * MICRO + paid_out,
        }
        assert await collected(client) == 5_000

    on_chain(redis_url, body)


def test_a_priority_fee_is_paid_on_top_of_the_network_fee(redis_url: str, redis: Redis) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        await fund_wallet(client, "alice", {"USDC": "100", "SOL": "0.001"})
        sol, _ = await pool_holdings(client, SOL_USDC)
        # 0.0001 SOL = 100,000 lamports of priority fee.
        (status,) = await land(
            chain, [swap(leg_route(SOL_USDC, "USDC", "SOL", "100"), "alice", 100_000)]
        )
        assert status.error_code == "" and status.fee == "0.000105"
        got = sol - (await pool_holdings(client, SOL_USDC))[0]
        assert format_amount(got, 9) == status.amount_out
        assert await wallet(client, "alice") == {
            "USDC": 0,
            "SOL": 1_000_000 - 105_000 + got,
        }
        assert await collected(client) == 105_000

    on_chain(redis_url, body)


def test_a_swap_the_program_fails_pays_the_fee_and_moves_nothing_else(
    redis_url: str, redis: Redis
) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        await fund_wallet(client, "alice", {"SOL": "5"})
        pool = await pool_holdings(client, SOL_USDC)
        # A floor no pool pays: the program refuses it after the fee is paid.
        route = leg_route(SOL_USDC, "SOL", "USDC", "1", floor="1000000")
        (status,) = await land(chain, [swap(route, "alice")])
        assert status.error_code == "SLIPPAGE_EXCEEDED" and status.fee == "0.000005"
        assert status.amount_out == ""
        assert await wallet(client, "alice") == {"SOL": 5 * LAMPORTS - 5_000}
        assert await pool_holdings(client, SOL_USDC) == pool
        assert await collected(client) == 5_000

    on_chain(redis_url, body)


def test_a_wallet_short_of_the_input_fails_for_insufficient_funds_and_pays_the_fee(
    redis_url: str, redis: Redis
) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        await fund_wallet(client, "alice", {"SOL": "0.01", "USDC": "99.999999"})
        pool = await pool_holdings(client, SOL_USDC)
        (status,) = await land(chain, [swap(leg_route(SOL_USDC, "USDC", "SOL", "100"), "alice")])
        assert status.error_code == "INSUFFICIENT_FUNDS"
        assert status.error == (
            "insufficient funds: the wallet holds 99.999999 USDC, the swap spends 100"
        )
        assert status.fee == "0.000005"
        assert await wallet(client, "alice") == {"SOL": 10_000_000 - 5_000, "USDC": 99_999_999}
        assert await pool_holdings(client, SOL_USDC) == pool

    on_chain(redis_url, body)


def test_a_wallet_that_cannot_pay_the_fee_is_not_processed_and_pays_nothing(
    redis_url: str, redis: Redis
) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        # 4,999 lamports: one short of the network fee.
        await fund_wallet(client, "alice", {"SOL": "0.000004999", "USDC": "100"})
        (status,) = await land(chain, [swap(leg_route(SOL_USDC, "USDC", "SOL", "1"), "alice")])
        assert status.error_code == "INSUFFICIENT_FUNDS"
        assert status.error.startswith("insufficient funds for fee: the wallet holds 0.000004999")
        assert status.fee == ""
        assert await wallet(client, "alice") == {"SOL": 4_999, "USDC": 100 * MICRO}
        assert await collected(client) == 0

    on_chain(redis_url, body)


def test_swaps_of_one_wallet_in_one_round_see_each_other_s_debits(
    redis_url: str, redis: Redis
) -> None:
    """1.5 SOL and two 1-SOL swaps: the first lands; the second finds 0.5
    SOL less its fee, pays its own fee and fails."""

    async def body(chain: Chain, client: AsyncRedis) -> None:
        await fund_wallet(client, "alice", {"SOL": "1.5"})
        route = leg_route(SOL_USDC, "SOL", "USDC", "1")
        first, second = await land(chain, [swap(route, "alice"), swap(route, "alice")])
        assert first.error_code == ""
        assert second.error_code == "INSUFFICIENT_FUNDS"
        assert "holds 0.49999 SOL, the swap spends 1" in second.error
        held = await wallet(client, "alice")
        assert held["SOL"] == LAMPORTS // 2 - 2 * 5_000
        assert format_amount(held["USDC"], 6) == first.amount_out

    on_chain(redis_url, body)


def test_the_swap_paying_the_higher_priority_fee_lands_first(redis_url: str, redis: Redis) -> None:
    """Two swaps in one slot whose floor only the first to land can meet:
    the one sent second, with a priority fee, lands; the other slips."""

    async def body(chain: Chain, client: AsyncRedis) -> None:
        for owner in ("alice", "bob"):
            await fund_wallet(client, owner, {"SOL": "101"})
        probe = leg_route(SOL_USDC, "SOL", "USDC", "100")
        sol, usdc = await pool_holdings(client, SOL_USDC)
        # The floor is what the pool pays now, by the CPMM formula
        # (fee 0.25%, rounded up, off the input; the output rounded down).
        net = 100 * LAMPORTS - -(-100 * LAMPORTS * 2_500 // 1_000_000)
        out = usdc - -(-sol * usdc // (sol + net))
        probe.min_amount_out = format_amount(out, 6)
        plain, paying = await land(
            chain, [swap(probe, "alice"), swap(probe, "bob", priority_fee=1)]
        )
        assert (paying.error_code, paying.amount_out) == ("", format_amount(out, 6))
        assert plain.error_code == "SLIPPAGE_EXCEEDED"
        assert await collected(client) == 2 * 5_000 + 1

    on_chain(redis_url, body)


def test_an_injected_failure_is_never_processed_and_pays_no_fee(
    redis_url: str, redis: Redis
) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        await fund_wallet(client, "alice", {"SOL": "2"})
        (status,) = await land(chain, [swap(leg_route(SOL_USDC, "SOL", "USDC", "1"), "alice")])
        assert status.error_code == "BLOCKHASH_EXPIRED" and status.fee == ""
        assert await wallet(client, "alice") == {"SOL": 2 * LAMPORTS}
        assert await collected(client) == 0

    on_chain(redis_url, body, Faults(FailureRates(blockhash_expired=1.0)))


def test_a_payout_past_what_a_token_account_holds_reverts_after_the_fee(
    redis_url: str, redis: Redis
) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        full = format_amount(MAX_BASE_UNITS - 10, 6)  # 10 base units of room
        await fund_wallet(client, "alice", {"SOL": "2", "USDC": full})
        (status,) = await land(chain, [swap(leg_route(SOL_USDC, "SOL", "USDC", "1"), "alice")])
        assert status.error_code == "AMOUNT_OVERFLOW"
        assert "more than 18446744073709.551615 USDC" in status.error
        assert await wallet(client, "alice") == {
            "SOL": 2 * LAMPORTS - 5_000,
            "USDC": MAX_BASE_UNITS - 10,
        }

    on_chain(redis_url, body)


def test_a_transaction_without_an_owner_has_no_fee_payer(redis_url: str, redis: Redis) -> None:
    async def body(chain: Chain, client: AsyncRedis) -> None:
        (status,) = await land(chain, [swap(leg_route(SOL_USDC, "SOL", "USDC", "1"), "")])
        assert status.error_code == "INSUFFICIENT_FUNDS" and status.fee == ""

    on_chain(redis_url, body)


# -- Conservation ------------------------------------------------------------------------------

OWNERS = [f"owner-{n}" for n in range(12)]
# Single pools and two-pool paths, each way.
PATHS: list[list[tuple[str, str, str]]] = [
    [(pool.id, pool.token_a, pool.token_b)] for pool in all_pools().values()
] + [
    [("raydium-jup-sol", "JUP", "SOL"), ("meteora-sol-usdc", "SOL", "USDC")],
    [("meteora-sol-usdt", "SOL", "USDT"), ("raydium-usdc-usdt", "USDT", "USDC")],
]


def random_route(rng: random.Random) -> market_pb2.Route:
    path = rng.choice(PATHS)
    if rng.random() < 0.5:
        path = [(p, dst, src) for p, src, dst in reversed(path)]
    src = path[0][1]
    decimals = 9 if src == "SOL" else 5 if src == "BONK" else 6
    # Mostly small, at times more than any wallet holds or a pool can fill.
    whole = rng.choice([rng.uniform(0.001, 5), rng.uniform(5, 500), rng.uniform(1e4, 1e6)])
    if src == "BONK":
        whole *= 10**7
    if src in ("USDC", "USDT", "JUP", "RAY"):
        whole *= 100
    amount = format_amount(max(1, int(whole * 10**decimals)), decimals)
    return market_pb2.Route(
        input_token=src,
        output_token=path[-1][2],
        amount_in=amount,
        # At times a floor no pool pays: slippage, after the fee.
        min_amount_out="1000000000" if rng.random() < 0.1 else "",
        legs=[
            market_pb2.RouteLeg(pool_id=p, input_token=a, output_token=b, share_bps=10_000)
            for p, a, b in path
        ],
    )


def test_every_wallet_pool_and_the_fee_collector_conserve_each_token_over_thousands_of_swaps(
    redis_url: str, redis: Redis
) -> None:
    """3,000 random swaps by a dozen owners over every pool and two-pool
    paths, in landing rounds of 50, with airdrops between them: some land,
    some slip, some find their wallet short of the input or the fee, some
    pay a priority fee. Per token, what every wallet, every pool (its fees
    included) and the fee collector hold equals the pools' first state plus
    what the faucet minted, before and after, to the base unit."""
    rng = random.Random(5)
    rounds, per_round = 60, 50

    async def body(chain: Chain, client: AsyncRedis) -> None:
        for owner in OWNERS:
            await fund_wallet(client, owner, {"SOL": "50", "USDC": "5000", "JUP": "20000"})
        held, expected = await token_totals(client)
        assert held == expected
        codes: dict[str, int] = {}
        for _ in range(rounds):
            swaps = [
                swap(random_route(rng), rng.choice(OWNERS), rng.choice([0, 0, 0, 1_000, 50_000]))
                for _ in range(per_round)
            ]
            for status in await land(chain, swaps):
                codes[status.error_code or "landed"] = (
                    codes.get(status.error_code or "landed", 0) + 1
                )
            owner = rng.choice(OWNERS)
            await airdrop(
                client, owner, rng.choice(["SOL", "USDC", "BONK"]), rng.randint(1, 10**12), None
            )
        after, expected_after = await token_totals(client)
        assert after == expected_after
        assert expected_after != expected  # the airdrops minted
        # Every kind of outcome happened, so each path was conserved.
        assert codes["landed"] > 1_000, codes
        assert {"INSUFFICIENT_FUNDS", "SLIPPAGE_EXCEEDED"} <= codes.keys(), codes
        assert await collected(client) > 0

    on_chain(redis_url, body)


# -- The faucet --------------------------------------------------------------------------------

LIMITS = FaucetLimits(
    parse_limits("FAUCET_MAX_PER_CALL", "SOL=2,USDC=100"),
    parse_limits("FAUCET_MAX_PER_OWNER", "SOL=3,USDC=100"),
)


def test_limits_are_read_per_token_in_whole_units() -> None:
    assert parse_limits("X", "sol=1.5, BONK=100000") == {"SOL": 1_500_000_000, "BONK": 10**10}
    assert parse_limits("X", "") == {}
    with pytest.raises(ValueError, match="FAUCET_MAX_PER_CALL must be TOKEN=AMOUNT"):
        parse_limits("FAUCET_MAX_PER_CALL", "DOGE=1")
    with pytest.raises(ValueError, match="decimal places"):
        parse_limits("FAUCET_MAX_PER_CALL", "USDC=0.0000001")


def test_the_faucet_gives_up_to_its_limits_and_refuses_past_them_changing_nothing(
    redis_url: str, redis: Redis
) -> None:
    async def body(_: Chain, client: AsyncRedis) -> None:
        given = await airdrop(client, "alice", "SOL", 2 * LAMPORTS, LIMITS)
        assert (given.held, given.duplicate) == (2 * LAMPORTS, False)
        with pytest.raises(FaucetRefused) as per_call:
            await airdrop(client, "alice", "SOL", 2 * LAMPORTS + 1, LIMITS)
        assert per_call.value.failure.message == "amount: the faucet gives at most 2 SOL a call"
        assert per_call.value.failure.metadata == {"limit": "FAUCET_MAX_PER_CALL", "most": "2"}
        with pytest.raises(FaucetRefused) as per_owner:
            await airdrop(client, "alice", "SOL", LAMPORTS + 1, LIMITS)
        assert per_owner.value.failure.code.name == "RESOURCE_EXHAUSTED"
        assert "it has given you 2, so 1 more at most" in per_owner.value.failure.message
        with pytest.raises(FaucetRefused) as not_given:
            await airdrop(client, "alice", "JUP", 1, LIMITS)
        assert not_given.value.failure.field is not None
        assert not_given.value.failure.field.field == "token"
        # Another owner has a limit of their own; the last lamport fits.
        assert (await airdrop(client, "bob", "SOL", 2 * LAMPORTS, LIMITS)).held == 2 * LAMPORTS
        assert (await airdrop(client, "alice", "SOL", LAMPORTS, LIMITS)).held == 3 * LAMPORTS
        assert await wallet(client, "alice") == {"SOL": 3 * LAMPORTS}
        assert int(await client.hget("chain:minted", "SOL") or 0) == 5 * LAMPORTS

    on_chain(redis_url, body)


def test_an_airdrop_request_id_is_given_once(redis_url: str, redis: Redis) -> None:
    async def body(_: Chain, client: AsyncRedis) -> None:
        first = await airdrop(client, "alice", "USDC", 40 * MICRO, LIMITS, "alice:r1")
        again = await airdrop(client, "alice", "USDC", 40 * MICRO, LIMITS, "alice:r1")
        other = await airdrop(client, "alice", "USDC", 40 * MICRO, LIMITS, "alice:r2")
        assert [(g.held, g.duplicate) for g in (first, again, other)] == [
            (40 * MICRO, False),
            (40 * MICRO, True),
            (80 * MICRO, False),
        ]
        assert 0 < await client.ttl("chain:airdrop:alice:r1") <= 24 * 3600

    on_chain(redis_url, body)


def test_the_faucet_never_fills_a_wallet_past_a_u64(redis_url: str, redis: Redis) -> None:
    async def body(_: Chain, client: AsyncRedis) -> None:
        await airdrop(client, "alice", "USDC", MAX_BASE_UNITS, None)
        with pytest.raises(FaucetRefused) as full:
            await airdrop(client, "alice", "USDC", 1, None)
        assert full.value.failure.reason == "WALLET_FULL"
        assert await wallet(client, "alice") == {"USDC": MAX_BASE_UNITS}

    on_chain(redis_url, body)
