"""``orderengine launch``: a new token and its pool on the simulated chain
(docs/market.md, "Launches"), written to the chain's Redis directly
(CHAIN_REDIS_URL). A tool of the simulated market, as the faucet's other
traders are: a real chain's launches are nobody's order, so the engine's
API has no call for one."""

from __future__ import annotations

import argparse
import asyncio
import json

from redis.asyncio import Redis
from redis.exceptions import RedisError

from orderengine.amounts import AmountError, parse_amount
from orderengine.cli.errors import CommandError
from orderengine.market.launches import Launch, LaunchError, checked, launch
from orderengine.settings import Settings
from orderengine.tokens import UnknownTokenError, token


def launch_of(args: argparse.Namespace) -> Launch:
    """The launch the arguments ask for; CommandError naming the field."""
    try:
        paired = token(args.paired_with)
    except UnknownTokenError as exc:
        raise CommandError(f"--paired-with: {exc}") from None
    reserves = []
    for name, text, decimals in (
        ("reserves (the new token's)", args.reserves[0], args.decimals),
        ("reserves (the paired token's)", args.reserves[1], paired.decimals),
    ):
        try:
            reserves.append(parse_amount(text, decimals))
        except AmountError as exc:
            raise CommandError(f"--{name}: {exc}") from None
    try:
        return checked(args.token, args.decimals, paired.symbol, *reserves)
    except LaunchError as exc:
        raise CommandError(str(exc)) from None


def cmd_launch(args: argparse.Namespace) -> int:
    new = launch_of(args)

    async def write() -> None:
        async with Redis.from_url(Settings().chain_redis_url) as chain:
            await launch(chain, new)

    try:
        asyncio.run(write())
    except LaunchError as exc:
        raise CommandError(str(exc)) from None
    except (RedisError, OSError) as exc:
        raise CommandError(
            f"the chain's Redis (CHAIN_REDIS_URL) cannot be reached: {exc}"
        ) from None
    if args.json:
        print(json.dumps({"token": new.symbol, "decimals": new.decimals, "pool_id": new.pool_id}))
    else:
        print(
            f"launched {new.symbol} ({new.decimals} decimals): pool {new.pool_id} holds "
            f"{args.reserves[0]} {new.symbol} and {args.reserves[1]} {new.paired_with}"
        )
    return 0
