"""Amounts: decimal strings in whole-token units on the wire, integers in the
token's base units inside. Never a float in between."""

from __future__ import annotations

import re

# SPL token amounts are u64 on chain: the bound the amount type, the store
# (its BIGINT columns hold a u64's bits, store/models.py U64), the pools'
# state in Redis and the simulated programs share.
MAX_BASE_UNITS = 2**64 - 1

# ASCII digits only: int() would also take Arabic-Indic or fullwidth digits.
_DECIMAL = re.compile(r"^(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")


class AmountError(ValueError):
    pass


def parse_amount(text: str, decimals: int) -> int:
    """``"1.5"`` with 9 decimals -> 1_500_000_000. Rejects anything that is not
    a plain positive decimal number representable in the token's base units."""
    raw = text.strip()
    if len(raw) > 40:
        raise AmountError("must be a decimal number of at most 40 characters")
    match = _DECIMAL.match(raw)
    if match is None:
        raise AmountError(f"must be a positive decimal number like '10' or '0.25', got {text!r}")
    frac = (match["frac"] or "").rstrip("0")
    if len(frac) > decimals:
        raise AmountError(f"has {len(frac)} decimal places; this token has {decimals}")
    units = int(match["whole"]) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if units <= 0:
        raise AmountError("must be greater than zero")
    if units > MAX_BASE_UNITS:
        raise AmountError(f"is too large: at most {format_amount(MAX_BASE_UNITS, decimals)}")
    return units


def fits(units: int) -> bool:
    """Whether ``units`` is an amount the engine, the store and the programs hold."""
    return 0 <= units <= MAX_BASE_UNITS


def format_amount(units: int, decimals: int) -> str:
    """1_500_000_000 with 9 decimals -> ``"1.5"``; no trailing zeros."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"
