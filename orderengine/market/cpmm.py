"""Constant-product (x*y=k) swap math as Raydium's CPMM and AMM v4 do it:
the fee is taken from the input first and rounds up, the output rounds down,
so k never falls."""

from __future__ import annotations

from dataclasses import dataclass

from orderengine.market.pools import FEE_DENOMINATOR


@dataclass(frozen=True)
class SwapResult:
    amount_out: int
    fee: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def swap_exact_in(reserve_in: int, reserve_out: int, amount_in: int, fee_rate: int) -> SwapResult:
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return SwapResult(0, 0)
    fee = _ceil_div(amount_in * fee_rate, FEE_DENOMINATOR)
    net = amount_in - fee
    out = reserve_out - _ceil_div(reserve_in * reserve_out, reserve_in + net)
    return SwapResult(max(out, 0), fee)
