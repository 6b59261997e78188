"""A route's figures as a person reads them: each leg's share of what the
route spends of its token (adding up to 100.00), and the price per token."""

from __future__ import annotations

from decimal import Decimal

from orderengine.client.route_figures import decimal_text, leg_shares, price
from orderengine.v1 import market_pb2


def route(*legs: tuple[str, str, str]) -> market_pb2.Route:
    """Legs as (input token, output token, amount in)."""
    return market_pb2.Route(
        legs=[
            market_pb2.RouteLeg(input_token=src, output_token=dst, amount_in=amount)
            for src, dst, amount in legs
        ]
    )


def test_shares_are_of_all_the_route_spends_of_each_token() -> None:
    # 3000 SOL: 495 + 1290.075 + 900.01644 + 314.90856, then the USDT bought.
    split = route(
        ("SOL", "USDC", "495"),
        ("SOL", "USDC", "1290.075"),
        ("SOL", "USDT", "900.01644"),
        ("SOL", "USDT", "314.90856"),
        ("USDT", "USDC", "169184.431514"),
    )
    # 16.5%, 43.0025%, 30.000548%, 10.496952%; the USDT leg takes all of it.
    assert leg_shares(split) == [
        Decimal("16.50"),
        Decimal("43.00"),
        Decimal("30.00"),
        Decimal("10.50"),
        Decimal("100.00"),
    ]
    # A path: each hop spends all it holds.
    path = route(("JUP", "SOL", "1000"), ("SOL", "USDC", "5.808020722"))
    assert leg_shares(path) == [Decimal("100.00"), Decimal("100.00")]


def test_rounded_shares_still_add_up_to_a_hundred() -> None:
    # Thirds: 33.333...% each; rounding alone would show 99.99%.
    thirds = leg_shares(route(("SOL", "USDC", "1"), ("SOL", "USDC", "1"), ("SOL", "USDT", "1")))
    assert thirds == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    # 1/6 = 16.6666..%, 5/6 = 83.3333..%: the larger remainder gets the hundredth.
    sixths = leg_shares(route(("SOL", "USDC", "1"), ("SOL", "USDT", "5")))
    assert sixths == [Decimal("16.67"), Decimal("83.33")]
    # A sliver keeps its hundredth's floor: 0.00%, and the rest 100.00%.
    assert leg_shares(route(("SOL", "USDC", "0.000000001"), ("SOL", "USDT", "1000"))) == [
        Decimal("0.00"),
        Decimal("100.00"),
    ]


def test_the_price_per_token_has_six_significant_digits() -> None:
    # 417114.701791 / 3000 = 139.03823393...; 3000 / 417114.701791 = 0.0071922662...
    assert decimal_text(price("3000", "417114.701791")) == "139.038"
    assert decimal_text(price("417114.701791", "3000")) == "0.00719227"
    # No exponent either way, and no trailing zeros.
    assert decimal_text(price("1", "7000000")) == "7000000"
    assert decimal_text(price("7000000", "1")) == "0.000000142857"
    assert decimal_text(price("4", "2")) == "0.5"
    assert price("0", "5") == 0
