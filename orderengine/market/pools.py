"""The pools of each venue, as pools.toml defines them, and the one interface
through which any pool is priced: ``quote(pool, state, input_token,
amount_in, now)``."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

from orderengine.amounts import parse_amount
from orderengine.market.base import Swap, Venue
from orderengine.market.cpmm import FEE_DENOMINATOR, CpmmPool, CreatorFeeOn, Reserves
from orderengine.market.dlmm import (
    ONE,
    DlmmParams,
    DlmmPool,
    DlmmState,
    Shape,
    bin_id_for_price,
    make_bins,
    price_from_id,
)
from orderengine.tokens import load_launches, token

__all__ = [
    "FEE_DENOMINATOR",
    "CpmmPool",
    "DlmmPool",
    "Pool",
    "PoolState",
    "Venue",
    "add_pool",
    "all_pools",
    "balances",
    "pools_for",
    "quote",
    "spot_price",
]

Pool = CpmmPool | DlmmPool
PoolState = Reserves | DlmmState

DATA_FILE = Path(__file__).with_name("pools.toml")


def quote(
    pool: Pool, state: PoolState, input_token: str, amount_in: int, now: int
) -> Swap[PoolState]:
    """Swaps ``amount_in`` base units of ``input_token`` on ``pool`` as it is
    in ``state`` at unix time ``now``. The router prices with it and the chain
    lands with it. Raises OutOfLiquidityError when the pool cannot take it."""
    # A Swap[Reserves] or Swap[DlmmState] is a Swap[PoolState] as it is: no copy.
    if isinstance(pool, CpmmPool) and isinstance(state, Reserves):
        return cast("Swap[PoolState]", pool.quote(state, input_token, amount_in, now))
    if isinstance(pool, DlmmPool) and isinstance(state, DlmmState):
        return cast("Swap[PoolState]", pool.quote(state, input_token, amount_in, now))
    raise TypeError(
        f"pool {pool.id} is {type(pool).__name__}; its state cannot be {type(state).__name__}"
    )


def spot_price(pool: Pool, state: PoolState, input_token: str) -> Fraction:
    """Output base units per input base unit for a tiny swap, before the fee."""
    if isinstance(pool, CpmmPool) and isinstance(state, Reserves):
        return pool.spot_price(state, input_token)
    if isinstance(pool, DlmmPool) and isinstance(state, DlmmState):
        return pool.spot_price(state, input_token)
    raise TypeError(f"pool {pool.id}: a {type(state).__name__} is not its state")


def balances(pool: Pool, state: PoolState) -> tuple[int, int]:
    """What the pool holds of token_a and token_b, fees included."""
    if isinstance(pool, CpmmPool) and isinstance(state, Reserves):
        return pool.balances(state)
    if isinstance(pool, DlmmPool) and isinstance(state, DlmmState):
        return pool.balances(state)
    raise TypeError(f"pool {pool.id}: a {type(state).__name__} is not its state")


# -- pools.toml ----------------------------------------------------------------------


def _cpmm(entry: dict[str, Any], common: dict[str, Any], defaults: dict[str, Any]) -> CpmmPool:
    a, b = token(common["token_a"]), token(common["token_b"])
    settings = {**defaults, **entry}
    on = settings.get("creator_fee_on", CreatorFeeOn.BOTH)
    if on not in set(CreatorFeeOn):
        raise ValueError(
            f"pools.toml: pool {common['id']!r}: creator_fee_on must be one of "
            f"{', '.join(CreatorFeeOn)}, got {on!r}"
        )
    return CpmmPool(
        **common,
        initial_a=parse_amount(entry["reserve_a"], a.decimals),
        initial_b=parse_amount(entry["reserve_b"], b.decimals),
        fee_rate=int(settings["fee_rate"]),
        protocol_fee_rate=int(settings["protocol_fee_rate"]),
        fund_fee_rate=int(settings["fund_fee_rate"]),
        creator_fee_rate=int(settings.get("creator_fee_rate", 0)),
        creator_fee_on=CreatorFeeOn(on),
    )


def _dlmm(entry: dict[str, Any], common: dict[str, Any], defaults: dict[str, Any]) -> DlmmPool:
    a, b = token(common["token_a"]), token(common["token_b"])
    settings = {**defaults, **entry}
    params = DlmmParams(
        bin_step=int(settings["bin_step"]),
        base_factor=int(settings["base_factor"]),
        base_fee_power_factor=int(settings["base_fee_power_factor"]),
        variable_fee_control=int(settings["variable_fee_control"]),
        max_volatility_accumulator=int(settings["max_volatility_accumulator"]),
        filter_period=int(settings["filter_period"]),
        decay_period=int(settings["decay_period"]),
        reduction_factor=int(settings["reduction_factor"]),
    )
    # "price" is whole token_b per whole token_a, a string so that it is
    # exact; bins price base units.
    if not isinstance(entry["price"], str):
        raise ValueError(f"pools.toml: pool {common['id']!r}: price must be a string")
    price = Fraction(entry["price"]) * 10**b.decimals / 10**a.decimals
    active_id = bin_id_for_price(price, params.bin_step)
    min_id, bins = make_bins(
        active_id,
        params.bin_step,
        int(entry["bins_each_side"]),
        parse_amount(entry["liquidity_per_bin"], b.decimals),
        Shape(entry.get("shape", "spot")),
    )
    # Keep every bin's price where Q64.64 holds it to at least 24 bits.
    for bin_id in (min_id, min_id + len(bins) - 1):
        if not ONE >> 40 <= price_from_id(bin_id, params.bin_step) <= ONE << 40:
            raise ValueError(
                f"pools.toml: pool {common['id']!r}: bin {bin_id} is priced "
                "beyond what Q64.64 holds precisely"
            )
    initial = DlmmState(active_id=active_id, min_id=min_id, bins=bins, index_reference=active_id)
    return DlmmPool(**common, params=params, initial=initial)


def load_pools(text: str) -> dict[str, Pool]:
    data = tomllib.loads(text)
    cpmm_defaults = data.get("cpmm_defaults", {})
    dlmm_defaults = data.get("dlmm_defaults", {})
    pools: dict[str, Pool] = {}
    for entry in data["pool"]:
        common = {
            "id": entry["id"],
            "venue": Venue(entry["venue"]),
            "token_a": token(entry["token_a"]).symbol,
            "token_b": token(entry["token_b"]).symbol,
        }
        kind = entry.get("kind")
        pool: Pool
        try:
            if kind == "cpmm":
                pool = _cpmm(entry, common, cpmm_defaults)
            elif kind == "dlmm":
                pool = _dlmm(entry, common, dlmm_defaults)
            else:
                raise ValueError(f"pools.toml: pool {entry['id']!r} has unknown kind {kind!r}")
        except KeyError as exc:
            raise ValueError(f"pools.toml: pool {entry['id']!r} has no {exc.args[0]}") from None
        if pool.id in pools:
            raise ValueError(f"pools.toml: pool id {pool.id!r} appears twice")
        pools[pool.id] = pool
    return pools


_pools: dict[str, Pool] | None = None


def all_pools() -> dict[str, Pool]:
    """The pools of pools.toml and those launched since (known here yet)."""
    global _pools
    if _pools is None:
        _pools = load_pools(DATA_FILE.read_text())
    return _pools


def add_pool(pool: Pool) -> None:
    """A launched pool joins the market. A new dict, not the old one
    changed: whoever keyed a cache by the dict's identity (the router's
    paths) sees another market."""
    global _pools
    _pools = {**all_pools(), pool.id: pool}


def pools_with(pool_ids: Iterable[str]) -> dict[str, Pool]:
    """The market's pools, with the chain's launches registered first when
    one of the ids is not known here yet (a pool launched by another process)."""
    pools = all_pools()
    if any(pool_id not in pools for pool_id in pool_ids):
        load_launches()
        pools = all_pools()
    return pools


def forget_pools() -> None:
    """Back to pools.toml's alone (tests)."""
    global _pools
    _pools = None


def pools_for(input_token: str, output_token: str) -> list[Pool]:
    """Every pool that swaps directly between the two tokens."""
    return [p for p in all_pools().values() if p.trades(input_token, output_token)]
