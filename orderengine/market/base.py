"""What every pool is, whatever its math: a venue, two tokens, and one way to
price a swap. The router quotes through ``quote`` and the chain lands through
the same call, so a quote tells the truth."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Generic, TypeVar, cast

from orderengine.v1 import market_pb2


class Venue(StrEnum):
    RAYDIUM = "raydium"
    METEORA = "meteora"

    @property
    def proto(self) -> market_pb2.Venue:
        return _VENUE_PROTO[self]

    @classmethod
    def from_proto(cls, value: int) -> Venue:
        return cls[market_pb2.Venue.Name(value).removeprefix("VENUE_")]


_VENUE_PROTO = {
    venue: cast("market_pb2.Venue", market_pb2.Venue.Value(f"VENUE_{venue.name}"))
    for venue in Venue
}


# A pool kind's state: what Redis holds for one pool.
S = TypeVar("S")


class OutOfLiquidityError(ValueError):
    """The pool cannot take the whole input: a DLMM pool ran out of bins.
    Meteora refuses such a swap (PoolOutOfLiquidity) rather than fill part of
    it, and so do we."""


@dataclass(frozen=True)
class Swap(Generic[S]):
    """One exact-in swap against one pool."""

    # All of it leaves the trader and enters the pool (the fee included).
    amount_in: int
    # Leaves the pool and reaches the trader.
    amount_out: int
    # The part of amount_in kept as the fee, in the input token.
    fee: int
    # The pool after the swap; the state passed in is never changed.
    state: S


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class PoolBase(Generic[S]):
    """Fields every pool has. ``S`` is the kind's state (what Redis holds)."""

    id: str
    venue: Venue
    token_a: str
    token_b: str

    def trades(self, input_token: str, output_token: str) -> bool:
        return {input_token, output_token} == {self.token_a, self.token_b}

    def sells_a(self, input_token: str) -> bool:
        """True when the swap puts token_a in (and takes token_b out)."""
        if input_token == self.token_a:
            return True
        if input_token == self.token_b:
            return False
        raise ValueError(f"pool {self.id} does not trade {input_token}")

    # -- what each kind implements --------------------------------------------

    def initial_state(self) -> S:
        """The state pools.toml starts the pool with."""
        raise NotImplementedError

    def quote(self, state: S, input_token: str, amount_in: int, now: int) -> Swap[S]:
        """Swaps ``amount_in`` base units of ``input_token`` at unix time
        ``now`` (seconds; DLMM fees depend on it). Raises OutOfLiquidityError
        when the pool cannot take it all."""
        raise NotImplementedError

    def spot_price(self, state: S, input_token: str) -> Fraction:
        """Output base units per input base unit for an infinitesimal swap,
        before the fee."""
        raise NotImplementedError

    def balances(self, state: S) -> tuple[int, int]:
        """What the pool holds of token_a and token_b (its vaults), fees included."""
        raise NotImplementedError
