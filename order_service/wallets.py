"""The callers' wallets, as OrderService sees them: the chain holds them
(ExecutionService.GetWallets, FundWallet), so OrderService asks it. The
wallets of callers submitting at the same moment are read in one call, and
each order is checked against its owner's balance before anything is
stored, as a wallet's preflight check would: its input and its fees (in
SOL) must be there now. Orders in flight are not held back from the balance;
the chain refuses at landing what the wallet no longer holds.

A balance read lately (within ``KEPT_SECONDS``) is kept, less what every
order passed on it since needs: an order it still covers passes without a
call to the chain. Anything else, and every refusal, is decided on a fresh
read. Only what changes a wallet outside this process (another replica's
orders of the same owner) goes unseen, for at most ``KEPT_SECONDS``; the
chain refuses such an order at landing, as it does any order in flight."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import grpc

from orderengine.amounts import format_amount
from orderengine.batching import Coalescer
from orderengine.errors import FieldError, ItemFailure
from orderengine.fees import FEE_TOKEN, format_sol, transaction_fee
from orderengine.reasons import Reason
from orderengine.store.changes import NewOrder
from orderengine.tokens import token
from orderengine.v1 import execution_service_pb2, execution_service_pb2_grpc
from orderengine.wallets import Holdings, holdings_of

log = logging.getLogger(__name__)

# Wallets read in one GetWallets: ExecutionService takes at most 256.
MAX_WALLETS_PER_CALL = 256
# A read of wallets never waits longer than a submit would for its write.
READ_TIMEOUT_SECONDS = 5.0
# How long a balance read is kept to pass orders on, and for how many owners.
KEPT_SECONDS = 1.0
MAX_KEPT = 4096


class WalletsUnavailable(Exception):
    """The chain did not answer for the wallet: nothing is decided on it."""


class InsufficientFunds(Exception):
    """The owner's wallet cannot pay for the order now; ``failure`` says
    what SubmitOrder answers."""

    def __init__(self, failure: ItemFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


WALLETS_UNAVAILABLE = ItemFailure(
    grpc.StatusCode.UNAVAILABLE,
    "wallets are unavailable (the chain does not answer); nothing was stored, try again",
    "WALLETS_UNAVAILABLE",
)


def needs(new: NewOrder) -> Holdings:
    """What the wallet pays for the order: its input and its fees, in SOL."""
    fee = transaction_fee(new.priority_fee)
    src = token(new.input_token).symbol
    if src == FEE_TOKEN:
        return {FEE_TOKEN: new.amount_in + fee}
    return {src: new.amount_in, FEE_TOKEN: fee}


def shortfall(new: NewOrder, held: Holdings) -> InsufficientFunds | None:
    """Why ``held`` cannot pay for the order now (its input, and its fees in
    SOL), or None when it can."""
    src = token(new.input_token)
    fee = transaction_fee(new.priority_fee)
    fees = f"{format_sol(fee)} SOL in fees"
    needed = needs(new)[src.symbol]
    if src.symbol == FEE_TOKEN:
        what = f"{format_sol(new.amount_in)} SOL and {fees}"
    else:
        what = f"{format_amount(new.amount_in, src.decimals)} {src.symbol}"
    have = held.get(src.symbol, 0)
    if have < needed:
        message = (
            f"the wallet holds {format_amount(have, src.decimals)} {src.symbol}, "
            f"less than the order needs ({what}); fund it with RequestAirdrop"
        )
        return _insufficient("amount", message, src.symbol, have, needed, src.decimals, True)
    have_sol = held.get(FEE_TOKEN, 0)
    if src.symbol != FEE_TOKEN and have_sol < fee:
        message = (
            f"the wallet holds {format_sol(have_sol)} SOL, less than the order's fees "
            f"({fees}); fund it with RequestAirdrop"
        )
        field = "priority_fee" if new.priority_fee else ""
        return _insufficient(
            field, message, FEE_TOKEN, have_sol, fee, token(FEE_TOKEN).decimals, bool(field)
        )
    return None


def _insufficient(
    field: str, message: str, symbol: str, have: int, needed: int, decimals: int, named: bool
) -> InsufficientFunds:
    return InsufficientFunds(
        ItemFailure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{field}: {message}" if named else message,
            # The ErrorInfo reason is the code the chain fails such a swap with.
            Reason.INSUFFICIENT_FUNDS,
            field=FieldError(field, message) if named else None,
            metadata={
                "token": symbol,
                "balance": format_amount(have, decimals),
                "required": format_amount(needed, decimals),
            },
        )
    )


class Wallets:
    def __init__(
        self,
        chain: execution_service_pb2_grpc.ExecutionServiceAsyncStub,
        kept_seconds: float = KEPT_SECONDS,
    ) -> None:
        self.chain = chain
        self.kept_seconds = kept_seconds
        # Owners asked for while a read is in flight go into the next one.
        self._reads: Coalescer[str, Holdings] = Coalescer(
            self._read, MAX_WALLETS_PER_CALL, key=lambda owner: owner
        )
        # owner -> when its balance was read (time.monotonic()), and that
        # balance less what the orders passed on it since need; oldest first.
        self._kept: dict[str, tuple[float, Holdings]] = {}

    async def _read(self, owners: list[str]) -> list[Holdings | Exception]:
        distinct = list(dict.fromkeys(owners))
        try:
            reply = await self.chain.GetWallets(
                execution_service_pb2.GetWalletsRequest(owners=distinct),
                timeout=READ_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("wallets unavailable: %s %s", exc.code().name, exc.details())
            return [WalletsUnavailable() for _ in owners]
        by_owner = {w.owner: holdings_of(w.balances) for w in reply.wallets}
        return [by_owner[owner] for owner in owners]

    async def holdings(self, owner: str) -> Holdings:
        """What the owner's wallet holds now, read from the chain; raises
        WalletsUnavailable."""
        held = await self._reads.submit(owner)
        self._keep(owner, held)
        return held

    def _keep(self, owner: str, held: Holdings) -> None:
        self._kept.pop(owner, None)
        if len(self._kept) >= MAX_KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[owner] = (time.monotonic(), dict(held))

    def _covered(self, owner: str, news: Sequence[NewOrder]) -> bool:
        """Do the owner's kept balance, less what was passed on it since,
        cover all of ``news`` together? If so they are passed on it."""
        kept = self._kept.get(owner)
        if kept is None or time.monotonic() - kept[0] > self.kept_seconds:
            return False
        left = dict(kept[1])
        for new in news:
            for symbol, amount in needs(new).items():
                left[symbol] = left.get(symbol, 0) - amount
        if any(amount < 0 for amount in left.values()):
            return False
        kept[1].update(left)
        return True

    async def refusals(
        self, owner: str, news: Sequence[NewOrder]
    ) -> list[InsufficientFunds | WalletsUnavailable | None]:
        """For each of the owner's orders: why its wallet cannot pay for it
        now, or None. On a fresh read each order is checked against the
        balance alone, as if it were the only one."""
        if self._covered(owner, news):
            return [None for _ in news]
        try:
            held = await self.holdings(owner)
        except WalletsUnavailable as exc:
            return [exc for _ in news]
        found: list[InsufficientFunds | WalletsUnavailable | None] = [
            shortfall(new, held) for new in news
        ]
        passed = [new for new, why in zip(news, found, strict=True) if why is None]
        if not self._covered(owner, passed):
            # Together they need more than it holds: the next order is
            # decided on a read of its own.
            self._kept.pop(owner, None)
        return found
