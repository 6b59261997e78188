"""Pool state in Redis, so every replica of every service sees one market.

One hash per pool, ``market:pool:<id>``:

- every pool: ``kind`` and ``a``, ``b``: what the pool holds of token_a and
  token_b (its vaults, fees included);
- a CPMM pool also: ``protocol_fee_a``, ``protocol_fee_b``, ``fund_fee_a``,
  ``fund_fee_b``, ``creator_fee_a``, ``creator_fee_b``: the fees its vaults
  hold apart from the trading reserves (absent in a hash an older engine
  wrote: none counted apart yet);
- a DLMM pool also: ``active_id``, ``volatility_accumulator``,
  ``volatility_reference``, ``index_reference``, ``last_update``, ``fee_a``,
  ``fee_b``, and ``bins`` = ``"<min_id> <x> <y> <x> <y> ..."``: every bin in
  one field, so that reading a pool is a dozen fields, not hundreds;
- the flows ledger: ``flow_a``, ``flow_b``, what every landed swap moved into
  (+) and out of (-) the pool since it was seeded (absent: nothing yet).

Every amount is a decimal string: a u64 (and a flow, up to one either way)
is held exactly, which Redis's signed 64-bit HINCRBY would not.

A missing pool (a new Redis, a flush) starts again from pools.toml. A swap
lands by reading the pools under WATCH, applying the route with the same
math a quote uses, and writing the states and the ledger back in one
MULTI/EXEC: the read and the write are one atomic step, or nothing is
written and the lander looks again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from orderengine.market.cpmm import Reserves
from orderengine.market.dlmm import Bin, DlmmState
from orderengine.market.pools import Pool, PoolState, all_pools, balances, pools_with
from orderengine.market.routes import Leg, RouteFill, apply_route

# Seeds a pool only when Redis has none of the right kind: a replica racing
# us, or a swap landed meanwhile, wins. A hash of another kind (a pool whose
# kind changed in pools.toml) is replaced whole.
_SEED = """
local kind = redis.call('HGET', KEYS[1], 'kind')
if kind == ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'kind', ARGV[1], unpack(ARGV, 2))
return 1
"""


# A CPMM pool's fields for the fees counted apart, in Reserves' order.
_CPMM_FEES = Reserves._fields[2:]
# Every pool change, one entry per transaction (a landing round, a market
# flow swap) naming the pools it moved, written in the MULTI that writes
# them: the trigger part follows it (docs/market.md, "The price of a pair").
POOL_CHANGES = "market:pool-changes"
# Entries the stream keeps, about: a follower further behind re-reads prices.
POOL_CHANGES_KEPT = 10_000


def pool_key(pool_id: str) -> str:
    return f"market:pool:{pool_id}"


def _kind(pool: Pool) -> str:
    # The DLMM kind names its encoding: a hash of an older one is seeded anew.
    return "cpmm" if isinstance(pool.initial_state(), Reserves) else "dlmm/2"


def encode(pool: Pool, state: PoolState) -> dict[str, str]:
    """The hash fields for a pool's state."""
    a, b = balances(pool, state)
    fields = {"kind": _kind(pool), "a": str(a), "b": str(b)}
    if isinstance(state, Reserves):
        fields.update(zip(_CPMM_FEES, map(str, state[2:]), strict=True))
    elif isinstance(state, DlmmState):
        fields.update(
            {
                "active_id": str(state.active_id),
                "volatility_accumulator": str(state.volatility_accumulator),
                "volatility_reference": str(state.volatility_reference),
                "index_reference": str(state.index_reference),
                "last_update": str(state.last_update),
                "fee_a": str(state.fee_x),
                "fee_b": str(state.fee_y),
            }
        )
        fields["bins"] = " ".join([str(state.min_id), *(f"{b.x} {b.y}" for b in state.bins)])
    return fields


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode(pool: Pool, raw: Mapping[bytes | str, bytes | str]) -> PoolState | None:
    """The state in a pool's hash; None when Redis holds none of its kind."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    if fields.get("kind", "cpmm") != _kind(pool):
        return None
    try:
        if _kind(pool) == "cpmm":
            return Reserves(
                int(fields["a"]), int(fields["b"]), *(int(fields.get(f, 0)) for f in _CPMM_FEES)
            )
        min_id, *amounts = map(int, fields["bins"].split())
        return DlmmState(
            active_id=int(fields["active_id"]),
            min_id=min_id,
            bins=tuple(Bin(x, y) for x, y in zip(amounts[::2], amounts[1::2], strict=True)),
            volatility_accumulator=int(fields["volatility_accumulator"]),
            volatility_reference=int(fields["volatility_reference"]),
            index_reference=int(fields["index_reference"]),
            last_update=int(fields["last_update"]),
            fee_x=int(fields["fee_a"]),
            fee_y=int(fields["fee_b"]),
        )
    except (KeyError, ValueError):
        return None  # a partial or older hash: not a state of this kind


# The ledger's fields in a pool's hash, for token_a and token_b.
FLOW_A, FLOW_B = "flow_a", "flow_b"

# What the ledger says landed swaps moved of (token_a, token_b), per pool.
Flows = dict[str, tuple[int, int]]


async def read_reserves(redis: Redis | Pipeline, pool_ids: Iterable[str]) -> dict[str, PoolState]:
    """The pools' states now; seeds any pool Redis does not hold yet."""
    return (await read_pools(redis, pool_ids))[0]


