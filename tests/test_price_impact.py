"""The route's price impact, 1 - amount_out / (amount_in * the route's spot
rate), against values computed by hand; and the refusal of an order whose
impact is above MAX_PRICE_IMPACT_PCT (15%): by GetQuote, by QuoteOrder, by
SubmitOrder (nothing stored), over HTTP, and of an order routed after the
market moved against it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fractions import Fraction

import grpc
import httpx
import pytest
from google.rpc import code_pb2
from redis import Redis

from order_service import price_impact
from order_service.price_impact import PriceImpactCheck
from orderengine.market.pools import PoolState, all_pools, spot_price
from orderengine.order_queue import enqueue_orders, order_queue
from orderengine.settings import Settings
from orderengine.store.changes import NewOrder
from orderengine.store.models import StoredOrder
from orderengine.store.orders import OrderStore
from orderengine.swaps import parse_swap
from orderengine.v1 import order_service_pb2, quote_service_pb2
from router_service.impact import PriceImpact
from router_service.paths import find_paths
from router_service.routing import route_swap
from tests.conftest import OWNER, GatewayServer, Processes, Services, auth
from tests.helpers import field_violations, item_error_of, rejected, statuses, watch_all

NOW = 1_000_000
# Above the default maximum (15%): 21.6% on the market as pools.toml starts it.
TOO_MUCH = ("SOL", "USDC", "100000")
# Below it: 13.3%.
JUST_UNDER = ("SOL", "USDC", "60000")


def initial() -> dict[str, PoolState]:
    return {p.id: p.initial_state() for p in all_pools().values()}


def four_places(impact: Fraction) -> str:
    pct = impact * 100
    return f"{(Decimal(pct.numerator) / Decimal(pct.denominator)).quantize(Decimal('0.0001')):f}"


# -- the definition, by hand ----------------------------------------------------------


def test_a_swap_within_one_dlmm_bin_has_the_pool_fee_as_its_impact() -> None:
    # 2,500 USDC buys SOL in Meteora's active bin at its price, less the
    # base fee, 0.1%, on the input (the volatility fee is 0 in the bin it
    # starts in): out = floor(2,497.5 USDC * bin price); the impact is the
    # fee and a base unit of rounding in 1.8 * 10^10.
    routed = route_swap(parse_swap("USDC", "SOL", "2500", 0), initial(), NOW)
    assert [leg.pool_id for leg in routed.legs] == ["meteora-sol-usdc"]
    assert routed.route.price_impact_pct == "0.1000"


def test_a_split_route_is_measured_against_its_legs_at_spot_prices() -> None:
    """The worked example of docs/market.md: 200,000 USDC over the two
    SOL/USDC pools, 84,000 to Meteora and 116,000 to Raydium."""
    pools = all_pools()
    meteora, raydium = pools["meteora-sol-usdc"], pools["raydium-sol-usdc"]
    states = initial()
    paths = find_paths("USDC", "SOL", [meteora, raydium])
    routed = route_swap(parse_swap("USDC", "SOL", "200000", 0), states, NOW, paths=paths)
    assert [(f.leg.pool_id, f.amount_in) for f in routed.fill.fills] == [
        ("meteora-sol-usdc", 84_000 * 10**6),
        ("raydium-sol-usdc", 116_000 * 10**6),
    ]
    assert routed.fill.amount_out == 1_421_720_205_114

    # Raydium's spot: 250,000 SOL for 35,000,000 USDC, 1/140 SOL a USDC.
    raydium_spot = Fraction(250_000 * 10**9, 35_000_000 * 10**6)
    assert spot_price(raydium, states[raydium.id], "USDC") == raydium_spot
    # Meteora's: its active bin's price (about 139.6 USDC a SOL).
    meteora_spot = spot_price(meteora, states[meteora.id], "USDC")
    assert abs(1000 / meteora_spot - Fraction(1396, 10)) < Fraction(1, 10)
    at_spot = 84_000 * 10**6 * meteora_spot + 116_000 * 10**6 * raydium_spot
    impact = 1 - 1_421_720_205_114 / at_spot

    assert routed.route.price_impact_pct == four_places(impact)
    # Roughly: 84,000 / 139.6 + 116,000 / 140 = 1,430.29 SOL at spot, and
    # 1 - 1,421.72 / 1,430.29 = 0.60%.
    assert routed.route.price_impact_pct == "0.6009"
    assert routed.price_impact.value == impact


def test_a_route_down_one_path_is_measured_against_the_product_of_its_spots() -> None:
    """1,000 JUP to USDC goes whole through SOL, Meteora's JUP pool then
    Raydium's SOL/USDC pool: Meteora's 0.1% fee and Raydium's 0.25% are
    most of its impact."""
    pools = all_pools()
    states = initial()
    routed = route_swap(parse_swap("JUP", "USDC", "1000", 0), states, NOW)
    assert [(leg.pool_id, leg.share_bps) for leg in routed.legs] == [
        ("meteora-jup-sol", 10_000),
        ("raydium-sol-usdc", 10_000),
    ]
    spot = spot_price(pools["meteora-jup-sol"], states["meteora-jup-sol"], "JUP") * spot_price(
        pools["raydium-sol-usdc"], states["raydium-sol-usdc"], "SOL"
    )

    impact = 1 - Fraction(routed.fill.amount_out) / (1000 * 10**6 * spot)

    assert routed.route.price_impact_pct == four_places(impact)
    assert Decimal("0.35") < Decimal(routed.route.price_impact_pct) < Decimal("0.36")


def test_a_venue_s_route_has_its_quote_s_impact() -> None:
    raydium = [p for p in all_pools().values() if p.venue.value == "raydium"]
    paths = find_paths("JUP", "USDC", raydium)

    routed = route_swap(parse_swap("JUP", "USDC", "1000", 0), initial(), NOW, paths=paths)

    (quote,) = routed.quotes
    assert quote.pool_id == "raydium-jup-sol>raydium-sol-usdc"
    assert routed.route.price_impact_pct == quote.price_impact_pct


def test_the_maximum_is_inclusive() -> None:
    # 85 of 100 at a spot of 1: exactly 15% lost, not above 15%; 84: above.
    assert not PriceImpact(100, 85, Fraction(1)).above(Fraction(15))
    assert PriceImpact(100, 84, Fraction(1)).above(Fraction(15))
    assert PriceImpact(100, 84, Fraction(1)).percent() == "16.0000"
    # A spot of 3/2: 150 at spot, 127 is 15.33% short.
    assert PriceImpact(100, 127, Fraction(3, 2)).above(Fraction(153, 10))
    assert not PriceImpact(100, 127, Fraction(3, 2)).above(Fraction(154, 10))


# -- the refusal --------------------------------------------------------------------


def quote_request(src: str, dst: str, amount: str) -> quote_service_pb2.GetQuoteRequest:
    return quote_service_pb2.GetQuoteRequest(input_token=src, output_token=dst, amount=amount)


def assert_refused_for_impact(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    item = item_error_of(error)
    assert item.reason == "PRICE_IMPACT_TOO_HIGH"
    assert field_violations(error) == ["amount"]
    impact = Decimal(item.metadata["price_impact_pct"])
    assert 21 < impact < 22
    assert item.metadata["max_price_impact_pct"] == "15"
    assert item.message == (
        f"amount: the route's price impact would be {item.metadata['price_impact_pct']}%, "
        "above the most allowed, 15% (MAX_PRICE_IMPACT_PCT); a smaller amount moves the "
        "price less"
    )


def test_get_quote_refuses_a_route_above_the_maximum_impact(services: Services) -> None:
    quotes = services.quotes()
    assert Settings().max_price_impact_pct == 15  # the default

    assert_refused_for_impact(
        rejected(lambda: quotes.GetQuote(quote_request(*TOO_MUCH), timeout=10))
    )
    under = quotes.GetQuote(quote_request(*JUST_UNDER), timeout=10)
    assert 13 < Decimal(under.route.price_impact_pct) < 15

    batch = quotes.BatchGetQuotes(
        quote_service_pb2.BatchGetQuotesRequest(
            requests=[quote_request(*JUST_UNDER), quote_request(*TOO_MUCH)]
        ),
        timeout=10,
    ).results
    assert [r.WhichOneof("result") for r in batch] == ["response", "error"]
    assert batch[1].error.code == code_pb2.FAILED_PRECONDITION
    assert (batch[1].error.reason, batch[1].error.field) == ("PRICE_IMPACT_TOO_HIGH", "amount")


def test_quote_order_passes_the_refusal_on(services: Services) -> None:
    src, dst, amount = TOO_MUCH
    request = order_service_pb2.QuoteOrderRequest(input_token=src, output_token=dst, amount=amount)
    assert_refused_for_impact(rejected(lambda: services.orders().QuoteOrder(request, timeout=10)))


def submit(
    src: str, dst: str, amount: str, client_order_id: str = ""
) -> order_service_pb2.SubmitOrderRequest:
    return order_service_pb2.SubmitOrderRequest(
        input_token=src, output_token=dst, amount=amount, client_order_id=client_order_id
    )


def stored_too_much(store: OrderStore, client_order_id: str | None = None) -> StoredOrder:
    """TOO_MUCH, stored as SubmitOrder would have stored it without its check."""
    src, dst, _ = TOO_MUCH
    row, _ = store.submit(
        NewOrder(
            owner=OWNER,
            input_token=src,
            output_token=dst,
            amount_in=100_000 * 10**9,
            slippage_bps=50,
            client_order_id=client_order_id,
        )
    )
    return row


def test_submit_refuses_an_order_above_the_maximum_impact_and_stores_nothing(
    services: Services, store: OrderStore
) -> None:
    orders = services.orders()

    assert_refused_for_impact(rejected(lambda: orders.SubmitOrder(submit(*TOO_MUCH), timeout=10)))
    assert store.list_page(OWNER, 10) == ([], "")

    # In a batch, only that order is refused.
    results = orders.BatchSubmitOrders(
        order_service_pb2.BatchSubmitOrdersRequest(
            requests=[submit(*JUST_UNDER), submit(*TOO_MUCH), submit("SOL", "USDC", "1")]
        ),
        timeout=10,
    ).results
    assert [r.WhichOneof("result") for r in results] == ["response", "error", "response"]
    assert results[1].error.reason == "PRICE_IMPACT_TOO_HIGH"
    assert results[1].error.field == "amount"
    stored, _ = store.list_page(OWNER, 10)
    assert sorted(o.amount_in for o in stored) == [10**9, 60_000 * 10**9]


def test_a_resubmission_of_a_stored_order_is_answered_with_it(
    services: Services, store: OrderStore
) -> None:
    """Stored before the market moved (here: before the check existed); the
    same order again names the stored one rather than being refused."""
    row = stored_too_much(store, client_order_id="big-one")

    reply = services.orders().SubmitOrder(submit(*TOO_MUCH, client_order_id="big-one"), timeout=10)

    assert reply.already_exists and reply.order.order_id == row.order_id


def test_over_http_the_refusal_is_a_409_naming_amount_and_a_quote_shows_the_route_s_impact(
    gateway: GatewayServer,
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=15, headers=auth()) as http:
        src, dst, amount = TOO_MUCH
        body = {"inputToken": src, "outputToken": dst, "amount": amount}
        refused = http.post("/api/orders", json=body)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["reason"], error["field"]) == (
            "FAILED_PRECONDITION",
            "PRICE_IMPACT_TOO_HIGH",
            "amount",
        )
        assert "price impact would be 21." in error["message"]

        shown = http.get(
            "/api/quote", params={"inputToken": "USDC", "outputToken": "SOL", "amount": "2500"}
        )
        assert shown.status_code == 200, shown.text
        assert shown.json()["route"]["priceImpactPct"] == "0.1000"


def test_an_order_routed_above_the_maximum_impact_fails_with_its_reason(
    services: Services, engine: Processes, store: OrderStore, redis: Redis
) -> None:
    """Stored without SubmitOrder's check, as an order the market moved
    against after its submit: its worker's quote refuses it, and it fails
    (not retried) with PRICE_IMPACT_TOO_HIGH."""
    row = stored_too_much(store)
    enqueue_orders(order_queue(redis, Settings().queue_name), [row.order_id])

    events = watch_all(services.orders(), row.order_id)

    assert statuses(events) == ["PENDING", "FAILED"]
    assert events[-1].reason_code == "PRICE_IMPACT_TOO_HIGH"
    assert "price impact would be 21." in events[-1].reason
    assert events[-1].attempt == 1


@pytest.mark.parametrize("raw", ["0", "100.5", "fifteen"])
def test_the_maximum_is_a_percentage_above_0_and_at_most_100(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_PRICE_IMPACT_PCT", raw)
    with pytest.raises(ValueError, match="MAX_PRICE_IMPACT_PCT must be a percentage"):
        Settings()


def test_an_order_no_larger_than_one_just_passed_is_not_quoted_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route's impact grows with its size: once QuoteService passed an
    amount of a pair, a smaller one of that pair within PASSED_SECONDS is
    taken without a quote; a larger one, another pair, or one after that
    while is quoted, and a refusal is never remembered as a pass."""
    asked: list[list[tuple[str, str, str]]] = []
    quotes = services.quotes()

    class Counting:
        async def BatchGetQuotes(
            self, request: quote_service_pb2.BatchGetQuotesRequest, timeout: float
        ) -> quote_service_pb2.BatchGetQuotesResponse:
            asked.append([(r.input_token, r.output_token, r.amount) for r in request.requests])
            return quotes.BatchGetQuotes(request, timeout=timeout)

    def new(src: str, dst: str, whole: int) -> NewOrder:
        units = whole * 10 ** (9 if src == "SOL" else 6)
        return NewOrder(
            owner=OWNER, input_token=src, output_token=dst, amount_in=units, slippage_bps=50
        )

    clock = [1_000.0]
    monkeypatch.setattr(price_impact.time, "monotonic", lambda: clock[0])
    check = PriceImpactCheck(Counting())  # type: ignore[arg-type]

    async def run() -> None:
        assert await check.refusals([new("SOL", "USDC", 10)]) == {}
        # Smaller, same pair: not asked. The other direction: asked.
        assert await check.refusals([new("SOL", "USDC", 5), new("USDC", "SOL", 5)]) == {}
        # Too large: asked and refused, and still asked the next time.
        assert list(await check.refusals([new(*TOO_MUCH[:2], 100_000)])) == [0]
        assert list(await check.refusals([new(*TOO_MUCH[:2], 100_000)])) == [0]
        # What passed a while ago is asked again.
        clock[0] += price_impact.PASSED_SECONDS
        assert await check.refusals([new("SOL", "USDC", 5)]) == {}

    asyncio.run(run())
    assert asked == [
        [("SOL", "USDC", "10")],
        [("USDC", "SOL", "5")],
        [("SOL", "USDC", "100000")],
        [("SOL", "USDC", "100000")],
        [("SOL", "USDC", "5")],
    ]
