"""The QuoteService servicer."""

from __future__ import annotations

import grpc
from redis.asyncio import Redis

from orderengine.errors import FieldError, abort, abort_invalid
from orderengine.observability.metrics_orders import timed_quote
from orderengine.swaps import parse_swap
from orderengine.v1 import quote_service_pb2, quote_service_pb2_grpc
from router_service.routing import NoRouteError, candidate_pools, route_swap
from router_service.snapshot import PoolReader


class QuoteServicer(quote_service_pb2_grpc.QuoteServiceServicer):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pools = PoolReader(redis)

    @timed_quote
    async def GetQuote(
        self, request: quote_service_pb2.GetQuoteRequest, context: grpc.aio.ServicerContext
    ) -> quote_service_pb2.GetQuoteResponse:
        try:
            swap = parse_swap(request.input_token, request.output_token, request.amount,
                              request.slippage_bps)
        except FieldError as exc:
            await abort_invalid(context, exc)
        reserves = await self.pools.read(p.id for p in candidate_pools(swap))
        try:
            routed = route_swap(swap, reserves)
        except NoRouteError as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc), "NO_ROUTE")
        return quote_service_pb2.GetQuoteResponse(quotes=routed.quotes, route=routed.route)
