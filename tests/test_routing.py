"""Routing: paths through an intermediate token, splits across pools, each
venue's quote, held to brute force and to the optimality certificate, and
landed on the real chain for exactly what was quoted."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import grpc
import pytest
from google.rpc import code_pb2
from redis import Redis

from orderengine.amounts import format_amount, parse_amount
from orderengine.market import pools as pools_module
from orderengine.market.base import OutOfLiquidityError
from orderengine.market.cpmm import CpmmPool
from orderengine.market.dlmm import DlmmPool, Shape, make_bins
from orderengine.market.pools import Pool, PoolState, Venue, all_pools, quote, spot_price
from orderengine.market.routes import FULL_SHARE, Leg, apply_route, min_amount_out
from orderengine.order_queue import enqueue_orders, order_queue
from orderengine.settings import Settings
from orderengine.store.changes import NewOrder
from orderengine.store.orders import OrderStore
from orderengine.swaps import SwapRequest, parse_swap
from orderengine.tokens import TOKENS, token
from orderengine.v1 import order_service_pb2, quote_service_pb2, quote_service_pb2_grpc
from router_service import quote_service
from router_service.bound import certify
from router_service.legs import legs_for, shares
from router_service.paths import Path, find_paths, path_spot
from router_service.quote_service import MAX_QUOTES_PER_CALL
from router_service.routing import NoRouteError, Routed, candidate_paths, route_swap
from router_service.split import DEFAULT_CHUNKS, alone_is_best, greedy_split
from tests.conftest import OWNER, Processes, Services
from tests.helpers import field_violations, item_error_of, rejected, statuses, watch_all
from tests.test_pools_chain import land, same_but_the_clock, state_in

NOW = 1_000_000
# About a hundred dollars of each token.
HUNDRED_DOLLARS = {
    "SOL": "0.7",
    "USDC": "100",
    "USDT": "100",
    "JUP": "120",
    "BONK": "5000000",
    "RAY": "50",
}


def initial() -> dict[str, PoolState]:
    return {p.id: p.initial_state() for p in all_pools().values()}


def route(
    src: str,
    dst: str,
    amount: str,
    *,
    paths: Sequence[Path] | None = None,
    states: Mapping[str, PoolState] | None = None,
) -> Routed:
    return route_swap(
        parse_swap(src, dst, amount, 0), initial() if states is None else states, NOW, paths=paths
    )


def over(src: str, dst: str, *pool_ids: str) -> list[Path]:
    """The paths from src to dst over just these pools."""
    return find_paths(src, dst, [all_pools()[pid] for pid in pool_ids])


def out(
    pool_id: str, input_token: str, amount: int, states: Mapping[str, PoolState] | None = None
) -> int | None:
    """What the pool gives for ``amount`` as it starts; None when it cannot fill it."""
    if amount == 0:
        return 0
    pool = pools_module.all_pools()[pool_id]  # as a test may have patched it
    state = (states or initial())[pool_id]
    try:
        return quote(pool, state, input_token, amount, NOW).amount_out
    except OutOfLiquidityError:
        return None


def pool_inputs(routed: Routed) -> dict[str, int]:
    return {f.leg.pool_id: f.amount_in for f in routed.fill.fills}


def gap(
    routed: Routed,
    paths: Sequence[Path],
    amount_in: int,
    states: Mapping[str, PoolState] | None = None,
) -> int:
    """The certified bound on how far the route is from the best split."""
    return certify(paths, states or initial(), pool_inputs(routed), amount_in, NOW, DEFAULT_CHUNKS)


def rounding(routed: Routed) -> int:
    """What the integer pools' rounding may add to the certified gap (which
    is for pools of real numbers): a few base units per leg."""
    return 10 * len(routed.legs) + routed.fill.amount_out // 10**9


# -- paths -----------------------------------------------------------------------------


def test_paths_are_direct_first_then_through_each_token_in_pool_order() -> None:
    paths = find_paths("SOL", "USDC", all_pools().values())
    assert [p.name for p in paths] == [
        "meteora-sol-usdc",
        "raydium-sol-usdc",
        "meteora-sol-usdt>meteora-usdc-usdt",
        "meteora-sol-usdt>raydium-usdc-usdt",
        "raydium-sol-usdt>meteora-usdc-usdt",
        "raydium-sol-usdt>raydium-usdc-usdt",
    ]
    assert {p.via for p in paths} == {None, "USDT"}
    assert [p.venue for p in paths] == [
        Venue.METEORA,
        Venue.RAYDIUM,
        Venue.METEORA,
        None,
        None,
        Venue.RAYDIUM,
    ]


@pytest.mark.parametrize(
    ("src", "dst"), [("JUP", "USDC"), ("BONK", "USDC"), ("JUP", "BONK"), ("USDT", "RAY")]
)
def test_a_pair_no_pool_trades_goes_through_sol(src: str, dst: str) -> None:
    paths = find_paths(src, dst, all_pools().values())
    assert paths and all(p.via == "SOL" for p in paths)

    routed = route(src, dst, HUNDRED_DOLLARS[src])

    legs = routed.route.legs
    firsts = [leg for leg in legs if leg.input_token == src]
    assert firsts and all(leg.output_token == "SOL" for leg in firsts)
    assert all((leg.input_token, leg.output_token) == ("SOL", dst) for leg in legs[len(firsts) :])
    assert legs[-1].share_bps == FULL_SHARE


def test_every_pair_of_the_six_tokens_is_quoted() -> None:
    for src, dst in itertools.permutations(TOKENS, 2):
        routed = route(src, dst, HUNDRED_DOLLARS[src])
        assert routed.fill.amount_out > 0, (src, dst)
        assert routed.quotes, (src, dst)
        assert routed.route.input_token == src and routed.route.output_token == dst


# -- quotes tell the truth ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "amount"),
    [
        ("SOL", "USDC", "10"),  # two hops, through USDT
        ("SOL", "USDC", "3000"),  # split over direct and two-hop paths
        ("USDC", "SOL", "200000"),  # split, with two tokens split in turn
        ("JUP", "USDC", "100000"),  # two hops split at both
        ("USDC", "SOL", "2500"),  # one pool
    ],
)
def test_the_route_is_exactly_what_apply_route_gives_on_the_state_read(
    src: str, dst: str, amount: str
) -> None:
    routed = route(src, dst, amount)
    request = parse_swap(src, dst, amount, 0)

    again = apply_route(routed.legs, src, dst, request.amount_in, initial(), NOW)

    assert again == routed.fill
    decimals = token(dst).decimals
    assert routed.route.amount_out == format_amount(again.amount_out, decimals)
    assert routed.route.min_amount_out == format_amount(
        min_amount_out(again.amount_out, request.slippage_bps), decimals
    )
    assert [leg.share_bps for leg in routed.route.legs] == [leg.share_bps for leg in routed.legs]
    # Every pool is on one leg: priced once, on the state read.
    assert len({leg.pool_id for leg in routed.legs}) == len(routed.legs)


def test_shares_spell_amounts_as_apply_route_spends_them() -> None:
    assert shares([600, 400]) == [6000, FULL_SHARE]
    assert shares([5]) == [FULL_SHARE]
    # Each share is of what is left: 20% of 1000, then 300 of the 800 left.
    assert shares([200, 300, 500]) == [2000, 3750, FULL_SHARE]
    # A sliver still gets a leg (share_bps must be at least 1).
    assert shares([1, 10**9])[0] == 1

    legs = legs_for(
        over("SOL", "USDC", "meteora-sol-usdc", "raydium-sol-usdc"),
        {"meteora-sol-usdc": 60 * 10**9, "raydium-sol-usdc": 40 * 10**9},
        "SOL",
    )
    fill = apply_route(legs, "SOL", "USDC", 100 * 10**9, initial(), NOW)
    assert [f.amount_in for f in fill.fills] == [60 * 10**9, 40 * 10**9]


def test_legs_spend_the_input_first_then_each_intermediate_token() -> None:
    paths = candidate_paths(parse_swap("USDC", "SOL", "1", 0))
    inputs = {
        "meteora-sol-usdc": 30,
        "raydium-usdc-usdt": 50,
        "meteora-sol-usdt": 25,
        "raydium-sol-usdt": 25,
        "raydium-sol-usdc": 20,
    }
    legs = legs_for(paths, inputs, "USDC")
    # On each token: the constant-product pools largest first, then the
    # DLMM pools, then the smallest constant-product pool takes the rest.
    assert [(leg.pool_id, leg.input_token) for leg in legs] == [
        ("raydium-usdc-usdt", "USDC"),
        ("meteora-sol-usdc", "USDC"),
        ("raydium-sol-usdc", "USDC"),
        ("meteora-sol-usdt", "USDT"),
        ("raydium-sol-usdt", "USDT"),
    ]
    # 50 of 100, then 30 of the 50 left, then the rest.
    assert [leg.share_bps for leg in legs] == [5000, 6000, FULL_SHARE, 5000, FULL_SHARE]


# -- splits against brute force -----------------------------------------------------------


def brute_pair(p1: str, p2: str, input_token: str, amount: int, steps: int = 1000) -> int:
    """The most two pools give for ``amount`` split in ``steps`` equal parts."""
    best = 0
    for k in range(steps + 1):
        x = amount * k // steps
        a, b = out(p1, input_token, x), out(p2, input_token, amount - x)
        if a is not None and b is not None:
            best = max(best, a + b)
    return best


@pytest.mark.parametrize(
    ("src", "dst", "amount", "pools"),
    [
        ("USDC", "SOL", "200000", ("meteora-sol-usdc", "raydium-sol-usdc")),
        ("SOL", "USDC", "3000", ("meteora-sol-usdc", "raydium-sol-usdc")),
        ("JUP", "SOL", "300000", ("meteora-jup-sol", "raydium-jup-sol")),
        ("SOL", "USDT", "1000", ("meteora-sol-usdt", "raydium-sol-usdt")),
    ],
)
def test_a_split_over_two_pools_is_within_its_certified_bound_of_brute_force(
    src: str, dst: str, amount: str, pools: tuple[str, str]
) -> None:
    request = parse_swap(src, dst, amount, 0)
    paths = over(src, dst, *pools)

    routed = route(src, dst, amount, paths=paths)

    got = routed.fill.amount_out
    best_single = max(o for p in pools if (o := out(p, src, request.amount_in)) is not None)
    brute = brute_pair(*pools, src, request.amount_in)
    bound = gap(routed, paths, request.amount_in)
    assert brute > best_single  # a split pays here...
    assert len(routed.legs) == 2 and got > best_single  # ...and the router takes it
    assert brute - got <= bound + rounding(routed)
    assert bound <= got // 10**5  # the bound itself is small: ten millionths of the output


def test_tiny_pools_split_within_the_bound_of_every_integer_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two pools of a few hundred base units, every split of the input tried."""
    real = all_pools()
    cpmm, template = real["raydium-sol-usdc"], real["meteora-sol-usdc"]
    assert isinstance(cpmm, CpmmPool) and isinstance(template, DlmmPool)
    deep = replace(cpmm, id="tiny-cpmm", initial_a=900, initial_b=1_300, fee_rate=2_500)
    min_id, bins = make_bins(0, 100, 4, 150, Shape.CURVE)  # 1% bins about price 1
    dlmm = replace(
        template,
        id="tiny-dlmm",
        params=replace(template.params, bin_step=100),
        initial=replace(template.initial, active_id=0, min_id=min_id, bins=bins, index_reference=0),
    )
    tiny: dict[str, Pool] = {**real, deep.id: deep, dlmm.id: dlmm}
    monkeypatch.setattr(pools_module, "all_pools", lambda: tiny)
    monkeypatch.setattr("orderengine.market.routes.all_pools", lambda: tiny)
    states = {**initial(), deep.id: deep.initial_state(), dlmm.id: dlmm.initial_state()}
    paths = find_paths("SOL", "USDC", [deep, dlmm])

    for amount in (40, 250, 400):
        routed = route_swap(
            parse_swap("SOL", "USDC", format_amount(amount, 9), 0), states, NOW, paths=paths
        )
        every = []
        for x in range(amount + 1):
            a, b = out(deep.id, "SOL", x, states), out(dlmm.id, "SOL", amount - x, states)
            if a is not None and b is not None:
                every.append(a + b)
        bound = certify(paths, states, pool_inputs(routed), amount, NOW, DEFAULT_CHUNKS)
        assert max(every) - routed.fill.amount_out <= bound + len(routed.legs), amount


