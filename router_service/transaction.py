"""A route as the one Solana transaction that carries it: its accounts, its
size in bytes and its compute units, against the limits a transaction has
(1,232 bytes, 1,400,000 compute units, 64 accounts).

The transaction the engine would send: a v0 message signed by the owner
alone, with a compute-unit limit and price (two ComputeBudget
instructions), then one instruction of a route program, as Jupiter's
``route``, that swaps each leg in turn by a call into the venue's program:
a leg's amount is a share of what the route holds when it runs, which only
a program on the chain can know. Every account a leg needs that is not the
owner's (programs, mints, pools, vaults, oracles, bin arrays) is in the
engine's address lookup table, one byte each in the message; the owner, the
owner's token accounts and the two programs called at top level are keys
of the message, 32 bytes each.

Per leg:

- **Raydium CP-Swap** ``swap_base_input``: 13 accounts (payer, authority,
  amm_config, pool_state, both token accounts, both vaults, both token
  programs, both mints, observation_state) and the program; 50,000
  compute units.
- **Meteora DLMM** ``swap``: 15 accounts (lb_pair, bin_array_bitmap_extension,
  reserve_x, reserve_y, both token accounts, both mints, oracle,
  host_fee_in, user, both token programs, event_authority, program; the two
  optional ones stand in as the program) and the program, then every bin
  array the swap visits (70 bins each); 60,000 compute units in the active
  bin and 4,000 more for each further bin it visits.

docs/market.md gives the figures' sources and what the model leaves out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orderengine.market.pools import CpmmPool, DlmmPool, Pool, PoolState
from orderengine.market.routes import RouteFill

# The limits of one transaction.
MAX_BYTES = 1_232  # a packet (1,280) less its IPv6 and fragment headers
MAX_COMPUTE_UNITS = 1_400_000
MAX_ACCOUNTS = 64  # accounts one transaction may lock

# Compute units. ComputeBudget's instructions cost 150 each. The route
# program's own work (checks, reading balances, a call per leg) is an
# assumption, as Jupiter publishes none.
COMPUTE_BUDGET_UNITS = 150
ROUTE_UNITS = 20_000
ROUTE_UNITS_PER_LEG = 5_000
CPMM_SWAP_UNITS = 50_000
DLMM_SWAP_UNITS = 60_000
DLMM_UNITS_PER_BIN = 4_000
BINS_PER_ARRAY = 70  # Meteora's MAX_BIN_PER_ARRAY

# Accounts in each venue's swap instruction (its program not counted).
CPMM_SWAP_ACCOUNTS = 13
DLMM_SWAP_ACCOUNTS = 15
# The route instruction's own accounts: token program, owner, the owner's
# input and output token accounts, the output mint, event authority, program.
ROUTE_ACCOUNTS = 7

SIGNATURE_BYTES = 64
KEY_BYTES = 32
BLOCKHASH_BYTES = 32
HEADER_BYTES = 3  # signatures required, read-only signed, read-only unsigned
VERSION_BYTES = 1  # the v0 prefix
SET_LIMIT_DATA = 5  # tag + u32
SET_PRICE_DATA = 9  # tag + u64
# The route instruction's data: discriminator 8, the legs' vector length 4,
# in_amount 8, quoted_out_amount 8, slippage_bps 2, platform_fee_bps 1; and
# per leg: the venue 1, share_bps 2, input and output token indexes 1 each.
ROUTE_DATA = 8 + 4 + 8 + 8 + 2 + 1
ROUTE_DATA_PER_LEG = 1 + 2 + 1 + 1


@dataclass(frozen=True)
class LegShape:
    """What of a leg its transaction sees: the pool and direction, and for a
    DLMM pool the first and last bins the swap visits."""

    pool: Pool
    input_token: str
    output_token: str
    bins: tuple[int, int] | None = None

    @property
    def bin_arrays(self) -> list[int]:
        if self.bins is None:
            return []
        low, high = sorted(self.bins)
        return list(range(low // BINS_PER_ARRAY, high // BINS_PER_ARRAY + 1))

    @property
    def compute_units(self) -> int:
        if isinstance(self.pool, CpmmPool):
            return CPMM_SWAP_UNITS
        low, high = sorted(self.bins or (0, 0))
        return DLMM_SWAP_UNITS + DLMM_UNITS_PER_BIN * (high - low)

    def accounts(self) -> list[tuple[str, ...]]:
        """The accounts of the venue's swap instruction, its program first,
        as keys naming what each account is (one key, one account)."""
        static = _static_accounts(self.pool, self.input_token, self.output_token)
        if not self.bins:
            return list(static)
        return [*static, *(("bin array", self.pool.id, str(i)) for i in self.bin_arrays)]

    @property
    def instruction_accounts(self) -> int:
        """Account indexes the leg adds to the route instruction."""
        base = CPMM_SWAP_ACCOUNTS if isinstance(self.pool, CpmmPool) else DLMM_SWAP_ACCOUNTS
        return 1 + base + len(self.bin_arrays)


def _static_accounts(
    pool: Pool, input_token: str, output_token: str
) -> tuple[tuple[str, ...], ...]:
    """A leg's accounts but its bin arrays: the same for every swap on the
    pool in that direction (a route is measured on every quote)."""
    key = (pool.id, input_token, output_token)
    found = _STATIC.get(key)
    if found is not None:
        return found
    tokens = (input_token, output_token)
    owner = [("owner",), *(("token account", t) for t in tokens)]
    mints = [("mint", t) for t in tokens]
    if isinstance(pool, CpmmPool):
        accounts = [
            ("program", "raydium-cp-swap"),
            *owner,
            ("raydium-cp-swap authority",),
            ("amm config", str(pool.fee_rate)),
            ("pool", pool.id),
            *(("vault", pool.id, t) for t in tokens),
            ("program", "token"),
            *mints,
            ("observation", pool.id),
        ]
    else:
        accounts = [
            ("program", "meteora-dlmm"),
            ("pool", pool.id),
            *(("vault", pool.id, t) for t in (pool.token_a, pool.token_b)),
            *owner,
            ("program", "token"),
            *mints,
            ("oracle", pool.id),
            ("meteora-dlmm event authority",),
        ]
    _STATIC[key] = tuple(accounts)
    return _STATIC[key]


_STATIC: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]] = {}


@dataclass(frozen=True)
class Transaction:
    """A route's transaction, measured."""

    legs: int
    accounts: int  # distinct accounts, keys and looked up
    keys: int  # of them, keys of the message
    bytes: int
    compute_units: int

    @property
    def fits(self) -> bool:
        return self.refusal is None

    @property
    def refusal(self) -> str | None:
        """Why no transaction can carry the route; None when one can."""
        over = []
        if self.bytes > MAX_BYTES:
            over.append(f"{self.bytes:,} bytes (at most {MAX_BYTES:,})")
        if self.compute_units > MAX_COMPUTE_UNITS:
            over.append(f"{self.compute_units:,} compute units (at most {MAX_COMPUTE_UNITS:,})")
        if self.accounts > MAX_ACCOUNTS:
            over.append(f"{self.accounts} accounts (at most {MAX_ACCOUNTS})")
        if not over:
            return None
        legs = f"{self.legs} leg" + ("s" if self.legs != 1 else "")
        return f"a transaction of {legs} would need " + " and ".join(over)


