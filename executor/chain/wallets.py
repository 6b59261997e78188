"""Wallets on the simulated chain: what each owner holds of each token, and
the fee collector that the fees of landed swaps go to.

In the chain's Redis, beside the pools:

- ``chain:wallet:<owner>``: a hash, token symbol -> base units held;
- ``chain:fee-collector``: a hash, ``SOL`` -> lamports every processed swap
  paid (the validators' share on the real chain);
- ``chain:minted``: a hash, token -> base units the faucet created in all,
  so that every wallet, pool and the collector together hold exactly the
  pools' first state plus what was minted.

Every amount is a decimal string, as the pools' are: a u64 is held exactly,
and a write never depends on Redis's arithmetic. A landing reads the wallets
it touches and the collector under the same WATCH as the pools and writes
them in the same MULTI (``Ledger``): a swap's debit, credit, fee and pool
change land together or not at all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from orderengine.amounts import MAX_BASE_UNITS
from orderengine.fees import FEE_TOKEN
from orderengine.wallets import Holdings

FEE_COLLECTOR = "chain:fee-collector"
MINTED = "chain:minted"


def wallet_key(owner: str) -> str:
    return f"chain:wallet:{owner}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode(raw: Mapping[bytes | str, bytes | str]) -> Holdings:
    return {_text(k): int(_text(v)) for k, v in raw.items()}


async def read_holdings(redis: Redis, keys: Iterable[str]) -> list[Holdings]:
    """The hashes at ``keys`` as holdings, in one round trip. A caller that
    WATCHes them on another connection still has its EXEC fail if any of
    them changes after."""
    names = list(keys)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(name)
        raw = await pipe.execute()
    return [decode(r) for r in raw]


async def read_wallets(redis: Redis, owners: Iterable[str]) -> dict[str, Holdings]:
    names = list(dict.fromkeys(owners))
    return dict(zip(names, await read_holdings(redis, map(wallet_key, names)), strict=True))


def encode(holdings: Holdings) -> dict[str, str]:
    return {symbol: str(units) for symbol, units in holdings.items()}


@dataclass
class Ledger:
    """The wallets one landing round touches and the fee collector, as read
    under its WATCH. Swaps move them here, in memory, each only once its
    checks have passed; ``write`` queues what changed inside the MULTI."""

    wallets: dict[str, Holdings]
    collected: int
    _changed: set[str] = field(default_factory=set)
    _collected_before: int = -1

    def __post_init__(self) -> None:
        self._collected_before = self.collected

    @classmethod
    async def read(cls, redis: Redis, owners: Iterable[str]) -> Ledger:
        names = list(dict.fromkeys(owners))
        *wallets, collector = await read_holdings(redis, [*map(wallet_key, names), FEE_COLLECTOR])
        return cls(dict(zip(names, wallets, strict=True)), collector.get(FEE_TOKEN, 0))

    @staticmethod
    def keys(owners: Iterable[str]) -> list[str]:
        """What a landing must WATCH besides the pools."""
        return [*map(wallet_key, dict.fromkeys(owners)), FEE_COLLECTOR]

    def held(self, owner: str, symbol: str) -> int:
        return self.wallets.get(owner, {}).get(symbol, 0)

    def room(self, owner: str, symbol: str) -> int:
        """How much more of ``symbol`` the owner's token account can take: a
        u64 holds at most MAX_BASE_UNITS."""
        return MAX_BASE_UNITS - self.held(owner, symbol)

    def move(self, owner: str, symbol: str, units: int) -> None:
        """Credits (units > 0) or debits (units < 0) the owner; the caller
        has checked that the result is a u64."""
        wallet = self.wallets.setdefault(owner, {})
        held = wallet.get(symbol, 0) + units
        if not 0 <= held <= MAX_BASE_UNITS:
            raise ValueError(f"{owner}: {symbol} would be {held} base units")
        wallet[symbol] = held
        self._changed.add(owner)

    def pay_fee(self, owner: str, lamports: int) -> None:
        self.move(owner, FEE_TOKEN, -lamports)
        self.collected += lamports

    def write(self, pipe: Pipeline) -> None:
        """Queues the writes of what changed (inside MULTI): whole fields,
        decimal strings, so nothing in the MULTI can fail."""
        for owner in sorted(self._changed):
            pipe.hset(wallet_key(owner), mapping=encode(self.wallets[owner]))  # type: ignore[arg-type]
        if self.collected != self._collected_before:
            pipe.hset(FEE_COLLECTOR, FEE_TOKEN, str(self.collected))
