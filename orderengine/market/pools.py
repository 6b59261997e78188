"""The pools of each venue, as pools.toml defines them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import cast

from orderengine.amounts import parse_amount
from orderengine.tokens import token
from orderengine.v1 import market_pb2

FEE_DENOMINATOR = 1_000_000


class Venue(StrEnum):
    RAYDIUM = "raydium"
    METEORA = "meteora"

    @property
    def proto(self) -> market_pb2.Venue:
        return cast("market_pb2.Venue", market_pb2.Venue.Value(f"VENUE_{self.name}"))

    @classmethod
    def from_proto(cls, value: int) -> Venue:
        return cls[market_pb2.Venue.Name(value).removeprefix("VENUE_")]


@dataclass(frozen=True)
class Pool:
    id: str
    venue: Venue
    token_a: str
    token_b: str
    # Reserves the pool starts with, in base units.
    initial_a: int
    initial_b: int
    # Millionths of the input taken as the fee.
    fee_rate: int

    def trades(self, input_token: str, output_token: str) -> bool:
        return {input_token, output_token} == {self.token_a, self.token_b}


@cache
def all_pools() -> dict[str, Pool]:
    data = tomllib.loads(Path(__file__).with_name("pools.toml").read_text())
    pools: dict[str, Pool] = {}
    for entry in data["pool"]:
        a, b = token(entry["token_a"]), token(entry["token_b"])
        pool = Pool(
            id=entry["id"],
            venue=Venue(entry["venue"]),
            token_a=a.symbol,
            token_b=b.symbol,
            initial_a=parse_amount(entry["reserve_a"], a.decimals),
            initial_b=parse_amount(entry["reserve_b"], b.decimals),
            fee_rate=int(entry["fee_rate"]),
        )
        if pool.id in pools:
            raise ValueError(f"pools.toml: pool id {pool.id!r} appears twice")
        pools[pool.id] = pool
    return pools


def pools_for(input_token: str, output_token: str) -> list[Pool]:
    """Every pool that swaps directly between the two tokens."""
    return [p for p in all_pools().values() if p.trades(input_token, output_token)]
