"""The market flow's launches: now and then a new token and its pool appear
on the chain (docs/market.md, "Launches"), as launches and migrations do on
mainnet, so that sniper orders have something to wait for.

Launches come as a Poisson process of ``per_hour`` a time (0: none), each
named ``NEW<n>`` (the next number the chain has not launched), with 6 or 9
decimals, paired with USDC or SOL, and reserves drawn at random: all from
the seed, so one seed launches the same tokens at the same times."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from redis.asyncio import Redis

from orderengine.market.launches import Launch, LaunchError, checked, launch

log = logging.getLogger(__name__)

# What a launch's pool starts with, in whole tokens: the new token's supply
# in it, and the paired token's side.
NEW_SUPPLY = (100_000, 100_000_000)
PAIRED = {"USDC": (6, (5_000, 50_000)), "SOL": (9, (20, 300))}
# Launches the flow tries past symbols the chain has already (a restart on
# the same seed), before it gives up for this one.
TRIES = 1_000


class Launcher:
    """The flow's launches of one seed."""

    def __init__(self, seed: int, per_hour: float) -> None:
        if per_hour < 0:
            raise ValueError(f"launches per hour must be 0 or more, got {per_hour}")
        self.rng = random.Random(f"launch/{seed}")
        self.per_hour = per_hour
        self.number = 0

    def wait_seconds(self) -> float:
        """Until the next launch: exponential, ``per_hour`` a time on average."""
        return self.rng.expovariate(self.per_hour / 3600)

    def next(self) -> Launch:
        """The next launch: its terms drawn, its symbol the next number."""
        self.number += 1
        decimals = self.rng.choice((6, 9))
        paired = self.rng.choice(sorted(PAIRED))
        paired_decimals, (low, high) = PAIRED[paired]
        return checked(
            f"NEW{self.number}",
            decimals,
            paired,
            self.rng.randint(*NEW_SUPPLY) * 10**decimals,
            self.rng.randint(low, high) * 10**paired_decimals,
        )

    async def launch_one(self, redis: Redis) -> Launch | None:
        """Launches the next token the chain has not; None if none was found."""
        for _ in range(TRIES):
            try:
                new = self.next()
                await launch(redis, new)
                return new
            except LaunchError:  # launched already (a flow before this one)
                continue
        return None


async def run_launches(
    redis: Redis,
    launcher: Launcher,
    stopping: asyncio.Event,
    on_launch: Callable[[Launch], None] | None = None,
) -> int:
    """Launches until ``stopping`` is set; returns how many."""
    count = 0
    if launcher.per_hour <= 0:
        return 0
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), launcher.wait_seconds())
        if stopping.is_set():
            break
        try:
            new = await launcher.launch_one(redis)
        except Exception:  # keep launching; Redis may be back next time
            log.exception("market flow launch failed")
            continue
        if new is not None:
            count += 1
            log.info(
                "launched %s: pool %s with %s and %s base units",
                new.symbol,
                new.pool_id,
                new.reserve_new,
                new.reserve_paired,
            )
            if on_launch is not None:
                on_launch(new)
    return count
