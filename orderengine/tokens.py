"""The SPL tokens the engine trades: symbol, mint address and decimals."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    symbol: str
    mint: str
    decimals: int


# Real mainnet mints and decimals.
TOKENS: dict[str, Token] = {
    t.symbol: t
    for t in (
        Token("SOL", "So11111111111111111111111111111111111111112", 9),
        Token("USDC", "EPjFWJd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6),
        Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6),
        Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6),
        Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5),
        Token("RAY", "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 6),
    )
}


# What a symbol may look like, known or not yet (a sniper's token is
# named before its launch): upper-case ASCII letters and digits.
SYMBOL_SHAPE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


# The tokens every market has; the rest were launched.
LISTED = frozenset(TOKENS)


class UnknownTokenError(ValueError):
    pass


# Tokens launched at run time (docs/market.md, "Launches") join TOKENS when
# a process looks for one it does not know: the loader, set by a process
# that can read the chain's Redis, registers every launch there.
_loader: Callable[[], None] | None = None
_loaded_at = 0.0
# An unknown symbol asks the chain at most this often: a client sending
# made-up symbols does not turn each request into a Redis read.
LOAD_EVERY_SECONDS = 0.2


def set_launch_loader(loader: Callable[[], None] | None) -> None:
    global _loader, _loaded_at
    _loader, _loaded_at = loader, 0.0


def load_launches() -> None:
    """Registers the chain's launched tokens and pools, unless done just now."""
    global _loaded_at
    if _loader is None or time.monotonic() - _loaded_at < LOAD_EVERY_SECONDS:
        return
    _loaded_at = time.monotonic()
    _loader()


def add_token(new: Token) -> None:
    TOKENS[new.symbol] = new


def forget_launched() -> None:
    """Back to the listed tokens alone (tests); the next unknown symbol asks
    the chain again at once."""
    global _loaded_at
    for symbol in set(TOKENS) - LISTED:
        del TOKENS[symbol]
    _loaded_at = 0.0


def _find(symbol: str) -> Token | None:
    text = symbol.strip()
    return TOKENS.get(text.upper()) if text.isascii() else None


def token(symbol: str) -> Token:
    """The token for a symbol, case-insensitive in ASCII only: str.upper()
    makes SOL of "\u017fol" (long s) and such look-alikes are no symbol."""
    found = _find(symbol)
    if found is None:
        load_launches()
        found = _find(symbol)
    if found is None:
        known = ", ".join(sorted(TOKENS))
        # Clipped: an error echoes what was sent, never all of a huge field.
        raise UnknownTokenError(f"unknown token {symbol[:16]!r}; known tokens: {known}")
    return found
