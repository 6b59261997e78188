"""``orderengine quote``: each venue's quote beside the route, over the public
QuoteOrder RPC of the services running in this process."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from orderengine.v1 import order_service_pb2
from tests.conftest import Services
from tests.helpers import run_cli


def test_quote_prints_each_venue_beside_the_route_and_its_legs(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, services, "quote", "SOL", "USDC", "5000")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "5000 SOL -> USDC, slippage 50 bps"

    reply = services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="5000"),
        timeout=10,
    )
    # One row per venue, with its amount out, fee, impact and pool; then the route's row.
    for quote in reply.quotes:
        venue = {1: "raydium", 2: "meteora"}[quote.venue]
        row = next(line for line in lines if line.startswith(venue))
        assert row.split()[1:5] == [
            quote.amount_out,
            quote.fee,
            f"{quote.price_impact_pct}%",
            quote.pool_id,
        ]
    route_row = next(line for line in lines if line.startswith("route "))
    assert route_row.split()[1:3] == [reply.route.amount_out, f"{reply.route.price_impact_pct}%"]
    assert f"{len(reply.route.legs)} legs over" in route_row
    assert "more than the best venue" in route_row  # 5000 SOL is worth splitting

    # Each leg in order, its pool and amounts, the shares of each token adding up.
    start = lines.index("route, leg by leg:") + 2
    legs = lines[start : start + len(reply.route.legs)]
    shares: dict[str, Decimal] = {}
    for i, (line, leg) in enumerate(zip(legs, reply.route.legs, strict=True), 1):
        assert line.split()[:3] == [f"{i}.", {1: "raydium", 2: "meteora"}[leg.venue], leg.pool_id]
        assert f"{leg.amount_in} {leg.input_token}" in line
        assert f"{leg.amount_out} {leg.output_token}" in line
        share = re.search(r"([\d.]+)% of (\w+)", line)
        assert share and share.group(2) == leg.input_token
        shares[leg.input_token] = shares.get(leg.input_token, Decimal(0)) + Decimal(share.group(1))
    assert all(abs(total - 100) <= Decimal("0.05") for total in shares.values()), shares
    assert lines[-1] == (
        f"expect {reply.route.amount_out} USDC, at least {reply.route.min_amount_out} USDC"
    )


def test_quote_takes_the_slippage_and_routes_a_pair_without_a_pool_through_sol(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, services, "quote", "JUP", "USDC", "1000", "--slippage-bps", "100"
    )
    assert code == 0, err
    assert out.splitlines()[0] == "1000 JUP -> USDC, slippage 100 bps"
    legs = out[out.index("route, leg by leg:") :].splitlines()[2:4]
    assert "JUP" in legs[0] and "SOL" in legs[0]
    assert "SOL" in legs[1] and "USDC" in legs[1]
    expect, least = re.findall(r"[\d.]+(?= USDC)", out.splitlines()[-1])
    assert Decimal(least) == (Decimal(expect) * 9900 / 10_000).quantize(
        Decimal("0.000001"), rounding="ROUND_DOWN"
    )


def test_a_bad_quote_is_an_error_naming_the_field(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, services, "quote", "SOL", "DOGE", "1")
    assert code == 2
    assert out == ""
    assert err.startswith("error: INVALID_ARGUMENT: output_token: unknown token 'DOGE'")


def test_quote_json_is_the_reply_for_a_script(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, services, "quote", "SOL", "USDC", "5000", "--json")
    assert code == 0, err
    quoted = json.loads(out)
    reply = services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="5000"),
        timeout=10,
    )
    assert [(q["venue"], q["amountOut"]) for q in quoted["quotes"]] == [
        ({1: "VENUE_RAYDIUM", 2: "VENUE_METEORA"}[q.venue], q.amount_out) for q in reply.quotes
    ]
    route = quoted["route"]
    assert (route["amountOut"], route["minAmountOut"]) == (
        reply.route.amount_out,
        reply.route.min_amount_out,
    )
    assert [leg["poolId"] for leg in route["legs"]] == [leg.pool_id for leg in reply.route.legs]
