"""The simulated chain, shaped like a Solana RPC node.

A swap is taken at once and gets its signature; one slot later it lands
against the pools and its owner's wallet as they are then (not as quoted),
and fails with a slippage error when the route gives less than its floor,
or for insufficient funds when the wallet cannot pay. Its status then
moves processed -> confirmed -> finalized. All state is in Redis, so any
replica can answer for any signature, and an attempt key lands at most once:
the same key always maps to the same transaction.

Long on purpose: taking, landing and answering for a swap share one Redis
layout and one script, which are only checked correctly side by side."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import base58
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, WatchError

from executor.chain.faults import NO_FAULTS, REASONS, Faults
from executor.chain.wallets import Ledger
from orderengine.amounts import MAX_BASE_UNITS, format_amount
from orderengine.fees import FEE_TOKEN, format_sol, transaction_fee
from orderengine.market.pools import PoolState
from orderengine.market.routes import RouteError, RoutePlan, apply_route, plan_from_proto
from orderengine.market.state import Flows, pool_key, read_pools, write_reserves
from orderengine.observability.metrics_orders import swap_landed
from orderengine.reasons import Reason
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2, market_pb2

log = logging.getLogger(__name__)

Commitment = execution_service_pb2.Commitment

LANDING = "chain:landing"  # signatures waiting to land, scored by when
# How many swaps landed, per order: the chaos tests' witness that none
# landed twice.
LANDED_BY_ORDER = "chain:landed-by-order"
# Transactions one landing round takes at most.
LAND_LIMIT = 200
# Slots, as on mainnet: a slot number grows every 0.4 s of wall time.
SLOT_SECONDS = 0.4
# Finalized is 31 slots after confirmed.
FINALIZE_SLOTS = 31

# Take the attempt key if it is new and record the transaction, in one step,
# so that a racing duplicate never sees a key without its transaction.
_SUBMIT = f"""
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('HSET', KEYS[2], 'attempt_key', ARGV[2], 'route', ARGV[3],
             'submitted_at', ARGV[4], 'land_at', ARGV[5], 'state', 'pending',
             'fate', ARGV[6], 'owner', ARGV[7], 'priority_fee', ARGV[8])
  if ARGV[6] ~= '{Reason.TRANSACTION_DROPPED}' then
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  end
  return 1
