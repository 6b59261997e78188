"""What a route's amounts say to a person: each leg's share of what the route
spends of its token, and the price per token. The CLI prints them and the
gateway sends them to the page, so both show the same numbers.

A leg's ``share_bps`` is of what is held at that point of the route (the
last leg on a token takes the rest), which reads as nonsense beside the
others: 16.5%, then 51.5% of the rest, then ... These are of the whole."""

from __future__ import annotations

from decimal import Decimal, localcontext

from orderengine.v1 import market_pb2

# Hundredths of a percent in a whole.
WHOLE = 10_000
# A price to this many significant digits: enough to tell two quotes apart,
# few enough to read.
PRICE_DIGITS = 6


def leg_shares(route: market_pb2.Route) -> list[Decimal]:
    """Each leg's ``amount_in`` as a percentage (two decimals) of what the
    route spends of that leg's input token. The shares of one token add up
    to exactly 100.00: the hundredths that rounding down leaves go to the
    legs it cut most (largest remainders)."""
    hundredths = [0] * len(route.legs)
    by_token: dict[str, list[int]] = {}
    for i, leg in enumerate(route.legs):
        by_token.setdefault(leg.input_token, []).append(i)
    for mine in by_token.values():
        if len(mine) == 1:  # a hop: it spends all there is
            hundredths[mine[0]] = WHOLE
            continue
        texts = [route.legs[i].amount_in or "0" for i in mine]
        places = max(len(text.partition(".")[2]) for text in texts)
        amounts = [_units(text, places) for text in texts]
        total = sum(amounts)
        if not total:
            continue
        cut = [divmod(amount * WHOLE, total) for amount in amounts]
        short = WHOLE - sum(floor for floor, _ in cut)
        # Stable: of two legs cut alike, the earlier gets the hundredth.
        favoured = set(sorted(range(len(mine)), key=lambda j: -cut[j][1])[:short])
        for j, i in enumerate(mine):
            hundredths[i] = cut[j][0] + (j in favoured)
    return [Decimal(units).scaleb(-2) for units in hundredths]


def _units(amount: str, places: int) -> int:
    """``"1290.075"`` with 3 places -> 1290075: a wire amount (a plain
    decimal string) as a whole number, exactly."""
    whole, _, fraction = amount.partition(".")
    return int(whole or "0") * 10**places + int(fraction.ljust(places, "0") or "0")


def price(amount_in: str, amount_out: str) -> Decimal:
    """What one input token gets: ``amount_out / amount_in``, to
    PRICE_DIGITS significant digits (0 for no input). The price the other
    way is ``price(amount_out, amount_in)``."""
    spend, get = Decimal(amount_in or 0), Decimal(amount_out or 0)
    if not spend:
        return Decimal(0)
    with localcontext() as context:
        context.prec = PRICE_DIGITS
        return (get / spend).normalize()


def decimal_text(value: Decimal) -> str:
    """``1.4E-5`` as ``0.000014``, ``7E+6`` as ``7000000``: as the wire writes amounts."""
    return format(value, "f")