def compact_length(n: int) -> int:
    """Bytes of Solana's compact-u16 length prefix."""
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3


def transaction_for(input_token: str, output_token: str, legs: Sequence[LegShape]) -> Transaction:
    """The transaction that carries legs from ``input_token`` to ``output_token``."""
    tokens = list(
        dict.fromkeys(
            [
                input_token,
                *(t for leg in legs for t in (leg.input_token, leg.output_token)),
                output_token,
            ]
        )
    )
    keys = {
        ("owner",),
        ("program", "compute-budget"),
        ("program", "route"),
        *(("token account", t) for t in tokens),
    }
    looked_up = {
        ("program", "token"),
        ("mint", output_token),
        ("route event authority",),
        *(a for leg in legs for a in leg.accounts()),
    } - keys
    instructions = [
        1 + compact_length(0) + compact_length(SET_LIMIT_DATA) + SET_LIMIT_DATA,
        1 + compact_length(0) + compact_length(SET_PRICE_DATA) + SET_PRICE_DATA,
    ]
    route_accounts = ROUTE_ACCOUNTS + sum(leg.instruction_accounts for leg in legs)
    route_data = ROUTE_DATA + ROUTE_DATA_PER_LEG * len(legs)
    instructions.append(
        1
        + compact_length(route_accounts)
        + route_accounts
        + compact_length(route_data)
        + route_data
    )
    # One lookup table: its address, then the writable and the read-only
    # indexes, each list with its length (the split does not change the size).
    table = KEY_BYTES + 2 * compact_length(len(looked_up)) + len(looked_up)
    message = (
        VERSION_BYTES
        + HEADER_BYTES
        + compact_length(len(keys))
        + KEY_BYTES * len(keys)
        + BLOCKHASH_BYTES
        + compact_length(len(instructions))
        + sum(instructions)
        + compact_length(1)
        + table
    )
    size = compact_length(1) + SIGNATURE_BYTES + message
    units = (
        2 * COMPUTE_BUDGET_UNITS
        + ROUTE_UNITS
        + sum(ROUTE_UNITS_PER_LEG + leg.compute_units for leg in legs)
    )
    return Transaction(len(legs), len(keys) + len(looked_up), len(keys), size, units)


def shapes(
    fill: RouteFill, pools: Mapping[str, Pool], before: Mapping[str, PoolState]
) -> list[LegShape]:
    """The legs of a route over ``pools`` as priced on them as they were
    (``before``): a DLMM leg visits the bins from the active one before its
    swap to the active one after."""
    legs = []
    for leg_fill in fill.fills:
        leg = leg_fill.leg
        pool = pools[leg.pool_id]
        bins = None
        if isinstance(pool, DlmmPool):
            start, end = before[pool.id], fill.reserves[pool.id]
            bins = (start.active_id, end.active_id)  # type: ignore[union-attr]
        legs.append(LegShape(pool, leg.input_token, leg.output_token, bins))
    return legs


def transaction_of(
    fill: RouteFill,
    input_token: str,
    output_token: str,
    pools: Mapping[str, Pool],
    before: Mapping[str, PoolState],
) -> Transaction:
    return transaction_for(input_token, output_token, shapes(fill, pools, before))
