"""The QuoteService servicer. GetQuote and BatchGetQuotes are one piece of
code (``quote_all``): GetQuote is a batch of one that aborts with its item's
failure."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction

import grpc
from redis.asyncio import Redis

from orderengine.errors import FieldError, ItemFailure
from orderengine.market.pools import PoolState
from orderengine.market.routes import RouteError
from orderengine.mesh.batches import answer_all, answer_one
from orderengine.observability.metrics_orders import quote_priced
from orderengine.reasons import Reason
from orderengine.swaps import SwapRequest, swap_of
from orderengine.v1 import quote_service_pb2, quote_service_pb2_grpc
from router_service.routing import NoRouteError, candidate_pools, route_swap
from router_service.snapshot import PoolReader

log = logging.getLogger(__name__)

# Requests in one BatchGetQuotes: few enough that one call stays about as
# short as a unary one (each quote is CPU work). A worker's job asks for 16.
MAX_QUOTES_PER_CALL = 64

Answer = quote_service_pb2.GetQuoteResponse | ItemFailure


class QuoteServicer(quote_service_pb2_grpc.QuoteServiceServicer):
    def __init__(self, redis: Redis, max_price_impact_pct: Decimal) -> None:
        self.redis = redis
        self.pools = PoolReader(redis)
        # A route whose price impact is above this, in percent, is refused.
        self.max_price_impact_pct = max_price_impact_pct
        self._most_pct = Fraction(max_price_impact_pct)

    async def GetQuote(
        self, request: quote_service_pb2.GetQuoteRequest, context: grpc.aio.ServicerContext
    ) -> quote_service_pb2.GetQuoteResponse:
        return await answer_one(self.quote_all, request, context)

    async def BatchGetQuotes(
        self,
        request: quote_service_pb2.BatchGetQuotesRequest,
        context: grpc.aio.ServicerContext,
    ) -> quote_service_pb2.BatchGetQuotesResponse:
        return await answer_all(
            self.quote_all,
            request.requests,
            MAX_QUOTES_PER_CALL,
            quote_service_pb2.BatchGetQuotesResponse,
            context,
        )

    async def quote_all(
        self, requests: Sequence[quote_service_pb2.GetQuoteRequest]
    ) -> list[Answer]:
        """Each request's quote, or why it has none (a bad field, no route),
        in order. The pools every quote needs are read in one round trip, so
        all are priced on one snapshot of the market."""
        began = time.perf_counter()
        swaps: list[SwapRequest | ItemFailure] = []
        for request in requests:
            try:
                swaps.append(swap_of(request))
            except FieldError as exc:
                swaps.append(ItemFailure.invalid(exc))
        wanted = [
            pool.id
            for swap in swaps
            if not isinstance(swap, ItemFailure)
            for pool in candidate_pools(swap)
        ]
        reserves = await self.pools.read(wanted) if wanted else {}
        read_seconds = time.perf_counter() - began
        answers: list[Answer] = []
        # On one snapshot requests alike have one answer: each is routed
        # once, and every one of them counts as a quote priced in that time.
        priced: dict[SwapRequest, tuple[Answer, float | None]] = {}
        for swap in swaps:
            if isinstance(swap, ItemFailure):
                answers.append(swap)
                continue
            if swap not in priced:
                priced[swap] = self._quote(swap, reserves)
            answer, seconds = priced[swap]
            if seconds is not None:
                quote_priced(read_seconds + seconds)
            answers.append(answer)
        return answers

    def _quote(
        self, swap: SwapRequest, reserves: Mapping[str, PoolState]
    ) -> tuple[Answer, float | None]:
        """The swap's quote on ``reserves`` and the seconds its routing took,
        or why it has none (and None: a refusal is no quote priced)."""
        routing_began = time.perf_counter()
        try:
            routed = route_swap(swap, reserves)
        except NoRouteError as exc:
            return ItemFailure(grpc.StatusCode.FAILED_PRECONDITION, str(exc), exc.code), None
        except RouteError as exc:  # the programs would revert it (AMOUNT_OVERFLOW)
            failure = ItemFailure(grpc.StatusCode.FAILED_PRECONDITION, f"no route: {exc}", exc.code)
            return failure, None
        except Exception:  # one request's bug is its own: the batch goes on
            log.exception(
                "quote for %s %s -> %s failed",
                swap.amount_in,
                swap.input_token,
                swap.output_token,
            )
            return ItemFailure(grpc.StatusCode.INTERNAL, "the quote failed", "INTERNAL"), None
        seconds = time.perf_counter() - routing_began
        if routed.price_impact.above(self._most_pct):
            return self._too_much_impact(routed.route.price_impact_pct), seconds
        response = quote_service_pb2.GetQuoteResponse(quotes=routed.quotes, route=routed.route)
        return response, seconds

    def _too_much_impact(self, impact_pct: str) -> ItemFailure:
        most = f"{self.max_price_impact_pct:f}"
        error = FieldError(
            "amount",
            f"the route's price impact would be {impact_pct}%, above the most allowed, "
            f"{most}% (MAX_PRICE_IMPACT_PCT); a smaller amount moves the price less",
        )
        return ItemFailure(
            grpc.StatusCode.FAILED_PRECONDITION,
            str(error),
            Reason.PRICE_IMPACT_TOO_HIGH,
            field=error,
            metadata={"price_impact_pct": impact_pct, "max_price_impact_pct": most},
        )