def test_a_two_hop_split_through_shared_pools_is_within_its_bound_of_brute_force() -> None:
    """JUP -> SOL -> USDC: four paths over four pools, each pool on two of
    them. Brute force: every 1% split of the JUP, then of the SOL it bought."""
    request = parse_swap("JUP", "USDC", "100000", 0)
    amount = request.amount_in
    paths = candidate_paths(request)
    assert len(paths) == 4

    routed = route("JUP", "USDC", "100000")

    brute = 0
    for i in range(101):
        jup = amount * i // 100
        a, b = out("meteora-jup-sol", "JUP", jup), out("raydium-jup-sol", "JUP", amount - jup)
        if a is None or b is None:
            continue
        sol = a + b
        for j in range(101):
            c = out("meteora-sol-usdc", "SOL", sol * j // 100)
            d = out("raydium-sol-usdc", "SOL", sol - sol * j // 100)
            if c is not None and d is not None:
                brute = max(brute, c + d)
    bound = gap(routed, paths, amount)
    assert len(routed.legs) == 4  # both hops split
    assert brute - routed.fill.amount_out <= bound + rounding(routed)
    assert routed.fill.amount_out > brute  # finer than a 1% grid
    assert bound <= routed.fill.amount_out // 10**5


def test_direct_and_two_hop_paths_together_beat_brute_force_on_a_coarse_grid() -> None:
    """SOL -> USDC over all six pools: every 10% split of the SOL over the
    four pools it can enter, and of the USDT bought over the two that sell it."""
    request = parse_swap("SOL", "USDC", "3000", 0)
    amount = request.amount_in
    routed = route("SOL", "USDC", "3000")
    first = ["meteora-sol-usdc", "raydium-sol-usdc", "meteora-sol-usdt", "raydium-sol-usdt"]

    brute = 0
    for parts in itertools.product(range(11), repeat=3):
        if sum(parts) > 10:
            continue
        tenths = [*parts, 10 - sum(parts)]
        got = [out(p, "SOL", amount * t // 10) for p, t in zip(first, tenths, strict=True)]
        if any(g is None for g in got):
            continue
        usdc, usdt = got[0] + got[1], got[2] + got[3]  # type: ignore[operator]
        for j in range(11):
            c = out("meteora-usdc-usdt", "USDT", usdt * j // 10)
            d = out("raydium-usdc-usdt", "USDT", usdt - usdt * j // 10)
            if c is not None and d is not None:
                brute = max(brute, usdc + c + d)

    assert routed.fill.amount_out > brute
    assert gap(routed, candidate_paths(request), amount) <= routed.fill.amount_out // 10**5


def test_the_certificate_catches_a_poor_split() -> None:
    """Half and half where the best split is far from it: the certified gap
    covers what is really lost, and is large."""
    request = parse_swap("USDC", "SOL", "200000", 0)
    amount = request.amount_in
    pools = ("meteora-sol-usdc", "raydium-sol-usdc")
    paths = over("USDC", "SOL", *pools)
    halves = {pools[0]: amount // 2, pools[1]: amount - amount // 2}
    poor = apply_route(legs_for(paths, halves, "USDC"), "USDC", "SOL", amount, initial(), NOW)

    bound = certify(paths, initial(), halves, amount, NOW, DEFAULT_CHUNKS)

    lost = brute_pair(*pools, "USDC", amount) - poor.amount_out
    assert lost > 10**8  # 0.1 SOL and more
    assert bound >= lost
    routed = route("USDC", "SOL", "200000", paths=paths)
    assert gap(routed, paths, amount) < lost // 100


@pytest.mark.parametrize(
    ("src", "dst", "amount"),
    [
        ("SOL", "USDC", "10"),
        ("USDC", "SOL", "2500"),
        ("JUP", "SOL", "1000"),
        ("BONK", "USDC", "100000000"),
    ],
)
def test_a_small_order_takes_one_path_and_no_split_beats_it(
    src: str, dst: str, amount: str
) -> None:
    request = parse_swap(src, dst, amount, 0)
    paths = candidate_paths(request)
    routed = route(src, dst, amount)
    best = routed.singles[0]
    assert alone_is_best(best, paths, initial(), NOW)
    assert [leg.pool_id for leg in routed.legs] == list(best.path.pool_ids)
    assert routed.fill.amount_out == best.amount_out

    split = greedy_split(paths, initial(), request.amount_in, NOW)
    assert split is not None
    forced = apply_route(
        legs_for(paths, split.pool_inputs, src), src, dst, request.amount_in, initial(), NOW
    )
    assert forced.amount_out <= best.amount_out + len(forced.fills)  # rounding at most


def test_a_route_never_gives_less_than_the_best_single_path() -> None:
    for (src, dst), size in itertools.product(
        [("SOL", "USDC"), ("USDC", "SOL"), ("SOL", "USDT"), ("JUP", "USDC"), ("USDT", "BONK")],
        ("1", "30", "300", "3000"),
    ):
        amount = str(Decimal(HUNDRED_DOLLARS[src]) * Decimal(size))
        routed = route(src, dst, amount)
        assert routed.fill.amount_out >= routed.singles[0].amount_out, (src, dst, amount)


def test_a_pool_that_cannot_fill_the_whole_amount_can_still_take_part_of_it() -> None:
    request = parse_swap("SOL", "USDC", "20000", 0)
    assert out("meteora-sol-usdc", "SOL", request.amount_in) is None  # out of bins

    routed = route("SOL", "USDC", "20000")

    assert [q.pool_id for q in routed.quotes] == ["raydium-sol-usdc"]
    taken = pool_inputs(routed)
    assert 0 < taken["meteora-sol-usdc"] < request.amount_in
    assert routed.fill.amount_out > parse_amount(routed.quotes[0].amount_out, 6)


@pytest.mark.parametrize(
    ("src", "dst", "amount"),
    [
        ("BONK", "RAY", "0.00001"),  # one base unit: the first pool's fee takes it all
        ("SOL", "USDC", "0.000000001"),  # one lamport gives less than a base unit of anything
    ],
)
def test_no_route_when_no_path_gives_anything(src: str, dst: str, amount: str) -> None:
    with pytest.raises(NoRouteError, match=f"{src} for {dst}"):
        route(src, dst, amount)


# -- each venue's quote ----------------------------------------------------------------


def test_each_venue_is_quoted_by_its_best_direct_pool_and_the_route_may_beat_both() -> None:
    routed = route("SOL", "USDC", "10")
    amount_in = 10 * 10**9

    assert [q.pool_id for q in routed.quotes] == ["raydium-sol-usdc", "meteora-sol-usdc"]
    for q in routed.quotes:
        got = out(q.pool_id, "SOL", amount_in)
        assert got is not None and q.amount_out == format_amount(got, 6)
        assert q.amount_in == "10"
    # Selling SOL pays more through USDT, where Meteora prices SOL higher.
    assert [leg.pool_id for leg in routed.legs] == ["meteora-sol-usdt", "meteora-usdc-usdt"]
    assert routed.fill.amount_out > parse_amount(routed.quotes[0].amount_out, 6)


def test_a_venue_without_a_pool_for_the_pair_is_quoted_by_its_own_two_hop_path() -> None:
    routed = route("JUP", "USDC", "1000")
    amount_in = 1000 * 10**6

    by_venue = {Venue.from_proto(q.venue): q for q in routed.quotes}
    assert set(by_venue) == {Venue.RAYDIUM, Venue.METEORA}
    for venue, q in by_venue.items():
        first, second = f"{venue.value}-jup-sol", f"{venue.value}-sol-usdc"
        assert q.pool_id == f"{first}>{second}"
        one = quote(all_pools()[first], initial()[first], "JUP", amount_in, NOW)
        two = quote(all_pools()[second], initial()[second], "SOL", one.amount_out, NOW)
        assert q.amount_out == format_amount(two.amount_out, 6)
        # The fee in JUP: the second pool's SOL fee at the rate the first gave.
        fee = one.fee + Fraction(two.fee * amount_in, one.amount_out)
        assert q.fee == format_amount(int(fee), 6)
        path = next(
            p for p in candidate_paths(parse_swap("JUP", "USDC", "1", 0)) if p.name == q.pool_id
        )
        spot = path_spot(path, initial())
        assert spot == (
            spot_price(all_pools()[first], initial()[first], "JUP")
            * spot_price(all_pools()[second], initial()[second], "SOL")
        )
        impact = 1 - Decimal(two.amount_out * spot.denominator) / Decimal(
            amount_in * spot.numerator
        )
        assert Decimal(q.price_impact_pct) == (impact * 100).quantize(Decimal("0.0001"))
    outs = [Decimal(q.amount_out) for q in routed.quotes]
    assert outs == sorted(outs, reverse=True)


# -- on the real chain -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "amount"),
    [
        ("SOL", "USDC", "3000"),  # five legs: direct and through USDT
        ("JUP", "USDC", "1000"),  # two hops
        ("USDC", "SOL", "200000"),  # six legs, two tokens split
    ],
)
def test_a_quoted_route_lands_for_exactly_its_quote_and_moves_the_pools_as_quoted(
    services: Services, redis: Redis, src: str, dst: str, amount: str
) -> None:
    reply = services.quotes().GetQuote(
        quote_service_pb2.GetQuoteRequest(
            input_token=src, output_token=dst, amount=amount, slippage_bps=50
        ),
        timeout=10,
    )
    pool_ids = [leg.pool_id for leg in reply.route.legs]
    before = {pid: state_in(redis, pid) for pid in pool_ids}
    # What the quote priced, again here: the route over the pools as read.
    legs = [
        Leg(leg.pool_id, leg.input_token, leg.output_token, leg.share_bps)
        for leg in reply.route.legs
    ]
    request = parse_swap(src, dst, amount, 0)
    expected = apply_route(legs, src, dst, request.amount_in, before, int(time.time()))
    assert reply.route.amount_out == format_amount(expected.amount_out, token(dst).decimals)

    status = land(services, reply.route)

    assert status.error_code == "", status.error
    assert status.amount_out == reply.route.amount_out
    for pid in pool_ids:
        assert same_but_the_clock(state_in(redis, pid), expected.reserves[pid]), pid


def test_every_pair_is_quoted_over_the_public_api(services: Services) -> None:
    orders = services.orders()
    for src, dst in itertools.permutations(TOKENS, 2):
        reply = orders.QuoteOrder(
            order_service_pb2.QuoteOrderRequest(
                input_token=src, output_token=dst, amount=HUNDRED_DOLLARS[src]
            ),
            timeout=10,
        )
        legs = reply.route.legs
        assert legs[0].input_token == src and legs[-1].output_token == dst, (src, dst)
        assert Decimal(reply.route.amount_out) >= max(Decimal(q.amount_out) for q in reply.quotes)


# -- BatchGetQuotes: GetQuote's answers, one read of the pools -------------------------------

GetQuote = quote_service_pb2.GetQuoteRequest
BatchGetQuotes = quote_service_pb2.BatchGetQuotesRequest


def unary_answers(
    quotes: quote_service_pb2_grpc.QuoteServiceStub,
    requests: Sequence[quote_service_pb2.GetQuoteRequest],
) -> list[object]:
    """What GetQuote answers for each: its reply, or its failure as an item's error."""
    answers: list[object] = []
    for request in requests:
        try:
            answers.append(quotes.GetQuote(request, timeout=10))
        except grpc.RpcError as exc:
            answers.append(item_error_of(exc))
    return answers


def batch_answers(reply: quote_service_pb2.BatchGetQuotesResponse) -> list[object]:
    return [getattr(result, str(result.WhichOneof("result"))) for result in reply.results]


def test_a_batch_answers_each_request_in_order_as_get_quote_would(services: Services) -> None:
    requests = [
        GetQuote(input_token="SOL", output_token="USDC", amount="3000", slippage_bps=50),
        GetQuote(input_token="DOGE", output_token="USDC", amount="1"),
        GetQuote(input_token="JUP", output_token="USDC", amount="1000", slippage_bps=100),
        GetQuote(input_token="JUP", output_token="BONK", amount="0.000001"),
        GetQuote(input_token="USDC", output_token="SOL", amount="200000"),
        GetQuote(input_token="SOL", output_token="USDC", amount="0"),
    ]
    quotes = services.quotes()
    # A DLMM pool's price may move with the clock: compare within one second's quotes.
    for _ in range(3):
        before = unary_answers(quotes, requests)
        batched = batch_answers(
            quotes.BatchGetQuotes(BatchGetQuotes(requests=requests), timeout=10)
        )
        if unary_answers(quotes, requests) == before:
            break
    assert batched == before
    assert [type(answer).__name__ for answer in batched] == [
        "GetQuoteResponse",
        "ItemError",
        "GetQuoteResponse",
        "ItemError",
        "GetQuoteResponse",
        "ItemError",
    ]
    bad_token, no_route, zero = batched[1], batched[3], batched[5]
    assert (bad_token.code, bad_token.reason, bad_token.field) == (  # type: ignore[attr-defined]
        code_pb2.INVALID_ARGUMENT,
        "INVALID_FIELD",
        "input_token",
    )
    assert bad_token.message.startswith("input_token:")  # type: ignore[attr-defined]
    assert (no_route.code, no_route.reason, no_route.field) == (  # type: ignore[attr-defined]
        code_pb2.FAILED_PRECONDITION,
        "NO_ROUTE",
        "",
    )
    assert zero.field == "amount"  # type: ignore[attr-defined]


def evalsha_calls(redis: Redis) -> int:
    return int(redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_batch_of_quotes_is_priced_on_one_read_of_the_pools(
    services: Services, redis: Redis
) -> None:
    """One script call reads every pool the quotes need: one round trip,
    one snapshot of the market."""
    requests = [
        GetQuote(input_token="SOL", output_token="USDC", amount="10"),
        GetQuote(input_token="JUP", output_token="BONK", amount="100"),
        GetQuote(input_token="RAY", output_token="USDT", amount="50"),
        GetQuote(input_token="SOL", output_token="USDC", amount="10"),
    ]
    quotes = services.quotes()
    quotes.BatchGetQuotes(BatchGetQuotes(requests=requests), timeout=10)  # seeds the pools
    before = evalsha_calls(redis)

    results = quotes.BatchGetQuotes(BatchGetQuotes(requests=requests), timeout=10).results

    assert evalsha_calls(redis) - before == 1
    assert [r.WhichOneof("result") for r in results] == ["response"] * 4
    assert results[0].response == results[3].response


def test_requests_alike_in_a_batch_are_routed_once_and_answered_alike(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one snapshot the same swap has one answer, so it is priced once:
    a job's orders of one size cost QuoteService one routing, not one each."""
    routed: list[str] = []

    def counted(request: SwapRequest, *args: object, **kwargs: object) -> Routed:
        routed.append(f"{request.amount_in} {request.input_token}")
        return route_swap(request, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(quote_service, "route_swap", counted)
    same = GetQuote(input_token="SOL", output_token="USDC", amount="10", slippage_bps=50)
    other = GetQuote(input_token="SOL", output_token="USDC", amount="11", slippage_bps=50)
    requests = [same, other, same, same, other]
    quotes = services.quotes()

    results = quotes.BatchGetQuotes(BatchGetQuotes(requests=requests), timeout=10).results

    assert sorted(routed) == ["10000000000 SOL", "11000000000 SOL"]
    assert [r.WhichOneof("result") for r in results] == ["response"] * 5
    answers = [r.response for r in results]
    assert answers[0] == answers[2] == answers[3] != answers[1] == answers[4]
    assert answers[0].route.amount_in == "10"


def test_a_batch_takes_at_most_64_quotes_and_none_answers_none(services: Services) -> None:
    quotes = services.quotes()
    small = [GetQuote(input_token="SOL", output_token="USDC", amount="1")] * (
        MAX_QUOTES_PER_CALL + 1
    )
    assert MAX_QUOTES_PER_CALL == 64

    results = quotes.BatchGetQuotes(BatchGetQuotes(requests=small[:64]), timeout=10).results
    assert [r.WhichOneof("result") for r in results] == ["response"] * 64

    error = rejected(lambda: quotes.BatchGetQuotes(BatchGetQuotes(requests=small), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("requests:") and "65" in (error.details() or "")
    assert field_violations(error) == ["requests"]

    assert not quotes.BatchGetQuotes(BatchGetQuotes(), timeout=10).results


def test_a_job_quotes_its_orders_in_one_call_and_fails_only_the_one_without_a_route(
    services: Services, engine: Processes, store: OrderStore, redis: Redis
) -> None:
    """One job, three orders: one BatchGetQuotes and one BatchSubmitSwaps. The
    order no pool can fill fails on its own, as with GetQuote alone; the
    others are confirmed."""
    swaps = [("SOL", "USDC", 10 * 10**9), ("JUP", "BONK", 1), ("USDC", "SOL", 100 * 10**6)]
    order_ids = [
        store.submit(
            NewOrder(
                owner=OWNER, input_token=src, output_token=dst, amount_in=amount, slippage_bps=50
            )
        )[0].order_id
        for src, dst, amount in swaps
    ]
    enqueue_orders(order_queue(redis, Settings().queue_name), order_ids)  # one job

    events = [watch_all(services.orders(), order_id) for order_id in order_ids]

    assert [statuses(e)[-1] for e in events] == ["CONFIRMED", "FAILED", "CONFIRMED"]
    failed = events[1][-1]
    assert failed.reason_code == "NO_ROUTE"
    assert failed.reason.startswith("no route: ") and "JUP" in failed.reason
