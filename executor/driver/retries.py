"""What happens when an attempt fails: retry a transient failure with a new
quote after exponential back-off with full jitter, or fail the order."""

from __future__ import annotations

import random
from dataclasses import dataclass

from orderengine.reasons import Reason
from orderengine.settings import Settings

# Failures the next attempt can get past: the market moved, the blockhash
# expired, the transaction was dropped. Also a pool that can no longer fill
# its leg (other swaps drained a DLMM pool's bins since the quote): the new
# quote prices every pool as it is then, and leaves out any that cannot fill.
# Not INSUFFICIENT_FUNDS: no new quote funds the owner's wallet.
RETRYABLE: frozenset[Reason] = frozenset(
    {
        Reason.SLIPPAGE_EXCEEDED,
        Reason.BLOCKHASH_EXPIRED,
        Reason.TRANSACTION_DROPPED,
        Reason.RPC_TIMEOUT,
        Reason.POOL_OUT_OF_LIQUIDITY,
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    factor: float
    cap_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.max_attempts,
            settings.retry_base_seconds,
            settings.retry_factor,
            settings.retry_cap_seconds,
        )

    def should_retry(self, code: Reason, attempt: int) -> bool:
        # A bare string would compare equal to its member, but one spelt
        # wrong would silently never retry: only members are asked about.
        if not isinstance(code, Reason):
            raise TypeError(f"a failure's code must be a Reason, got {code!r}")
        return code in RETRYABLE and attempt < self.max_attempts

    def backoff_seconds(self, attempt: int, rng: random.Random | None = None) -> float:
        """Back-off before attempt ``attempt + 1``: full jitter over
        base * factor**(attempt-1), capped."""
        ceiling = min(self.cap_seconds, self.base_seconds * self.factor ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)
