"""Failures the simulated chain injects, at configured rates, as real swaps
meet them. Slippage needs no injecting: it happens when the pool moves."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from orderengine.reasons import Reason
from orderengine.settings import Settings

# What a landing that met each fate says (a dropped transaction never lands).
REASONS: dict[str, str] = {
    Reason.BLOCKHASH_EXPIRED: "blockhash expired: the transaction was not processed before "
    "its blockhash left the validity window",
    Reason.INSUFFICIENT_FUNDS: "insufficient funds: the wallet cannot cover the swap and its fees",
}


@dataclass(frozen=True)
class FailureRates:
    blockhash_expired: float = 0.0
    dropped: float = 0.0
    rpc_timeout: float = 0.0
    insufficient_funds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FailureRates:
        return cls(
            settings.blockhash_expired_rate,
            settings.dropped_rate,
            settings.rpc_timeout_rate,
            settings.insufficient_funds_rate,
        )


class Faults:
    def __init__(self, rates: FailureRates, seed: str = "") -> None:
        for name, rate in vars(rates).items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"failure rate {name} must be between 0 and 1, got {rate}")
        self.rates = rates
        self._rng = random.Random(seed) if seed else random.Random()

    def fate(self) -> Reason | Literal[""]:
        """What befalls a transaction just sent: "" for nothing, else the
        failure code it will meet."""
        draw = self._rng.random()
        for code, rate in (
            (Reason.BLOCKHASH_EXPIRED, self.rates.blockhash_expired),
            (Reason.TRANSACTION_DROPPED, self.rates.dropped),
            (Reason.INSUFFICIENT_FUNDS, self.rates.insufficient_funds),
        ):
            if draw < rate:
                return code
            draw -= rate
        return ""

    def rpc_times_out(self) -> bool:
        """Whether the node takes the transaction but the answer is lost."""
        return self._rng.random() < self.rates.rpc_timeout


NO_FAULTS = Faults(FailureRates())
