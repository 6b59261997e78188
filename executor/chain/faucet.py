"""The chain's faucet, as devnet's requestAirdrop: it credits a wallet at
once, at most so much of a token a call and so much to one owner in all
(FAUCET_MAX_PER_CALL, FAUCET_MAX_PER_OWNER). What it gives is minted: the
chain counts it (``chain:minted``), so tokens are conserved around it."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from redis.asyncio import Redis
from redis.exceptions import WatchError

from executor.chain.wallets import MINTED, read_holdings, wallet_key
from orderengine.amounts import MAX_BASE_UNITS, AmountError, format_amount, parse_amount
from orderengine.errors import FieldError, ItemFailure
from orderengine.settings import Settings
from orderengine.tokens import UnknownTokenError, token

# An airdrop's request id is remembered this long: a resend within it is
# given nothing more.
REQUEST_ID_SECONDS = 24 * 3600


def airdropped_key(owner: str) -> str:
    """A hash, token -> base units the faucet gave the owner in all."""
    return f"chain:airdropped:{owner}"


def request_key(request_id: str) -> str:
    return f"chain:airdrop:{request_id}"


@dataclass(frozen=True)
class Airdropped:
    # What the wallet holds of the token now.
    held: int
    # The request id was funded before: nothing more was given.
    duplicate: bool


def parse_limits(name: str, text: str) -> dict[str, int]:
    """``"SOL=100,USDC=10000"`` -> base units per token; ValueError naming
    the setting. A token not named gets nothing from the faucet."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        symbol, _, amount = item.partition("=")
        try:
            found = token(symbol)
            limits[found.symbol] = (
                0 if amount.strip() in ("0", "") else parse_amount(amount, found.decimals)
            )
        except (UnknownTokenError, AmountError) as exc:
            raise ValueError(
                f"{name} must be TOKEN=AMOUNT pairs separated by commas "
                f"(e.g. SOL=100,USDC=10000); {item[:40]!r}: {exc}"
            ) from None
    return limits


@dataclass(frozen=True)
class FaucetLimits:
    # Base units per token: what one call may ask for, and what one owner
    # may be given in all.
    per_call: dict[str, int]
    per_owner: dict[str, int]

    @classmethod
    def from_settings(cls, settings: Settings) -> FaucetLimits:
        return cls(
            parse_limits("FAUCET_MAX_PER_CALL", settings.faucet_max_per_call),
            parse_limits("FAUCET_MAX_PER_OWNER", settings.faucet_max_per_owner),
        )


class FaucetRefused(Exception):
    """The faucet gives nothing for this request; ``failure`` says why."""

    def __init__(self, failure: ItemFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _limit_reached(
    code: grpc.StatusCode, setting: str, message: str, most: int, decimals: int
) -> FaucetRefused:
    return FaucetRefused(
        ItemFailure(
            code,
            f"amount: {message}",
            "FAUCET_LIMIT",
            field=FieldError("amount", message),
            metadata={"limit": setting, "most": format_amount(most, decimals)},
        )
    )


def _check(symbol: str, units: int, given: int, limits: FaucetLimits) -> None:
    decimals = token(symbol).decimals
    per_call = limits.per_call.get(symbol, 0)
    per_owner = limits.per_owner.get(symbol, 0)
    if not per_call or not per_owner:
        raise FaucetRefused(
            ItemFailure.invalid(FieldError("token", f"the faucet gives no {symbol}"))
        )
    if units > per_call:
        raise _limit_reached(
            grpc.StatusCode.INVALID_ARGUMENT,
            "FAUCET_MAX_PER_CALL",
            f"the faucet gives at most {format_amount(per_call, decimals)} {symbol} a call",
            per_call,
            decimals,
        )
    if given + units > per_owner:
        left = max(per_owner - given, 0)
        raise _limit_reached(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "FAUCET_MAX_PER_OWNER",
            f"the faucet gives at most {format_amount(per_owner, decimals)} {symbol} to one "
            f"owner; it has given you {format_amount(given, decimals)}, so "
            f"{format_amount(left, decimals)} more at most",
            per_owner,
            decimals,
        )


async def airdrop(
    redis: Redis,
    owner: str,
    symbol: str,
    units: int,
    limits: FaucetLimits | None,
    request_id: str = "",
) -> Airdropped:
    """Credits ``units`` base units of ``symbol`` to the owner's wallet,
    counted as minted and as given to the owner, in one transaction, once
    per ``request_id`` (empty: no id, every call gives). Raises
    FaucetRefused past a limit or past what a token account holds, changing
    nothing. ``limits`` None: seeding a wallet (tests, genesis), neither
    limited nor counted as the faucet's gift to the owner."""
    keys = [wallet_key(owner), airdropped_key(owner), MINTED]
    done = request_key(request_id) if request_id else None
    while True:
        try:
            async with redis.pipeline(transaction=True) as pipe:
                await pipe.watch(*keys, *([done] if done else []))
                if done and await redis.exists(done):
                    held_now = (await read_holdings(redis, keys[:1]))[0].get(symbol, 0)
                    return Airdropped(held_now, duplicate=True)
                wallet, given, minted = await read_holdings(redis, keys)
                if limits is not None:
                    _check(symbol, units, given.get(symbol, 0), limits)
                held = wallet.get(symbol, 0) + units
                if held > MAX_BASE_UNITS:
                    decimals = token(symbol).decimals
                    message = (
                        f"the wallet would hold more than "
                        f"{format_amount(MAX_BASE_UNITS, decimals)} {symbol}, "
                        f"the most a token account holds"
                    )
                    raise FaucetRefused(
                        ItemFailure(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"amount: {message}",
                            "WALLET_FULL",
                            field=FieldError("amount", message),
                        )
                    )
                pipe.multi()
                pipe.hset(keys[0], symbol, str(held))
                if limits is not None:
                    pipe.hset(keys[1], symbol, str(given.get(symbol, 0) + units))
                pipe.hset(keys[2], symbol, str(minted.get(symbol, 0) + units))
                if done:
                    pipe.set(done, symbol, ex=REQUEST_ID_SECONDS)
                await pipe.execute()
                return Airdropped(held, duplicate=False)
        except WatchError:
            continue  # a landing or another airdrop moved the wallet: look again
