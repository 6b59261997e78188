"""A wallet's balances on the wire and back: what each owner holds of each
token, in base units inside, as TokenBalance messages (whole-token decimal
strings) outside. The chain keeps the wallets (executor/chain/wallets.py);
OrderService passes them on."""

from __future__ import annotations

from collections.abc import Iterable

from orderengine.amounts import format_amount
from orderengine.tokens import TOKENS, token
from orderengine.v1 import wallet_pb2

# Base units per token symbol; a token absent is none.
Holdings = dict[str, int]


def token_balance(symbol: str, units: int) -> wallet_pb2.TokenBalance:
    decimals = token(symbol).decimals
    return wallet_pb2.TokenBalance(
        token=symbol, amount=format_amount(units, decimals), decimals=decimals
    )


def balances_to_proto(
    holdings: Holdings, symbols: Iterable[str] = TOKENS
) -> list[wallet_pb2.TokenBalance]:
    """The tokens ``symbols`` (every token the engine trades, SOL first,
    unless told), zero balances included."""
    return [token_balance(symbol, holdings.get(symbol, 0)) for symbol in symbols]


def holdings_of(balances: Iterable[wallet_pb2.TokenBalance]) -> Holdings:
    """Base units from TokenBalance messages (each amount a decimal string
    with at most its token's decimals, as token_balance writes it)."""
    held: Holdings = {}
    for balance in balances:
        decimals = token(balance.token).decimals
        whole, _, frac = balance.amount.partition(".")
        held[balance.token] = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or 0)
    return held
