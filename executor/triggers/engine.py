"""The trigger part's loop: follow the chain's pool changes, fire the
waiting orders each change crosses, expire those whose time came, and keep
the index up with the database. Long on purpose: firing, expiring and
rebuilding share the index and must be read together to see why an order
fires once.

- **Fire** = the store's compare-and-set OPEN -> ROUTING (event reason
  TRIGGERED, with the price), then the order queue, as a market order
  after its quote. Two trigger processes, or one repeating a round after a
  crash, cannot fire an order twice: the second compare-and-set is refused.
  An order moved but not queued (a crash between) is the reconciler's, as
  any ROUTING order nobody drives.
- **Limit orders** crossed by the pair's price are quoted for their whole
  amount first and fire only when the quote gives their minimum: the price
  is a mid price, the swap pays a fee and its own impact.
- **Sniper orders** wait for their output token's launch (docs/market.md,
  "Launches"): on a launch entry of the pool changes, a change of a pool
  of their token, and when they are new, those whose token the chain has
  now are quoted for their whole amount and fire when a route gives
  something within their max_price. A launch too thin for that leaves them
  OPEN, to fire on a later change that makes it, or to expire.
- **Expiry**: one time index; OPEN -> EXPIRED, once, by compare-and-set.
- **The database is the truth**: the index is built from it at start and
  whenever its marker is gone (a flushed Redis), orders that became OPEN
  (new, or a limit back from a miss) are read every poll, and every pair is
  checked after a build, so an order crossed while this part was down fires
  when it is back, and one whose time passed expires."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import grpc
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from executor.driver.context import RPC_TIMEOUT_SECONDS, Context
from executor.driver.limits import limit_short
from executor.triggers import metrics
from executor.triggers.index import Pair, TriggerIndex, pair_of
from executor.triggers.twap import Slicer
from orderengine.amounts import format_amount, parse_amount
from orderengine.market import launches
from orderengine.market.pools import all_pools
from orderengine.market.prices import format_price, read_prices
from orderengine.market.state import POOL_CHANGES
from orderengine.order_queue import enqueue_orders
from orderengine.order_types import OrderType, fires_at, sniper_affords, trigger_of
from orderengine.reasons import Reason
from orderengine.statuses import Status
from orderengine.store.changes import Change, Transition
from orderengine.store.models import StoredOrder
from orderengine.tokens import LOAD_EVERY_SECONDS, TOKENS, token
from orderengine.transitions import move_many
from orderengine.v1 import market_pb2, quote_service_pb2

log = logging.getLogger(__name__)

# Orders read from the database per page when the index is built.
PAGE = 2_000
# Orders that became OPEN are read again this far back: writers' clocks
# and commits are not in one order, and indexing twice is harmless.
OVERLAP = timedelta(seconds=2)
# Quotes one BatchGetQuotes call asks for: QuoteService's most.
QUOTES_PER_CALL = 64
# The fields a quote names when it does not know a token.
TOKEN_FIELDS = ("input_token", "output_token")
# The reconciler's check: every OPEN order is indexed again, a page per
# round at most every REINDEX_PAGE_SECONDS (so that a sweep of 100,000
# orders never holds up a price move), a sweep every REINDEX_SECONDS: what
# any drift (a lost write, an entry taken out by a race) can cost.
REINDEX_SECONDS = 60.0
REINDEX_PAGE_SECONDS = 0.2
# A launched token QuoteService does not know yet (it looks for new ones at
# most every LOAD_EVERY_SECONDS): its snipers are checked again this much
# later, up to SNIPE_RETRIES times, rather than at the next change or sweep.
SNIPE_RETRY_SECONDS = 2 * LOAD_EVERY_SECONDS
SNIPE_RETRIES = 10


@dataclass
class Round:
    fired: int = 0
    expired: int = 0
    # TWAP slices started or recorded.
    sliced: int = 0


def _still_waiting(
    ids: Iterable[str], rows: Mapping[str, StoredOrder], now: datetime, gone: list[StoredOrder]
) -> Iterator[StoredOrder]:
    """The orders of ``ids`` still OPEN and within their time (one past it
    expires, it does not fire); those no longer OPEN go to ``gone``."""
    for order_id in ids:
        row = rows.get(order_id)
        if row is None:
            continue
        if row.status != Status.OPEN:
            gone.append(row)
        elif row.expire_at is None or _aware(row.expire_at) > now:
            yield row


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Triggers:
    def __init__(self, ctx: Context, market: AsyncRedis) -> None:
        self.ctx = ctx
        self.market = market
        self.index = TriggerIndex(ctx.redis)
        self.slicer = Slicer(ctx, self.index)
        # Orders that became OPEN are read from here on.
        self.since: datetime | None = None
        # Those read in the overlap already, with the update they were read at.
        self.seen: dict[str, datetime] = {}
        self.stream_id = "$"
        # The reconciler's sweep: where it is, and when its next page is due
        # (time.monotonic()).
        self.sweep: tuple[datetime, str] | None = None
        self.sweep_at = 0.0
        # Launched tokens QuoteService did not know at a sniper's check:
        # symbol -> when to check again (time.monotonic()), and tries left.
        self.unquoted: dict[str, tuple[float, int]] = {}

    # -- the index --------------------------------------------------------------

    def build(self) -> int:
        """Indexes every OPEN order; returns how many."""
        started = datetime.now(UTC)
        after: tuple[datetime, str] | None = None
        count = 0
        while True:
            rows = self.ctx.store.open_orders(after=after, limit=PAGE)
            if not rows:
                break
            self.index.add(rows)
            count += len(rows)
            after = (rows[-1].updated_at, rows[-1].order_id)
        self.index.mark_built()
        self.sweep, self.sweep_at = None, time.monotonic() + REINDEX_SECONDS
        self.since = started - OVERLAP
        self.seen.clear()
        log.info("triggers: indexed %d waiting orders", count)
        return count

    def sweep_page(self, reindex_seconds: float = REINDEX_SECONDS) -> int:
        """One page of the reconciler's sweep, when due: the next OPEN
        orders indexed again; returns how many."""
        now = time.monotonic()
        if now < self.sweep_at:
            return 0
        rows = self.ctx.store.open_orders(after=self.sweep, limit=PAGE)
        self.index.add(rows)
        if rows:
            self.sweep = (rows[-1].updated_at, rows[-1].order_id)
            self.sweep_at = now + REINDEX_PAGE_SECONDS
        else:  # the sweep is done: the next one in a while
            self.sweep, self.sweep_at = None, now + reindex_seconds
        return len(rows)

    def newly_open(self) -> list[StoredOrder]:
        """Orders that became OPEN since the last look, indexed now."""
        polled = datetime.now(UTC)
        found: list[StoredOrder] = []
        after: tuple[datetime, str] | None = None
        while True:
            rows = self.ctx.store.open_orders(since=self.since, after=after, limit=PAGE)
            if not rows:
                break
            after = (rows[-1].updated_at, rows[-1].order_id)
            found += [r for r in rows if self.seen.get(r.order_id) != r.updated_at]
        self.index.add(found)
        horizon = polled - OVERLAP
        for row in found:
            self.seen[row.order_id] = row.updated_at
        self.seen = {i: at for i, at in self.seen.items() if _aware(at) >= horizon}
        self.since = horizon
        return found

    # -- firing -----------------------------------------------------------------

    async def check(self, pairs: set[Pair], changed_at: float | None = None) -> int:
        """Fires every order the pairs' prices now meet; returns how many."""
        if not pairs:
            return 0
        prices = {
            pair: price
            for pair, price in (await read_prices(self.market, pairs)).items()
            if price is not None
        }
        crossed = self.index.crossed(prices)
        if not crossed:
            return 0
        rows = self.ctx.store.get_many([i for ids in crossed.values() for i in ids])
        gone: list[StoredOrder] = []
        due: list[tuple[StoredOrder, Fraction]] = []
        now = datetime.now(UTC)
        for pair, ids in crossed.items():
            missing = [i for i in ids if i not in rows]
            self.index.forget(pair, missing)
            for row in _still_waiting(ids, rows, now, gone):
                if fires_at(row, prices[pair]):
                    due.append((row, prices[pair]))
        self.index.remove(gone)
        due = self._quoted([d for d in due if d[0].order_type == OrderType.LIMIT]) + [
            d for d in due if d[0].order_type != OrderType.LIMIT
        ]
        return self.fire(due, changed_at)

    def _quoted(
        self, due: list[tuple[StoredOrder, Fraction]]
    ) -> list[tuple[StoredOrder, Fraction]]:
        """The limit orders a quote for their whole amount fills at their
        minimum; the others wait on."""
        routes = self._routes([row for row, _ in due])
        return [
            item
            for item in due
            if _quote_key(item[0]) in routes
            and not limit_short(item[0], routes[_quote_key(item[0])])
        ]

    def _routes(
        self, rows: Sequence[StoredOrder], unknown: set[str] | None = None
    ) -> dict[tuple[str, str, int, int], market_pb2.Route]:
        """A route for each order's whole amount, where one can be had now.
        Orders of one pair and amount share a quote; a quote that cannot be
        had now leaves them waiting for the next change. ``unknown`` gathers
        the tokens QuoteService refused as unknown."""
        if not rows:
            return {}
        keys = list(dict.fromkeys(_quote_key(row) for row in rows))
        routes: dict[tuple[str, str, int, int], market_pb2.Route] = {}
        for start in range(0, len(keys), QUOTES_PER_CALL):
            chunk = keys[start : start + QUOTES_PER_CALL]
            requests = [
                quote_service_pb2.GetQuoteRequest(
                    input_token=src,
                    output_token=dst,
                    amount=format_amount(amount, token(src).decimals),
                    slippage_bps=slippage,
                )
                for src, dst, amount, slippage in chunk
            ]
            try:
                results = self.ctx.quotes.BatchGetQuotes(
                    quote_service_pb2.BatchGetQuotesRequest(requests=requests),
                    timeout=RPC_TIMEOUT_SECONDS,
                ).results
            except grpc.RpcError as exc:
                log.warning("triggers: quotes unavailable (%s); orders wait", exc.code().name)
                continue
            for key, result in zip(chunk, results, strict=True):
                if result.WhichOneof("result") == "response":
                    routes[key] = result.response.route
                elif unknown is not None and result.error.field in TOKEN_FIELDS:
                    unknown.add(key[1] if result.error.field == "output_token" else key[0])
        return routes

    async def snipe(self, symbols: set[str] | None = None, changed_at: float | None = None) -> int:
        """Fires the sniper orders waiting for these tokens (None: every
        one) that the chain has launched, whose whole amount a route now buys
        within their max_price; returns how many."""
        if symbols is not None and not symbols:
            return 0
        waiting = self.index.sniped()
        if symbols is not None:
            waiting = {s: ids for s, ids in waiting.items() if s in symbols}
        if any(symbol not in TOKENS for symbol in waiting):
            await launches.refresh(self.market)
        waiting = {s: ids for s, ids in waiting.items() if s in TOKENS}
        if not waiting:
            return 0
        rows = self.ctx.store.get_many([i for ids in waiting.values() for i in ids])
        gone: list[StoredOrder] = []
        due: list[StoredOrder] = []
        now = datetime.now(UTC)
        for symbol, ids in waiting.items():
            self.index.forget_snipers(symbol, [i for i in ids if i not in rows])
            due += _still_waiting(ids, rows, now, gone)
        self.index.remove(gone)
        unknown: set[str] = set()
        routes = self._routes(due, unknown)
        self._quote_again(set(waiting), unknown)
        prices = await read_prices(self.market, {pair_of(row) for row in due})
        fired: list[tuple[StoredOrder, Fraction]] = []
        for row in due:
            route, price = routes.get(_quote_key(row)), prices.get(pair_of(row))
            if route is None or price is None:
                continue  # no route yet (too thin, or no pool): it waits
            out = parse_amount(route.amount_out, token(row.output_token).decimals)
            if sniper_affords(row, out):
                fired.append((row, price))
        return self.fire(fired, changed_at)

    def _quote_again(self, checked: set[str], unknown: set[str]) -> None:
        """Schedules another check of the snipers of each launched token
        QuoteService did not know yet; one it knew when checked is done with."""
        now = time.monotonic()
        for symbol in checked - unknown:
            self.unquoted.pop(symbol, None)
        for symbol in unknown:
            _, left = self.unquoted.get(symbol, (0.0, SNIPE_RETRIES))
            if left > 0:
                self.unquoted[symbol] = (now + SNIPE_RETRY_SECONDS, left - 1)
            else:
                log.warning("triggers: QuoteService does not know %s yet; snipers wait", symbol)
                del self.unquoted[symbol]

    def _unquoted_due(self) -> set[str]:
        now = time.monotonic()
        return {symbol for symbol, (at, _) in self.unquoted.items() if at <= now}

    def fire(self, due: Sequence[tuple[StoredOrder, Fraction]], changed_at: float | None) -> int:
        """OPEN -> ROUTING for each, best price then oldest first, and the queue."""
        if not due:
            return 0
        ordered = sorted(due, key=_priority)
        steps = [
            Transition(
                row.order_id,
                Status.ROUTING,
                Change(reason=_fired_because(row, price), reason_code=Reason.TRIGGERED),
                row.attempt,
            )
            for row, price in ordered
        ]
        rows = [row for row, _ in ordered]
        moved = move_many(self.ctx.store, self.ctx.redis, steps, rows)
        fired = [row for row, after in zip(rows, moved, strict=True) if after is not None]
        if fired:
            # Fired at this price: driven now, not after a worker's linger.
            enqueue_orders(self.ctx.queue, [row.order_id for row in fired], at_once=True)
            metrics.fired(fired, changed_at)
        # Only those fired here: one refused stays until a check finds it
        # gone from OPEN (it may be OPEN again, on a new attempt).
        self.index.remove(fired)
        return len(fired)

    # -- expiry -----------------------------------------------------------------

    def expire(self, now: float | None = None) -> int:
        """OPEN -> EXPIRED for every order whose time came; returns how many.
        An expiry never changes, so the time index says which are due and
        the compare-and-set alone decides: one no longer OPEN (fired,
        cancelled) is refused, and comes back to the index with its expiry
        if it ever is OPEN again."""
        moment = time.time() if now is None else now
        due = self.index.due(moment)
        if not due:
            return 0
        steps = [
            Transition(
                order_id,
                Status.EXPIRED,
                Change(
                    reason=f"expired at {datetime.fromtimestamp(at, UTC).isoformat()}",
                    reason_code=Reason.EXPIRED,
                ),
            )
            for order_id, at in due
        ]
        moved = move_many(self.ctx.store, self.ctx.redis, steps)
        self.index.remove([row for row in moved if row is not None])
        self.index.forget_expiries(
            [order_id for (order_id, _), row in zip(due, moved, strict=True) if row is None]
        )
        return sum(1 for row in moved if row is not None)

    # -- the loop ---------------------------------------------------------------

    async def pool_changes(self, block_ms: int) -> tuple[set[str], float | None]:
        """The pools changed since the last read (waiting up to ``block_ms``),
        and when the first of them changed (unix seconds)."""
        replies: list[
            tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]
        ] = await self.market.xread({POOL_CHANGES: self.stream_id}, count=1000, block=block_ms)  # type: ignore[assignment]
        pools: set[str] = set()
        first: float | None = None
        for _, entries in replies or []:
            for entry_id, fields in entries:
                text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                self.stream_id = text
                at = int(text.split("-", 1)[0]) / 1000
                first = at if first is None else min(first, at)
                pools.update(fields.get(b"pools", b"").decode().split())
                if b"launch" in fields:  # a pool this process may not know yet
                    await launches.refresh(self.market)
        return pools, first

    async def start(self) -> int:
        """Builds the index and fires what the market already meets (and
        expires what is due); returns how many fired."""
        last = await self.market.xrevrange(POOL_CHANGES, count=1)
        if last:
            entry_id = last[0][0]
            self.stream_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        else:
            self.stream_id = "0-0"
        self.build()
        # Expiries first: an order whose time passed while this part was
        # down expires, even if the price crossed it meanwhile.
        self.expire()
        await launches.refresh(self.market)
        fired = await self.check(self.index.pairs())
        fired += await self.snipe()
        return fired

    async def step(self, block_ms: int) -> Round:
        """One round: pool changes, newly OPEN orders, expiries, TWAP slices,
        a page of the reconciler's sweep; the index built again at once when
        its marker is gone (a flushed Redis)."""
        result = Round()
        if not self.index.built():
            self.build()
            result.fired += await self.check(self.index.pairs())
            result.fired += await self.snipe()
        pools, changed_at = await self.pool_changes(block_ms)
        affected = {pair for pair in self.index.pairs() if pools & _pools_of(pair)}
        new = self.newly_open()
        affected |= {pair_of(row) for row in new if OrderType(row.order_type).priced}
        known = all_pools()
        sniped = (
            {row.output_token for row in new if row.order_type == OrderType.SNIPER}
            | {
                symbol
                for pool_id in pools
                if pool_id in known
                for symbol in (known[pool_id].token_a, known[pool_id].token_b)
            }
            | self._unquoted_due()
        )
        result.expired = self.expire()
        result.fired += await self.check(affected, changed_at)
        result.fired += await self.snipe(sniped, changed_at)
        result.sliced = self.slicer.run_due()
        swept = self.sweep_page()
        if swept:  # what the sweep indexed again may be crossed already
            result.fired += await self.check(self.index.pairs())
            result.fired += await self.snipe()
        return result

    async def run(self, stopping: asyncio.Event, poll_seconds: float) -> None:
        while not stopping.is_set():
            try:
                await self.start()
                break
            except (RedisError, OSError, grpc.RpcError) as exc:
                log.warning("triggers: cannot start yet (%s)", exc)
                await asyncio.sleep(1)
        while not stopping.is_set():
            try:
                await self.step(int(poll_seconds * 1000))
            except Exception:  # keep triggering: Redis or the database may be back
                log.exception("triggers round failed")
                await asyncio.sleep(1)


def _fired_because(row: StoredOrder, price: Fraction) -> str:
    if row.order_type == OrderType.SNIPER:
        bound = f", within the max price {row.trigger_price}" if row.trigger_price else ""
        return (
            f"triggered: {row.output_token} has a pool; the pair's price "
            f"{format_price(price)}{bound}"
        )
    return (
        f"triggered: the pair's price {format_price(price)} met the "
        f"{row.order_type} price {format_price(trigger_of(row))}"
    )


def _quote_key(row: StoredOrder) -> tuple[str, str, int, int]:
    return (row.input_token, row.output_token, row.amount_in, row.slippage_bps)


def _pools_of(pair: Pair) -> frozenset[str]:
    from orderengine.market.prices import pools_of

    return pools_of(*pair)


def _priority(item: tuple[StoredOrder, Fraction]) -> tuple[float, datetime]:
    """Best price first: the lowest limit price, the highest stop; then
    oldest (snipers by age alone)."""
    row, _ = item
    if row.order_type == OrderType.SNIPER:
        return (0.0, _aware(row.created_at))
    trigger = float(trigger_of(row))
    return (trigger if row.order_type == OrderType.LIMIT else -trigger, _aware(row.created_at))
