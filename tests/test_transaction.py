"""A route is one Solana transaction: its accounts, bytes and compute units
counted by hand from the programs' account lists and the message format,
and a route that would need more than a transaction has trimmed or refused."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest

from orderengine.market import pools as pools_module
from orderengine.market.cpmm import CpmmPool
from orderengine.market.dlmm import DlmmPool, Shape, bin_id_for_price, make_bins
from orderengine.market.pools import Pool, PoolState, all_pools, quote
from orderengine.swaps import parse_swap
from router_service import transaction
from router_service.paths import find_paths
from router_service.routing import NoRouteError, route_swap
from router_service.transaction import LegShape, transaction_for

NOW = 1_000_000


def test_one_raydium_leg_as_a_transaction() -> None:
    pool = all_pools()["raydium-sol-usdc"]

    tx = transaction_for("SOL", "USDC", [LegShape(pool, "SOL", "USDC")])

    # Keys of the message: the owner, ComputeBudget, the route program and
    # the owner's SOL and USDC accounts. Looked up: the token program, the
    # USDC mint, the route's event authority; CP-Swap's program, authority,
    # amm_config, pool_state, two vaults, the SOL mint, observation_state.
    assert (tx.keys, tx.accounts) == (5, 5 + 3 + 8)
    # Signatures 1 + 64. Message: v0 prefix 1, header 3, keys 1 + 5 * 32,
    # blockhash 32, instructions 1 + SetComputeUnitLimit (1 + 1 + 1 + 5)
    # + SetComputeUnitPrice (1 + 1 + 1 + 9) + the route (program 1, accounts
    # 1 + 7 + 14, data 1 + 31 + 5), lookups 1 + table (32 + 1 + 1 + 11).
    message = 1 + 3 + 161 + 32 + 1 + 8 + 12 + (1 + 22 + 37) + 1 + 45
    assert tx.bytes == 65 + message == 389
    # ComputeBudget 2 * 150, the route 20,000 + 5,000 a leg, CP-Swap 50,000.
    assert tx.compute_units == 300 + 20_000 + 5_000 + 50_000
    assert tx.fits


def test_a_dlmm_leg_pays_for_every_bin_it_visits_and_names_its_bin_arrays() -> None:
    pool = all_pools()["meteora-sol-usdc"]
    # Bins -1970 down to -2040: 71 bins, in bin arrays -29 (bins -2030 to
    # -1961) and -30 (bins -2100 to -2031), 70 bins each.
    leg = LegShape(pool, "SOL", "USDC", (-1970, -2040))

    tx = transaction_for("SOL", "USDC", [leg])

    assert leg.bin_arrays == [-30, -29]
    assert leg.compute_units == 60_000 + 70 * 4_000
    assert tx.compute_units == 300 + 20_000 + 5_000 + 340_000
    # Looked up: the token program, the USDC mint, the route's event
    # authority; DLMM's program, lb_pair, two reserves, the SOL mint, oracle,
    # event authority and the two bin arrays.
    assert (tx.keys, tx.accounts) == (5, 5 + 12)
    # As the Raydium leg, but 1 + 15 + 2 account indexes in the route
    # instruction for 1 + 13, and 12 accounts looked up for 11.
    assert tx.bytes == 389 + 4 + 1


def test_legs_over_the_compute_budget_do_not_fit() -> None:
    pools = all_pools()
    legs = [
        LegShape(pools["meteora-sol-usdc"], "SOL", "USDC", (-1970, -2069)),
        LegShape(pools["meteora-sol-usdt"], "SOL", "USDT", (-3928, -4007)),
        LegShape(pools["meteora-usdc-usdt"], "USDT", "USDC", (1, 51)),
    ]

    tx = transaction_for("SOL", "USDC", legs)

    # 100, 80 and 51 bins visited.
    dlmm = (60_000 + 99 * 4_000) + (60_000 + 79 * 4_000) + (60_000 + 50 * 4_000)
    assert tx.compute_units == 300 + 20_000 + 3 * 5_000 + dlmm == 1_127_300
    assert tx.fits
    one_more = [*legs, LegShape(pools["meteora-jup-sol"], "SOL", "USDC", (881, 821))]
    over = transaction_for("SOL", "USDC", one_more)
    assert over.compute_units == 1_127_300 + 5_000 + 60_000 + 60 * 4_000 == 1_432_300
    assert not over.fits
    assert over.refusal == (
        "a transaction of 4 legs would need 1,432,300 compute units (at most 1,400,000)"
    )


def test_every_route_the_market_gives_up_to_30_percent_impact_fits() -> None:
    states = {p.id: p.initial_state() for p in all_pools().values()}
    for src, dst, amount in [
        ("USDC", "SOL", "7000000"),
        ("USDT", "SOL", "13107200"),
        ("USDT", "USDC", "26214400"),
        ("SOL", "USDC", "5000"),
    ]:
        routed = route_swap(parse_swap(src, dst, amount, 0), states, NOW)
        assert len(routed.legs) >= 5  # splits over most of the pools
        assert routed.transaction.fits, (src, dst, amount, routed.transaction)


# -- a market where the best split needs more than a transaction ---------------------


@pytest.fixture
def thin_market(monkeypatch: pytest.MonkeyPatch) -> dict[str, Pool]:
    """Raydium's SOL/USDC pool beside a DLMM pool of 1,001 bins 1 bp apart,
    2,000 USDC of value in each, at about Raydium's price: a large sale
    crosses hundreds of its bins."""
    real = all_pools()
    cpmm, template = real["raydium-sol-usdc"], real["meteora-sol-usdc"]
    assert isinstance(cpmm, CpmmPool) and isinstance(template, DlmmPool)
    active = bin_id_for_price(Fraction(1396, 10_000), 1)
    min_id, bins = make_bins(active, 1, 500, 2_000 * 10**6, Shape.SPOT)
    thin = replace(
        template,
        id="thin-dlmm",
        params=replace(template.params, bin_step=1),
        initial=replace(
            template.initial, active_id=active, min_id=min_id, bins=bins, index_reference=active
        ),
    )
    market: dict[str, Pool] = {cpmm.id: cpmm, thin.id: thin}
    monkeypatch.setattr(pools_module, "all_pools", lambda: market)
    for where in ("orderengine.market.routes", "router_service.routing"):
        monkeypatch.setattr(f"{where}.all_pools", lambda: market)
    return market


def states_of(market: dict[str, Pool]) -> dict[str, PoolState]:
    return {p.id: p.initial_state() for p in market.values()}


def test_a_split_no_transaction_can_carry_is_trimmed(
    thin_market: dict[str, Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    states = states_of(thin_market)
    paths = find_paths("SOL", "USDC", thin_market.values())
    request = parse_swap("SOL", "USDC", "10000", 0)
    # The best split, were a transaction's compute units unbounded.
    limit = transaction.MAX_COMPUTE_UNITS
    monkeypatch.setattr(transaction, "MAX_COMPUTE_UNITS", 10**9)
    unbounded = route_swap(request, states, NOW, paths=paths)
    monkeypatch.setattr(transaction, "MAX_COMPUTE_UNITS", limit)
    thin = thin_market["thin-dlmm"]
    (dlmm_in,) = [f.amount_in for f in unbounded.fill.fills if f.leg.pool_id == thin.id]
    after = quote(thin, states[thin.id], "SOL", dlmm_in, NOW).state
    visited = states[thin.id].active_id - after.active_id + 1  # type: ignore[union-attr]
    assert visited > 300
    # By hand: two legs, Raydium's and the DLMM's over all its bins.
    needs = 300 + 20_000 + 2 * 5_000 + 50_000 + 60_000 + 4_000 * (visited - 1)
    assert unbounded.transaction.compute_units == needs > 1_400_000

    routed = route_swap(request, states, NOW, paths=paths)

    assert routed.transaction.fits
    assert [leg.pool_id for leg in routed.legs] == ["raydium-sol-usdc"]
    assert routed.transaction.compute_units == 300 + 20_000 + 5_000 + 50_000
    assert (
        routed.fill.amount_out
        == quote(
            thin_market["raydium-sol-usdc"],
            states["raydium-sol-usdc"],
            "SOL",
            request.amount_in,
            NOW,
        ).amount_out
    )
    assert routed.fill.amount_out < unbounded.fill.amount_out


def test_a_route_no_transaction_can_carry_is_refused(thin_market: dict[str, Pool]) -> None:
    states = states_of(thin_market)
    thin = thin_market["thin-dlmm"]
    paths = find_paths("SOL", "USDC", [thin])
    request = parse_swap("SOL", "USDC", "5000", 0)
    after = quote(thin, states[thin.id], "SOL", request.amount_in, NOW).state
    visited = states[thin.id].active_id - after.active_id + 1  # type: ignore[union-attr]
    needs = 300 + 20_000 + 5_000 + 60_000 + 4_000 * (visited - 1)
    assert needs > 1_400_000

    with pytest.raises(NoRouteError) as refused:
        route_swap(request, states, NOW, paths=paths)

    assert str(refused.value) == (
        "no route for SOL to USDC in this size fits one transaction: a transaction of "
        f"1 leg would need {needs:,} compute units (at most 1,400,000)"
    )