async def read_pools(
    redis: Redis | Pipeline, pool_ids: Iterable[str]
) -> tuple[dict[str, PoolState], Flows]:
    """The pools' states and flows ledger now; seeds any pool Redis does not
    hold yet."""
    ids = list(dict.fromkeys(pool_ids))
    pools = pools_with(ids)
    if isinstance(redis, Pipeline):
        # Inside a WATCHed transaction: commands run at once.
        raw = [await redis.hgetall(pool_key(i)) for i in ids]
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for pool_id in ids:
                pipe.hgetall(pool_key(pool_id))
            raw = await pipe.execute()
    states = {
        pool_id: decode(pools[pool_id], fields) for pool_id, fields in zip(ids, raw, strict=True)
    }
    missing = [pool_id for pool_id, state in states.items() if state is None]
    if missing:
        await seed(redis, missing)
        return await read_pools(redis, ids)
    flows = {pool_id: _flows(fields) for pool_id, fields in zip(ids, raw, strict=True)}
    return {pool_id: state for pool_id, state in states.items() if state is not None}, flows


def _flows(raw: Mapping[bytes | str, bytes | str]) -> tuple[int, int]:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return int(fields.get(FLOW_A, 0)), int(fields.get(FLOW_B, 0))


async def seed(redis: Redis | Pipeline, pool_ids: Iterable[str]) -> None:
    pools = all_pools()
    for pool_id in pool_ids:
        pool = pools[pool_id]
        fields = encode(pool, pool.initial_state())
        kind = fields.pop("kind")
        args = [kind, *(item for pair in fields.items() for item in pair)]
        await redis.eval(_SEED, 1, pool_key(pool_id), *args)


def write_reserves(
    pipe: Pipeline, reserves: dict[str, PoolState], before: dict[str, PoolState], flows: Flows
) -> None:
    """Queues the writes of the pools' new states (inside MULTI), with the
    ledger moved on from ``flows`` by what each moved since ``before``: both
    read under the same WATCH, so the ledger is a read-modify-write as exact
    as the states (and no counter of Redis's bounds it)."""
    pools = all_pools()
    for pool_id, state in reserves.items():
        pool = pools[pool_id]
        (a0, b0), (a1, b1) = balances(pool, before[pool_id]), balances(pool, state)
        flow_a, flow_b = flows.get(pool_id, (0, 0))
        fields = {
            **encode(pool, state),
            FLOW_A: str(flow_a + a1 - a0),
            FLOW_B: str(flow_b + b1 - b0),
        }
        pipe.hset(pool_key(pool_id), mapping=fields)  # type: ignore[arg-type]
    if reserves:
        pipe.xadd(
            POOL_CHANGES,
            {"pools": " ".join(reserves)},
            maxlen=POOL_CHANGES_KEPT,
            approximate=True,
        )


@dataclass(frozen=True)
class Landed:
    fill: RouteFill
    # The pools' states the route was applied to.
    before: dict[str, PoolState]


async def land_route(
    redis: Redis,
    legs: list[Leg],
    input_token: str,
    output_token: str,
    amount_in: int,
    now: int,
    accept: Callable[[RouteFill], bool] = lambda fill: True,
) -> Landed | None:
    """Applies the route to the pools as they are and writes the result, in
    one optimistic transaction retried until no other writer came between.
    Writes nothing (and returns None) when ``accept`` refuses the fill, e.g.
    below a minimum out. Raises RouteError as apply_route does."""
    pool_ids = [leg.pool_id for leg in legs]
    while True:
        try:
            async with redis.pipeline(transaction=True) as pipe:
                await pipe.watch(*(pool_key(p) for p in pool_ids))
                before, flows = await read_pools(pipe, pool_ids)
                fill = apply_route(legs, input_token, output_token, amount_in, before, now)
                if not accept(fill):
                    return None  # leaving the block unwatches
                pipe.multi()
                write_reserves(pipe, fill.reserves, before, flows)
                await pipe.execute()
                return Landed(fill, before)
        except WatchError:
            continue  # a pool moved under us: look again
