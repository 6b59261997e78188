"""The SPL tokens the engine trades: symbol, mint address and decimals."""

from __future__ import annotations

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


class UnknownTokenError(ValueError):
    pass


def token(symbol: str) -> Token:
    """The token for a symbol, case-insensitive in ASCII only: str.upper()
    makes SOL of "\u017fol" (long s) and such look-alikes are no symbol."""
    text = symbol.strip()
    found = TOKENS.get(text.upper()) if text.isascii() else None
    if found is None:
        known = ", ".join(sorted(TOKENS))
        # Clipped: an error echoes what was sent, never all of a huge field.
        raise UnknownTokenError(f"unknown token {symbol[:16]!r}; known tokens: {known}")
    return found
