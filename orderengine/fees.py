"""What a swap transaction costs its signer on Solana, in lamports: the
network fee per signature and an optional priority fee. OrderService checks
a wallet can pay them at submit; the chain takes them at landing."""

from __future__ import annotations

import re

from orderengine.amounts import AmountError, format_amount, parse_amount
from orderengine.errors import FieldError
from orderengine.tokens import token

# The fee token: every fee is paid in SOL, in lamports.
FEE_TOKEN = "SOL"
LAMPORTS_PER_SOL = 10 ** token(FEE_TOKEN).decimals
# Solana's base fee: 5,000 lamports per signature. A swap transaction has
# one signature, its owner's.
NETWORK_FEE_LAMPORTS = 5_000
# The most priority fee an order may offer: 1 SOL, far above what mainnet
# swaps pay, and low enough that no sum of fees passes what a u64 holds.
MAX_PRIORITY_FEE_LAMPORTS = LAMPORTS_PER_SOL
# No priority fee: empty, or a zero however written.
_ZERO = re.compile(r"(0+(\.0*)?)?")


def parse_priority_fee(text: str, field: str = "priority_fee") -> int:
    """Lamports from a decimal string in SOL ("0.0001"); "" or "0" is none.
    Raises FieldError naming ``field``."""
    raw = text.strip()
    if _ZERO.fullmatch(raw):
        return 0
    try:
        lamports = parse_amount(raw, token(FEE_TOKEN).decimals)
    except AmountError as exc:
        raise FieldError(field, f"{exc} (SOL)") from None
    if lamports > MAX_PRIORITY_FEE_LAMPORTS:
        raise FieldError(
            field, f"is at most {format_sol(MAX_PRIORITY_FEE_LAMPORTS)} SOL, got {raw[:40]}"
        )
    return lamports


def transaction_fee(priority_fee: int) -> int:
    """Lamports a processed swap transaction pays: the network fee and the
    priority fee."""
    return NETWORK_FEE_LAMPORTS + priority_fee


def format_sol(lamports: int) -> str:
    return format_amount(lamports, token(FEE_TOKEN).decimals)
