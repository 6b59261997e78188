"""Other traders: a seedable background flow of swaps, so that quotes go
stale as they do on mainnet.

Each step picks a pool at random and trades a random size (up to
``max_trade_bps`` of what a constant-product pool holds of the token it pays
out, or up to what a DLMM pool's nearest bins hold), in a direction drawn
with a bias back toward the pool's reference price (its price in
pools.toml): a random walk that reverts to the mean. Every swap
lands through ``land_route``, the same read-apply-write transaction as the
chain's, so the flow conserves tokens exactly as orders do.

    python -m orderengine.local.traders --seed 7 --rate 5      # 5 swaps a second

It trades on the chain's Redis (CHAIN_REDIS_URL, else REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from redis.asyncio import Redis

from orderengine.market.dlmm import DlmmState
from orderengine.market.pools import Pool, PoolState, all_pools, balances, spot_price
from orderengine.market.routes import Leg, PoolOutOfLiquidityError
from orderengine.market.state import land_route, read_reserves
from orderengine.observability.logs import configure_logging
from orderengine.settings import Settings

log = logging.getLogger(__name__)

BPS = 10_000
# The chance of selling token_a, in basis points, moves this many basis
# points per basis point the price stands above its reference...
PULL = 20
# ...but never past these bounds, so the walk never stops being random.
MIN_CHANCE_BPS, MAX_CHANCE_BPS = 500, 9_500
# A flow swap on a DLMM pool takes at most what this many bins, from the
# active one on, hold.
DLMM_FLOW_BINS = 2


@dataclass(frozen=True)
class FlowSwap:
    pool_id: str
    input_token: str
    output_token: str
    amount_in: int


def mid_price(pool: Pool, state: PoolState) -> Fraction:
    """token_b base units per token_a base unit, before the fee."""
    return spot_price(pool, state, pool.token_a)


class Flow:
    """The flow's decisions; deterministic for a seed and the states it sees."""

    def __init__(
        self, seed: int, pools: Iterable[Pool] | None = None, max_trade_bps: int = 20
    ) -> None:
        self.rng = random.Random(seed)
        self.pools = sorted(all_pools().values() if pools is None else pools, key=lambda p: p.id)
        self.max_trade_bps = max_trade_bps
        self.reference = {p.id: mid_price(p, p.initial_state()) for p in self.pools}

    def choose_pool(self) -> Pool:
        return self.rng.choice(self.pools)

    def choose_swap(self, pool: Pool, state: PoolState) -> FlowSwap:
        price = mid_price(pool, state)
        reference = self.reference[pool.id]
        above_bps = (price - reference) * BPS / reference
        chance = min(
            max(BPS // 2 + above_bps * PULL, Fraction(MIN_CHANCE_BPS)), Fraction(MAX_CHANCE_BPS)
        )
        sell_a = self.rng.randrange(BPS) < chance
        depth = self.depth(pool, state, sell_a)
        # Size by what the pool can pay out, in the input token at its price.
        if sell_a:
            most = int(depth / price)
            src, dst = pool.token_a, pool.token_b
        else:
            most = int(depth * price)
            src, dst = pool.token_b, pool.token_a
        return FlowSwap(pool.id, src, dst, self.rng.randint(1, max(most, 1)))

    def depth(self, pool: Pool, state: PoolState, sell_a: bool) -> Fraction:
        """How much of the output token a flow swap may take at most: a share
        of a constant-product pool's reserve, or what a DLMM pool holds in the
        bins nearest its price (within a bin the price does not move, so a
        share of the whole pool would hardly ever move it)."""
        if isinstance(state, DlmmState):
            step = -1 if sell_a else 1
            near = (state.bin(state.active_id + step * k) for k in range(DLMM_FLOW_BINS))
            return Fraction(sum(b.y if sell_a else b.x for b in near))
        held_a, held_b = balances(pool, state)
        return Fraction((held_b if sell_a else held_a) * self.max_trade_bps, BPS)


@dataclass(frozen=True)
class FlowTrade:
    swap: FlowSwap
    amount_out: int


async def flow_step(redis: Redis, flow: Flow, now: int) -> FlowTrade | None:
    """One swap of the flow, landed; None when the pool could not take it."""
    pool = flow.choose_pool()
    state = (await read_reserves(redis, [pool.id]))[pool.id]
    swap = flow.choose_swap(pool, state)
    leg = Leg(swap.pool_id, swap.input_token, swap.output_token)
    try:
        landed = await land_route(
            redis, [leg], swap.input_token, swap.output_token, swap.amount_in, now
        )
    except PoolOutOfLiquidityError:
        log.info("flow: %s could not take %s %s", pool.id, swap.amount_in, swap.input_token)
        return None
    assert landed is not None  # land_route accepts every fill unless told otherwise
    log.debug(
        "flow: %s %s %s -> %s %s",
        pool.id,
        swap.amount_in,
        swap.input_token,
        landed.fill.amount_out,
        swap.output_token,
    )
    return FlowTrade(swap, landed.fill.amount_out)


async def run_flow(
    redis: Redis,
    flow: Flow,
    rate: float,
    stopping: asyncio.Event,
    count: int | None = None,
    clock: Callable[[], float] = time.time,
    on_trade: Callable[[FlowTrade], None] | None = None,
) -> int:
    """Lands ``rate`` flow swaps a second until ``stopping`` is set (or
    ``count`` swaps); returns how many landed."""
    landed = 0
    steps = 0
    while not stopping.is_set() and (count is None or steps < count):
        steps += 1
        try:
            trade = await flow_step(redis, flow, int(clock()))
        except Exception:  # keep trading; Redis may be back next time
            log.exception("flow swap failed")
            trade = None
        if trade is not None:
            landed += 1
            if on_trade is not None:
                on_trade(trade)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 1 / rate)
    return landed


async def _main(seed: int, rate: float, count: int | None) -> None:
    redis = Redis.from_url(Settings().chain_redis_url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        landed = await run_flow(redis, Flow(seed), rate, stopping, count)
    finally:
        await redis.aclose()
    print(f"flow: {landed} swaps landed", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orderengine.local.traders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed makes the same flow")
    parser.add_argument("--rate", type=float, default=1.0, help="swaps per second (> 0)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many swaps")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be greater than 0")
    configure_logging("market-flow")
    asyncio.run(_main(args.seed, args.rate, args.count))


if __name__ == "__main__":
    main()