end
return 0
"""


def attempt_key_name(attempt_key: str) -> str:
    return f"chain:attempt:{attempt_key}"


def tx_key(signature: str) -> str:
    return f"chain:tx:{signature}"


def signature_for(attempt_key: str) -> str:
    """A 64-byte, base58 signature, fixed by the attempt key."""
    return b58encode(hashlib.sha512(attempt_key.encode()).digest())


_B58_PAIRS = [
    a + b for a in base58.BITCOIN_ALPHABET.decode() for b in base58.BITCOIN_ALPHABET.decode()
]


def b58encode(data: bytes) -> str:
    """base58.b58encode, four digits per big-integer division instead of
    one: the chain signs every swap it takes."""
    stripped = data.lstrip(b"\0")
    n = int.from_bytes(stripped, "big")
    digits: list[str] = []
    while n:
        n, four = divmod(n, 58**4)
        high, low = divmod(four, 58 * 58)
        digits.append(_B58_PAIRS[low])
        digits.append(_B58_PAIRS[high])
    # The last group is padded with zero digits ("1"); a leading zero byte
    # is a "1" of its own.
    return "1" * (len(data) - len(stripped)) + "".join(reversed(digits)).lstrip("1")


def order_of(attempt_key: str) -> str:
    return attempt_key.rsplit(":", 1)[0]


@dataclass(frozen=True)
class SwapTransaction:
    """What a client sends: a route, signed and paid for by its owner."""

    attempt_key: str
    route: market_pb2.Route
    # Whose wallet pays the fees, gives the input and gets the output.
    owner: str
    # Lamports on top of the network fee.
    priority_fee: int = 0


@dataclass(frozen=True)
class Submitted:
    signature: str
    duplicate: bool


@dataclass(frozen=True)
class _Pending:
    """A transaction waiting to land, as Redis holds it."""

    signature: str
    attempt_key: str
    submitted_at: bytes | None
    # An injected failure's code: the pools never see the swap.
    fate: str
    # None when the stored route cannot be executed, with why in ``error``.
    plan: RoutePlan | None
    # The signer's wallet ("" for a transaction taken before wallets: no
    # wallet pays for it, so it fails for insufficient funds) and its
    # priority fee in lamports.
    owner: str = ""
    priority_fee: int = 0
    error: str = ""

    FIELDS = ("state", "attempt_key", "route", "fate", "submitted_at", "owner", "priority_fee")

    @classmethod
    def read(cls, signature: str, fields: list[Any]) -> _Pending:
        _, attempt_key, raw_route, fate, submitted_at, owner, priority_fee = fields
        plan, error = None, ""
        try:
            plan = plan_from_proto(market_pb2.Route.FromString(raw_route or b""))
        except Exception as exc:  # one bad transaction must not hold up the rest
            error = f"route: {exc}"
        return cls(
            signature,
            _text(attempt_key) or "",
            submitted_at,
            _text(fate) or "",
            plan,
            _text(owner) or "",
            int(priority_fee or 0),
            error,
        )


class RpcTimeout(Exception):
    """The node took the transaction, but its answer never came back."""


class Chain:
    def __init__(
        self, redis: Redis, slot_seconds: float, confirm_seconds: float, faults: Faults = NO_FAULTS
    ) -> None:
        self.redis = redis
        self.slot_seconds = slot_seconds
        self.confirm_seconds = confirm_seconds
        self.faults = faults
        self._submit = redis.register_script(_SUBMIT)

    async def submit_many(
        self, swaps: Sequence[SwapTransaction]
    ) -> list[Submitted | RouteError | RpcTimeout]:
        """Takes each swap, in order, all in one Redis round trip; for each
        its signature, or RouteError when the route cannot be executed at
        all, or RpcTimeout (after taking it) when a timeout is injected. A
        key twice in ``swaps`` is taken once: the second is a duplicate."""
        outcomes: list[Submitted | RouteError | RpcTimeout] = []
        taking: list[tuple[int, str]] = []  # (index in outcomes, signature)
        calls: list[list[Any]] = []  # each _SUBMIT's keys and arguments
        now = time.time()
        for swap in swaps:
            attempt_key, route = swap.attempt_key, swap.route
            try:
                plan_from_proto(route)
            except RouteError as exc:
                outcomes.append(exc)
                continue
            signature = signature_for(attempt_key)
            taking.append((len(outcomes), signature))
            outcomes.append(Submitted(signature, duplicate=True))  # until the script says
            calls.append(
                [
                    attempt_key_name(attempt_key),
                    tx_key(signature),
                    LANDING,
                    signature,
                    attempt_key,
                    route.SerializeToString(),
                    repr(now),
                    repr(now + self.slot_seconds),
                    self.faults.fate(),
                    swap.owner,
                    str(swap.priority_fee),
                ]
            )
        for (index, signature), taken in zip(taking, await self._run_submits(calls), strict=True):
            if taken and self.faults.rpc_times_out():
                outcomes[index] = RpcTimeout(signature)
            else:
                outcomes[index] = Submitted(signature, duplicate=not taken)
        return outcomes

    async def _run_submits(self, calls: list[list[Any]]) -> list[Any]:
        """Runs _SUBMIT once per call, in order, in one pipeline: one round
        trip. By its SHA, so without the SCRIPT EXISTS round trip redis-py
        adds for a Script in a pipeline; a Redis that lost the script (a
        restart, SCRIPT FLUSH) ran none of those calls, and gets it and them
        again."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for _ in range(2):
            if not pending:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for index in pending:
                    pipe.evalsha(self._submit.sha, 3, *calls[index])
                answered = await pipe.execute(raise_on_error=False)
            for index, reply in zip(pending, answered, strict=True):
                if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
                    raise reply
                replies[index] = reply
            pending = [i for i in pending if isinstance(replies[i], NoScriptError)]
            if pending:
                await self.redis.script_load(_SUBMIT)
        if pending:
            raise cast(NoScriptError, replies[pending[0]])
        return replies

    async def land_many(self, signatures: Sequence[str]) -> None:
        """Lands the pending transactions against the pools and their
        owners' wallets now, one after another: those paying a higher
        priority fee first, else in the order given. One optimistic
        transaction: whoever lands a transaction first wins, everyone else
        finds it landed. A few round trips for the lot instead of a few per
        transaction."""
        keys = [tx_key(signature) for signature in signatures]
        fields = _Pending.FIELDS
        while True:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(*keys)
                    # Read on another connection, in one round trip: the
                    # WATCH above still fails the EXEC if any of it changes.
                    async with self.redis.pipeline(transaction=False) as reads:
                        for key in keys:
                            reads.hmget(key, *fields)
                        txs = await reads.execute()
                    pending = sorted(
                        (
                            _Pending.read(signature, tx)
                            for signature, tx in zip(signatures, txs, strict=True)
                            if tx[0] == b"pending"
                        ),
                        key=lambda tx: -tx.priority_fee,  # stable: ties keep their order
                    )
                    if not pending:
                        return
                    pool_ids = list(
                        dict.fromkeys(
                            leg.pool_id
                            for tx in pending
                            if tx.plan is not None
                            for leg in tx.plan.legs
                        )
                    )
                    before: dict[str, PoolState] = {}
                    flows: Flows = {}
                    owners = [tx.owner for tx in pending if not tx.fate]
                    await pipe.watch(*(pool_key(p) for p in pool_ids), *Ledger.keys(owners))
                    if pool_ids:
                        before, flows = await read_pools(self.redis, pool_ids)
                    ledger = await Ledger.read(self.redis, owners)
                    now = time.time()
                    pools = dict(before)
                    # Everything is decided and checked here, before MULTI:
                    # Redis does not roll back a MULTI whose command fails, so
                    # nothing in it may fail. apply_route keeps every amount
                    # and holding within MAX_BASE_UNITS (u64), as the
                    # programs' checked arithmetic does; the pools' fields and
                    # their ledger are decimal strings, set whole.
                    results = [self._land_one(tx, pools, ledger, now) for tx in pending]
                    pipe.multi()
                    if pools != before:
                        write_reserves(
                            pipe,
                            {p: s for p, s in pools.items() if s is not before[p]},
                            before,
                            flows,
                        )
                    ledger.write(pipe)
                    for tx, result in zip(pending, results, strict=True):
                        pipe.hset(tx_key(tx.signature), mapping=result)
                        if result["state"] == "landed":
                            pipe.hincrby(LANDED_BY_ORDER, order_of(tx.attempt_key), 1)
                    pipe.zrem(LANDING, *(tx.signature for tx in pending))
                    await pipe.execute()
                    for tx in pending:
                        swap_landed(tx.submitted_at, now)
                    return
            except WatchError:
                continue  # a pool or a transaction moved under us: look again

    @staticmethod
    def _land_one(
        tx: _Pending, pools: dict[str, PoolState], ledger: Ledger, now: float
    ) -> dict[Any, Any]:
        """What landing ``tx`` now records; ``pools`` and ``ledger`` move on
        by what it does. In the order the chain checks: the fee payer can
        pay the fee, or the transaction is not processed and pays nothing;
        from there the fee is paid whatever follows. The program prices the
        route and checks its floor before it moves any token, as Raydium's
        and Meteora's do; then the token program moves the input out of the
        wallet (insufficient funds) and the output in (a u64 at most)."""
        result: dict[Any, Any] = {"landed_at": repr(now), "slot": str(current_slot(now))}

        def failed(code: str, error: str) -> dict[Any, Any]:
            return {**result, "state": "failed", "error_code": code, "error": error}

        if tx.fate:  # an injected failure: the pools and wallets never see it
            return failed(tx.fate, REASONS.get(tx.fate, tx.fate.lower()))
        fee = transaction_fee(tx.priority_fee)
        held_sol = ledger.held(tx.owner, FEE_TOKEN)
        if held_sol < fee:
            return failed(
                Reason.INSUFFICIENT_FUNDS,
                f"insufficient funds for fee: the wallet holds {format_sol(held_sol)} SOL, "
                f"the fee is {format_sol(fee)} SOL; nothing was charged",
            )
        ledger.pay_fee(tx.owner, fee)
        result["fee"] = format_sol(fee)
        if tx.plan is None:
            return failed(RouteError.code, tx.error)
        plan = tx.plan
        try:
            fill = apply_route(
                plan.legs, plan.input_token, plan.output_token, plan.amount_in, pools, now=int(now)
            )
        except RouteError as exc:  # the program reverts: AMOUNT_OVERFLOW, out of liquidity...
            return failed(exc.code, str(exc))
        except Exception as exc:  # this transaction's alone: the others still land
            log.exception("landing %s failed", tx.signature)
            return failed(Reason.PROGRAM_FAILED, f"the swap program failed: {exc}")
        src, dst = token(plan.input_token), token(plan.output_token)
        if fill.amount_out < plan.min_amount_out:
            return failed(
                Reason.SLIPPAGE_EXCEEDED,
                f"slippage exceeded: the route gives "
                f"{format_amount(fill.amount_out, dst.decimals)} "
                f"{dst.symbol} at landing, below the minimum "
                f"{format_amount(plan.min_amount_out, dst.decimals)}",
            )
        held = ledger.held(tx.owner, src.symbol)
        if held < plan.amount_in:
            return failed(
                Reason.INSUFFICIENT_FUNDS,
                f"insufficient funds: the wallet holds {format_amount(held, src.decimals)} "
                f"{src.symbol}, the swap spends {format_amount(plan.amount_in, src.decimals)}",
            )
        # What the wallet holds of the output once the input is out (the
        # same token for a route back to it).
        room = ledger.room(tx.owner, dst.symbol) + (plan.amount_in if src == dst else 0)
        if fill.amount_out > room:
            return failed(
                Reason.AMOUNT_OVERFLOW,
                f"the wallet would hold more than {format_amount(MAX_BASE_UNITS, dst.decimals)} "
                f"{dst.symbol}, the most a token account holds",
            )
        ledger.move(tx.owner, src.symbol, -plan.amount_in)
        ledger.move(tx.owner, dst.symbol, fill.amount_out)
        pools.update(fill.reserves)
        return {
            **result,
            "state": "landed",
            "amount_out": format_amount(fill.amount_out, dst.decimals),
        }

    async def land_due(self, limit: int = LAND_LIMIT) -> int:
        """Lands every transaction whose slot has come; returns how many."""
        due = await self.redis.zrangebyscore(LANDING, "-inf", repr(time.time()), 0, limit)
        if due:
            await self.land_many([_text(signature) or "" for signature in due])
        return len(due)

    async def _lander_pause(self, interval: float) -> float:
        """Until the next transaction is due: at least ``interval``, and at
        most a slot, since a swap taken from now on lands a slot after."""
        longest = max(interval, self.slot_seconds)
        first = await self.redis.zrange(LANDING, 0, 0, withscores=True)
        if not first:
            return longest
        return min(max(float(first[0][1]) - time.time(), interval), longest)

    async def statuses(self, signatures: list[str]) -> list[execution_service_pb2.SignatureStatus]:
        now = time.time()
        fields = (
            "state",
            "land_at",
            "landed_at",
            "slot",
            "amount_out",
            "error_code",
            "error",
            "fate",
            "fee",
        )

        async def read(which: list[str]) -> list[dict[str, str | None]]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for signature in which:
                    pipe.hmget(tx_key(signature), *fields)
                rows = await pipe.execute()
            return [dict(zip(fields, map(_text, row), strict=True)) for row in rows]

        values = dict(zip(signatures, await read(signatures), strict=True))
        # Those whose slot has come: land them now rather than wait for the lander.
        due = [
            s
            for s, v in values.items()
            if v["state"] == "pending" and float(v["land_at"] or 0) <= now
        ]
        if due:
            await self.land_many(due)
            values.update(zip(due, await read(due), strict=True))
        return [self._status(signature, values[signature], now) for signature in signatures]

    def _status(
        self, signature: str, values: dict[str, str | None], now: float
    ) -> execution_service_pb2.SignatureStatus:
        state = values["state"]
        if state is None or values["fate"] == Reason.TRANSACTION_DROPPED:
            # Dropped: no node has it, as for a signature never sent.
            return execution_service_pb2.SignatureStatus(signature=signature, found=False)
        status = execution_service_pb2.SignatureStatus(signature=signature, found=True)
        if state == "pending":
            status.commitment = Commitment.COMMITMENT_PENDING
            return status
        landed_at = float(values["landed_at"] or 0)
        confirmed_at = landed_at + self.confirm_seconds
        if now >= confirmed_at + FINALIZE_SLOTS * self.slot_seconds:
            status.commitment = Commitment.COMMITMENT_FINALIZED
        elif now >= confirmed_at:
            status.commitment = Commitment.COMMITMENT_CONFIRMED
        else:
            status.commitment = Commitment.COMMITMENT_PROCESSED
        status.slot = int(values["slot"] or 0)
        status.fee = values["fee"] or ""
        if state == "failed":
            status.error_code = values["error_code"] or Reason.UNKNOWN
            status.error = values["error"] or ""
        else:
            status.amount_out = values["amount_out"] or "0"
        return status

    async def run_lander(self, stopping: asyncio.Event) -> None:
        """Lands due transactions in the background, so pools move on time
        whether or not anyone asks for a status."""
        interval = min(max(self.slot_seconds / 4, 0.005), 0.05)
        while not stopping.is_set():
            pause = interval
            try:
                if await self.land_due() == LAND_LIMIT:
                    continue  # more may be due right now
                # Idle, it sleeps until the next landing rather than polling.
                pause = await self._lander_pause(interval)
            except Exception:  # keep landing; Redis may be back next time
                log.exception("landing failed")
                await asyncio.sleep(1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)


def _text(value: object) -> str | None:
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


def current_slot(now: float) -> int:
    return int(now / SLOT_SECONDS)
