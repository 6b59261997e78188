"""The JSON the gateway speaks, and its translation from the protos.

Field names are camelCase, amounts decimal strings, times ISO-8601 UTC and
statuses the engine's names (PENDING ... CONFIRMED). The transaction
signature is ``txHash``, the seed's name for it."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic.alias_generators import to_camel

from gateway.amounts import Amount
from orderengine.v1 import market_pb2, order_pb2, order_service_pb2

UINT32_MAX = 2**32 - 1

TERMINAL = frozenset(
    {
        order_pb2.ORDER_STATUS_CONFIRMED,
        order_pb2.ORDER_STATUS_FAILED,
        order_pb2.ORDER_STATUS_CANCELLED,
    }
)


class CamelModel(BaseModel):
    # Built by Python name, written in camelCase.
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


def status_name(value: int) -> str:
    return order_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")


def venue_name(value: int) -> str:
    return market_pb2.Venue.Name(value).removeprefix("VENUE_").lower()


def iso_time(stamp: Timestamp) -> str:
    """``2026-11-26T11:54:59.071Z``, as JavaScript's Date.toISOString() writes it."""
    moment = stamp.ToDatetime(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- requests -----------------------------------------------------------------


class SubmitOrderBody(CamelModel):
    """The seed's body, plus the engine's optional fields. Unknown fields are
    ignored, as the seed did."""

    # Clients write camelCase only.
    model_config = ConfigDict(validate_by_name=False)

    input_token: str = Field(description="token symbol sold", examples=["SOL"])
    output_token: str = Field(description="token symbol bought", examples=["USDC"])
    amount: Amount
    slippage_bps: Annotated[StrictInt, Field(ge=0, le=UINT32_MAX)] | None = Field(
        None,
        description="most the output may fall below the quote, 1-5000 basis points; default 50",
        examples=[50],
    )
    client_order_id: str | None = Field(
        None, description="a resubmission with the same id returns the first order"
    )


# -- responses ----------------------------------------------------------------


class SubmitOrderReply(CamelModel):
    message: str = Field(examples=["Order queued successfully"])
    order_id: str


class VenueQuoteJSON(CamelModel):
    venue: str = Field(examples=["meteora"])
    pool_id: str
    amount_in: str
    amount_out: str
    fee: str = Field(description="charged by the pool, in the input token")
    price_impact_pct: str

    @classmethod
    def of(cls, quote: market_pb2.VenueQuote) -> VenueQuoteJSON:
        return cls(
            venue=venue_name(quote.venue),
            pool_id=quote.pool_id,
            amount_in=quote.amount_in,
            amount_out=quote.amount_out,
            fee=quote.fee,
            price_impact_pct=quote.price_impact_pct,
        )


class RouteLegJSON(CamelModel):
    venue: str
    pool_id: str
    input_token: str
    output_token: str
    amount_in: str
    amount_out: str
    fee: str
    share_bps: int

    @classmethod
    def of(cls, leg: market_pb2.RouteLeg) -> RouteLegJSON:
        return cls(
            venue=venue_name(leg.venue),
            pool_id=leg.pool_id,
            input_token=leg.input_token,
            output_token=leg.output_token,
            amount_in=leg.amount_in,
            amount_out=leg.amount_out,
            fee=leg.fee,
            share_bps=leg.share_bps,
        )


class RouteJSON(CamelModel):
    legs: list[RouteLegJSON]
    input_token: str
    output_token: str
    amount_in: str
    amount_out: str
    min_amount_out: str = Field(description="the least the swap may give before it fails")
    price_impact_pct: str = Field(
        description="how far the route's output falls short of its legs at spot prices with no "
        "fees, in percent; empty on a route quoted before it was reported",
        examples=["0.2249"],
    )

    @classmethod
    def of(cls, route: market_pb2.Route) -> RouteJSON:
        return cls(
            legs=[RouteLegJSON.of(leg) for leg in route.legs],
            input_token=route.input_token,
            output_token=route.output_token,
            amount_in=route.amount_in,
            amount_out=route.amount_out,
            min_amount_out=route.min_amount_out,
            price_impact_pct=route.price_impact_pct,
        )


class QuoteJSON(CamelModel):
    quotes: list[VenueQuoteJSON] = Field(description="each venue's quote, best first")
    route: RouteJSON

    @classmethod
    def of(cls, reply: order_service_pb2.QuoteOrderResponse) -> QuoteJSON:
        return cls(
            quotes=[VenueQuoteJSON.of(q) for q in reply.quotes], route=RouteJSON.of(reply.route)
        )


class OrderJSON(CamelModel):
    order_id: str
    status: str = Field(examples=["CONFIRMED"])
    input_token: str
    output_token: str
    amount: str
    slippage_bps: int
    client_order_id: str | None
    create_time: str
    update_time: str
    attempt: int
    route: RouteJSON | None = Field(description="the current attempt's route, once ROUTED")
    tx_hash: str | None = Field(description="the transaction signature, once SUBMITTED")
    amount_out: str | None = Field(description="what the swap gave, once CONFIRMED")
    failure_reason: str | None
    last_sequence: int

    @classmethod
    def of(cls, order: order_pb2.Order) -> OrderJSON:
        return cls(
            order_id=order.order_id,
            status=status_name(order.status),
            input_token=order.input_token,
            output_token=order.output_token,
            amount=order.amount,
            slippage_bps=order.slippage_bps,
            client_order_id=order.client_order_id or None,
            create_time=iso_time(order.create_time),
            update_time=iso_time(order.update_time),
            attempt=order.attempt,
            route=RouteJSON.of(order.route) if order.HasField("route") else None,
            tx_hash=order.signature or None,
            amount_out=order.amount_out or None,
            failure_reason=order.failure_reason or None,
            last_sequence=order.last_sequence,
        )


class OrderListJSON(CamelModel):
    orders: list[OrderJSON] = Field(description="newest first")
    next_page_token: str | None = Field(
        description="pass as pageToken for the next page; null on the last page"
    )


class OrderUpdate(CamelModel):
    """One WebSocket message: the seed's envelope plus what the step produced."""

    type: Literal["ORDER_UPDATE"] = "ORDER_UPDATE"
    order_id: str
    status: str
    timestamp: str
    sequence: int
    attempt: int
    quotes: list[VenueQuoteJSON] | None = None
    route: RouteJSON | None = None
    tx_hash: str | None = None
    amount_out: str | None = None
    reason: str | None = None
    reason_code: str | None = None

    @classmethod
    def of(cls, event: order_pb2.OrderEvent) -> OrderUpdate:
        return cls(
            order_id=event.order_id,
            status=status_name(event.status),
            timestamp=iso_time(event.event_time),
            sequence=event.sequence,
            attempt=event.attempt,
            quotes=[VenueQuoteJSON.of(q) for q in event.quotes] or None,
            route=RouteJSON.of(event.route) if event.HasField("route") else None,
            tx_hash=event.signature or None,
            amount_out=event.amount_out or None,
            reason=event.reason or None,
            reason_code=event.reason_code or None,
        )

    def to_json(self) -> str:
        # Only what this step produced: absent, not null.
        return self.model_dump_json(exclude_none=True)
