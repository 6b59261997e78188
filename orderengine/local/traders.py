"""Other traders: a seedable market around the engine's orders, so that
quotes go stale and prices move as they do on mainnet. Long on purpose:
one slot's steps (walk, arbitrage, noise, landing) are read in order here.

Every slot of the chain, in this order:

1. each token's reference price takes a step of its random walk
   (``orderengine.local.reference``);
2. arbitrageurs trade the pools back in line with the references and with
   each other (``orderengine.local.arbitrage``), reacting to everything the
   slot before moved: the walk, the noise traders, the engine's orders;
3. noise traders swap ``rate`` times a second on average: each picks a pool
   at random and a random size (up to ``max_trade_bps`` of what a
   constant-product pool holds of the token it pays out, or up to what a
   DLMM pool's nearest bins hold), in a direction drawn with a bias toward
   the pool's reference price.

A slot's trades are decided on one reading of the pools and land together,
as a block's worth of other traders' transactions, the way the chain lands
swaps: the pools' math (``apply_route``), then their states and the flows
ledger written in one MULTI/EXEC (``write_reserves``). A WATCH on every
pool voids it if an order landed meanwhile, and the slot is decided again
from the same draws. So the flow conserves tokens exactly as orders do, and
a seed makes the same prices, pools and flow on the same market.

    python -m orderengine.local.traders --seed 7 --rate 5      # 5 noise swaps a second

Beside them, now and then a token launches (``orderengine.local.launcher``,
``--launch-rate`` a hour; 0: none).

It trades on the chain's Redis (CHAIN_REDIS_URL, else REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis

from orderengine.local.arbitrage import AlongLegs, Arbitrageur
from orderengine.local.flow_market import Market, RedisMarket
from orderengine.local.launcher import Launcher, run_launches
from orderengine.local.reference import Reference, ReferenceWalk
from orderengine.market.dlmm import DlmmState
from orderengine.market.pools import Pool, PoolState, all_pools, balances, spot_price
from orderengine.market.routes import Leg, RouteError, apply_route
from orderengine.observability.logs import configure_logging, say
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
# Arbitrages landed in one slot at most, the rest waiting for the next: a
# bound on a slot's work, above the dozen pools a reference's step can move.
ARBITRAGES_PER_SLOT = 24
# Slots a late step makes up for, at most, in noise swaps (a process
# suspended for an hour does not then swap an hour's worth at once).
CATCH_UP_SLOTS = 25


@dataclass(frozen=True)
class FlowSwap:
    pool_id: str
    input_token: str
    output_token: str
    amount_in: int


def mid_price(pool: Pool, state: PoolState) -> float:
    """token_b base units per token_a base unit, before the fee."""
    return float(spot_price(pool, state, pool.token_a))


class NoiseTraders:
    """The noise traders' decisions; deterministic for a seed, the walk and
    the states they see."""

    def __init__(
        self,
        seed: int,
        walk: ReferenceWalk,
        pools: Iterable[Pool] | None = None,
        max_trade_bps: int = 20,
    ) -> None:
        self.rng = random.Random(f"noise/{seed}")
        self.walk = walk
        self.pools = sorted(all_pools().values() if pools is None else pools, key=lambda p: p.id)
        self.max_trade_bps = max_trade_bps

    def reference(self, pool: Pool) -> float:
        """The pool's reference price, as ``mid_price`` reads it."""
        return self.walk.rate(pool.token_a, pool.token_b)

    def choose_pool(self) -> Pool:
        return self.rng.choice(self.pools)

    def choose_swap(self, pool: Pool, state: PoolState) -> FlowSwap:
        price = mid_price(pool, state)
        above_bps = (price / self.reference(pool) - 1) * BPS
        chance = min(max(BPS // 2 + above_bps * PULL, MIN_CHANCE_BPS), MAX_CHANCE_BPS)
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

    def depth(self, pool: Pool, state: PoolState, sell_a: bool) -> int:
        """How much of the output token a flow swap may take at most: a share
        of a constant-product pool's reserve, or what a DLMM pool holds in the
        bins nearest its price (within a bin the price does not move, so a
        share of the whole pool would hardly ever move it)."""
        if isinstance(state, DlmmState):
            step = -1 if sell_a else 1
            near = (state.bin(state.active_id + step * k) for k in range(DLMM_FLOW_BINS))
            return sum(b.y if sell_a else b.x for b in near)
        held_a, held_b = balances(pool, state)
        return (held_b if sell_a else held_a) * self.max_trade_bps // BPS


class MarketFlow:
    """The reference walk, the noise traders and the arbitrageurs of one
    seed: what they do in a slot depends on nothing else but the pools."""

    def __init__(
        self,
        seed: int,
        rate: float,
        slot_seconds: float,
        pools: Iterable[Pool] | None = None,
        references: Mapping[str, Reference] | None = None,
        arbitrageur: Callable[[ReferenceWalk, list[Pool]], Arbitrageur | None] = Arbitrageur,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be 0 or more, got {rate}")
        chosen = sorted(all_pools().values() if pools is None else pools, key=lambda p: p.id)
        self.pool_ids = [p.id for p in chosen]
        self.walk = ReferenceWalk(seed, slot_seconds, references)
        self.noise = NoiseTraders(seed, self.walk, chosen)
        self.arbitrageur = arbitrageur(self.walk, chosen)
        self.rate = rate
        self.slot_seconds = slot_seconds
        self._owed = 0.0  # noise swaps due but not yet made: a fraction of one

    def noise_swaps(self, slots: int = 1) -> int:
        """How many noise swaps the next ``slots`` slots make: ``rate`` a
        second on average, the fractions carried over."""
        self._owed += self.rate * self.slot_seconds * min(slots, CATCH_UP_SLOTS)
        due = int(self._owed)
        self._owed -= due
        return due


@dataclass(frozen=True)
class FlowTrade(AlongLegs):
    """A landed swap of the flow: what the trader paid and received."""

    trader: str  # "noise" or "arbitrage"
    legs: tuple[Leg, ...]
    amount_in: int
    amount_out: int


@dataclass
class FlowCounts:
    slots: int = 0
    noise: int = 0
    arbitrage: int = 0
    on_trade: Callable[[FlowTrade], None] | None = field(default=None, repr=False)

    def landed(self, trade: FlowTrade) -> None:
        if trade.trader == "arbitrage":
            self.arbitrage += 1
        else:
            self.noise += 1
        if self.on_trade is not None:
            self.on_trade(trade)


def trade_slot(
    flow: MarketFlow, states: dict[str, PoolState], now: int, noise_swaps: int
) -> tuple[dict[str, PoolState], list[FlowTrade]]:
    """A slot's trades on ``states``, one after another, each priced with
    the chain's math on the states the ones before left: arbitrage first
    (it answers what moved since the last slot), then ``noise_swaps`` noise
    swaps. Returns the states after and the trades."""
    trades: list[FlowTrade] = []
    if flow.arbitrageur is not None:
        for _ in range(ARBITRAGES_PER_SLOT):
            arbitrage = flow.arbitrageur.find(states, now)
            if arbitrage is None:
                break
            try:  # sized on these very states, so it fills as priced
                fill = apply_route(
                    list(arbitrage.legs),
                    arbitrage.input_token,
                    arbitrage.output_token,
                    arbitrage.amount_in,
                    states,
                    now,
                )
            except RouteError:
                log.exception("arbitrage %s did not fill", arbitrage)
                break
            states.update(fill.reserves)
            trades.append(
                FlowTrade("arbitrage", arbitrage.legs, arbitrage.amount_in, fill.amount_out)
            )
    for _ in range(noise_swaps):
        pool = flow.noise.choose_pool()
        swap = flow.noise.choose_swap(pool, states[pool.id])
        legs = (Leg(swap.pool_id, swap.input_token, swap.output_token),)
        try:
            fill = apply_route(
                list(legs), swap.input_token, swap.output_token, swap.amount_in, states, now
            )
        except RouteError as exc:  # out of liquidity, or it would pay nothing
            log.debug(
                "flow: %s could not take %s %s: %s", pool.id, swap.amount_in, swap.input_token, exc
            )
            continue
        states.update(fill.reserves)
        trades.append(FlowTrade("noise", legs, swap.amount_in, fill.amount_out))
    return states, trades


async def run_slot(
    market: Market, flow: MarketFlow, now: int, counts: FlowCounts, slots: int = 1
) -> None:
    """One slot of the flow (or the first after ``slots`` slots passed): the
    walk steps, then the slot's trades land together, as a block's worth of
    other traders' transactions."""
    flow.walk.step(slots)
    noise_swaps = flow.noise_swaps(slots)
    # Decided again from the same draws when the pools moved under them.
    draws = flow.noise.rng.getstate()
    trades: list[FlowTrade] = []

    def trade(states: dict[str, PoolState]) -> dict[str, PoolState]:
        nonlocal trades
        flow.noise.rng.setstate(draws)
        after, trades = trade_slot(flow, states, now, noise_swaps)
        return after

    await market.transact(flow.pool_ids, trade, flow.walk.prices)
    for landed in trades:
        counts.landed(landed)
        log.debug(
            "%s: %s %s %s -> %s %s",
            landed.trader,
            ">".join(leg.pool_id for leg in landed.legs),
            landed.amount_in,
            landed.input_token,
            landed.amount_out,
            landed.output_token,
        )


async def run_flow(
    market: Market,
    flow: MarketFlow,
    stopping: asyncio.Event,
    slots: int | None = None,
    clock: Callable[[], float] = time.time,
    on_trade: Callable[[FlowTrade], None] | None = None,
    paced: bool = True,
) -> FlowCounts:
    """Runs the flow a slot at a time until ``stopping`` is set (or for
    ``slots`` slots). Paced, each slot starts on the wall clock's slot
    boundary and a late one makes up for the slots it missed; unpaced,
    slots follow each other at once (a simulation on ``clock``)."""
    counts = FlowCounts(on_trade=on_trade)
    last: int | None = None
    resumed = flow.walk.steps > 0  # a walk under way goes on from where it is
    while not stopping.is_set() and (slots is None or counts.slots < slots):
        now = clock()
        slot = math.floor(now / flow.slot_seconds)
        passed = 1 if last is None or not paced else max(slot - last, 1)
        last = slot
        try:
            if not resumed:  # prices go on where a flow before this one left them
                flow.walk.resume(await market.reference())
                resumed = True
            await run_slot(market, flow, int(now), counts, passed)
        except Exception:  # keep trading; Redis may be back next slot
            log.exception("market flow slot failed")
        counts.slots += 1
        if paced:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stopping.wait(), max((slot + 1) * flow.slot_seconds - clock(), 0)
                )
    return counts


async def _main(
    seed: int, rate: float, slot_seconds: float, slots: int | None, launch_rate: float = 0.0
) -> None:
    redis = Redis.from_url(Settings().chain_redis_url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    launching = asyncio.create_task(run_launches(redis, Launcher(seed, launch_rate), stopping))
    try:
        counts = await run_flow(
            RedisMarket(redis), MarketFlow(seed, rate, slot_seconds), stopping, slots
        )
    finally:
        stopping.set()
        await launching
        await redis.aclose()
    say(
        f"flow: {counts.noise + counts.arbitrage} swaps landed in {counts.slots} slots "
        f"({counts.noise} by noise traders, {counts.arbitrage} by arbitrageurs)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orderengine.local.traders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the same seed makes the same prices and flow"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="noise swaps per second (> 0)")
    parser.add_argument(
        "--slot-seconds",
        type=float,
        default=None,
        help="a step of the flow (default: CHAIN_SLOT_SECONDS, the chain's slot)",
    )
    parser.add_argument("--slots", type=int, default=None, help="stop after this many slots")
    parser.add_argument(
        "--launch-rate",
        type=float,
        default=0.0,
        help="token launches an hour on average (default 0: none)",
    )
    args = parser.parse_args(argv)
    if args.launch_rate < 0:
        parser.error("--launch-rate must be 0 or more")
    if args.rate <= 0:
        parser.error("--rate must be greater than 0")
    slot_seconds = Settings().slot_seconds if args.slot_seconds is None else args.slot_seconds
    if slot_seconds <= 0:
        parser.error("--slot-seconds must be greater than 0")
    if args.slots is not None and args.slots < 1:
        parser.error("--slots must be 1 or more")
    configure_logging("market-flow")
    asyncio.run(_main(args.seed, args.rate, slot_seconds, args.slots, args.launch_rate))


if __name__ == "__main__":
    main()
