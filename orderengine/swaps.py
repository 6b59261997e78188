"""A swap as a client asks for it, checked field by field. OrderService and
QuoteService accept the same fields and reject them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orderengine.amounts import AmountError, parse_amount
from orderengine.client.requests import DEFAULT_SLIPPAGE_BPS as DEFAULT_SLIPPAGE_BPS
from orderengine.errors import FieldError
from orderengine.tokens import SYMBOL_SHAPE, Token, UnknownTokenError, token

MAX_SLIPPAGE_BPS = 5_000


@dataclass(frozen=True)
class SwapRequest:
    input_token: str
    output_token: str
    # Base units of the input token.
    amount_in: int
    slippage_bps: int


def token_field(field: str, symbol: str) -> Token:
    """The token a request's field names; FieldError naming it."""
    try:
        return token(symbol)
    except UnknownTokenError as exc:
        raise FieldError(field, str(exc)) from None


def amount_field(field: str, amount: str, of: Token) -> int:
    """Base units of ``of`` from a request's whole-token decimal string;
    FieldError naming the field."""
    if not amount.strip():
        raise FieldError(field, 'is required, e.g. "10" or "0.25"')
    try:
        return parse_amount(amount, of.decimals)
    except AmountError as exc:
        raise FieldError(field, f"{exc}") from None


def symbol_field(field: str, symbol: str) -> str:
    """A token's symbol, known or not yet launched (a sniper's output);
    FieldError naming the field when it cannot be a symbol."""
    try:
        return token(symbol).symbol
    except UnknownTokenError:
        text = symbol.strip().upper() if symbol.isascii() else ""
        if not SYMBOL_SHAPE.match(text):
            raise FieldError(
                field,
                f"{symbol[:16]!r} is no token symbol (2 to 10 letters and digits, a letter first)",
            ) from None
        return text


def parse_swap(
    input_token: str,
    output_token: str,
    amount: str,
    slippage_bps: int,
    output_launched_later: bool = False,
) -> SwapRequest:
    """Raises FieldError naming the first bad field. With
    ``output_launched_later`` (a sniper) the output token may be one not
    launched yet: only its symbol's shape is checked."""
    src = token_field("input_token", input_token)
    dst = (
        symbol_field("output_token", output_token)
        if output_launched_later
        else token_field("output_token", output_token).symbol
    )
    if src.symbol == dst:
        raise FieldError("output_token", f"must differ from input_token ({src.symbol})")
    units = amount_field("amount", amount, src)
    slippage = slippage_bps or DEFAULT_SLIPPAGE_BPS
    if not 1 <= slippage <= MAX_SLIPPAGE_BPS:
        raise FieldError(
            "slippage_bps", f"must be 1 to {MAX_SLIPPAGE_BPS} basis points, got {slippage_bps}"
        )
    return SwapRequest(src.symbol, dst, units, slippage)


class SwapFields(Protocol):
    """A request that asks for a swap (SubmitOrder, QuoteOrder, GetQuote)."""

    input_token: str
    output_token: str
    amount: str
    slippage_bps: int


def swap_of(request: SwapFields) -> SwapRequest:
    """``parse_swap`` of a request's own fields."""
    return parse_swap(
        request.input_token, request.output_token, request.amount, request.slippage_bps
    )
