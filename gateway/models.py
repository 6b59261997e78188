"""The JSON the gateway speaks, and its translation from the protos.

Field names are camelCase, amounts decimal strings, times ISO-8601 UTC and
statuses the engine's names (PENDING ... CONFIRMED). The transaction
signature is ``txHash``, the seed's name for it.

Long on purpose: every body the HTTP API reads or writes is here, so the
OpenAPI document and its translation from the protos are read in one place."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from gateway.amounts import Amount
from orderengine.client.route_figures import PRICE_DIGITS, decimal_text, leg_shares, price
from orderengine.v1 import market_pb2, order_pb2, order_service_pb2, wallet_pb2

UINT32_MAX = 2**32 - 1

TERMINAL = frozenset(
    {
        order_pb2.ORDER_STATUS_CONFIRMED,
        order_pb2.ORDER_STATUS_FAILED,
        order_pb2.ORDER_STATUS_CANCELLED,
        order_pb2.ORDER_STATUS_EXPIRED,
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

    @classmethod
    def copied(cls, message: Message, **converted: Any) -> Self:
        """The model of ``message``: the fields ``converted`` gives as given,
        every other one copied from the message's field of the same name."""
        names = message.DESCRIPTOR.fields_by_name.keys() & cls.model_fields.keys()
        return cls(**{n: getattr(message, n) for n in names - converted.keys()}, **converted)


def status_name(value: int) -> str:
    return order_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")


def venue_name(value: int) -> str:
    return market_pb2.Venue.Name(value).removeprefix("VENUE_").lower()


def iso_time(stamp: Timestamp) -> str:
    """``2026-11-26T11:54:59.071Z``, as JavaScript's Date.toISOString() writes it."""
    moment = stamp.ToDatetime(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- requests -----------------------------------------------------------------


class LimitJSON(CamelModel):
    model_config = ConfigDict(validate_by_name=False)

    min_amount_out: str = Field(
        description="the least the swap may give, in whole output tokens", examples=["1500"]
    )


class TwapJSON(CamelModel):
    model_config = ConfigDict(validate_by_name=False)

    slices: Annotated[StrictInt, Field(ge=0, le=UINT32_MAX)] = Field(
        description="how many equal market swaps (2-1000)", examples=[10]
    )
    interval: str = Field(
        description="the time between two, in seconds as protobuf JSON writes a Duration",
        examples=["30s"],
    )

    @field_validator("interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            Duration().FromJsonString(value)
        except ValueError:
            raise ValueError(
                f"must be seconds such as '30s' or '0.5s', got {value[:32]!r}"
            ) from None
        return value


class StopJSON(CamelModel):
    model_config = ConfigDict(validate_by_name=False)

    trigger_price: str = Field(
        description="output tokens per input token at or below which it swaps", examples=["140"]
    )


class SniperJSON(CamelModel):
    model_config = ConfigDict(validate_by_name=False)

    max_price: str | None = Field(
        None,
        description="only while one output token costs at most this many input tokens; "
        "none: any price",
        examples=["0.05"],
    )


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
    # Waiting orders (docs/api.md, "Order types"): at most one of these.
    limit: LimitJSON | None = Field(
        None, description="a limit order: swap only for at least minAmountOut (take-profit)"
    )
    stop: StopJSON | None = Field(
        None, description="a stop order: swap once the price falls to triggerPrice (stop-loss)"
    )
    twap: TwapJSON | None = Field(
        None, description="a TWAP order: the amount in equal market swaps, one every interval"
    )
    sniper: SniperJSON | None = Field(
        None,
        description="a sniper order: buy outputToken (which may not be launched yet) as soon "
        "as a pool for it has liquidity",
    )
    expire_time: AwareDatetime | None = Field(
        None,
        description="a limit, stop or sniper order expires at this time (ISO 8601 with a zone); "
        "none: it waits until cancelled",
        examples=["2026-12-31T12:00:00Z"],
    )

    @model_validator(mode="after")
    def _one_order_type(self) -> Self:
        kinds = (self.limit, self.stop, self.twap, self.sniper)
        if sum(kind is not None for kind in kinds) > 1:
            raise ValueError("limit, stop, twap and sniper: an order is one of them at most")
        return self

    priority_fee: Amount | None = Field(
        None,
        description="SOL paid on top of the network fee (0.000005 SOL) by each attempt "
        "the chain processes; at most 1",
        examples=["0.0001"],
    )


class AirdropBody(CamelModel):
    """What to fund the caller's wallet with from the chain's faucet."""

    model_config = ConfigDict(validate_by_name=False)

    token: str = Field(description="token symbol", examples=["SOL"])
    amount: Amount
    request_id: str | None = Field(
        None, description="a resend with the same id within a day airdrops nothing more"
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
        return cls.copied(quote, venue=venue_name(quote.venue))


class RouteLegJSON(CamelModel):
    venue: str
    pool_id: str
    input_token: str
    output_token: str
    amount_in: str
    amount_out: str
    fee: str
    share_bps: int = Field(
        description="the share of the input token held at this point of the route that the "
        "leg swaps, as the chain applies it (the last leg on a token takes the rest)"
    )
    share_pct: str = Field(
        description="the leg's share of all the route spends of its input token, in percent; "
        "the legs on one token add up to 100.00",
        examples=["43.00"],
    )

    @classmethod
    def of(cls, leg: market_pb2.RouteLeg, share: Decimal) -> RouteLegJSON:
        return cls.copied(leg, venue=venue_name(leg.venue), share_pct=str(share))


class RouteJSON(CamelModel):
    legs: list[RouteLegJSON]
    input_token: str
    output_token: str
    amount_in: str
    amount_out: str
    min_amount_out: str = Field(description="the least the swap may give before it fails")
    price: str = Field(
        description=f"output tokens one input token gets on this route (amountOut / amountIn), "
        f"to {PRICE_DIGITS} significant digits",
        examples=["139.038"],
    )
    inverse_price: str = Field(
        description="input tokens one output token costs (amountIn / amountOut), "
        f"to {PRICE_DIGITS} significant digits",
        examples=["0.00719227"],
    )
    price_impact_pct: str = Field(
        description="how far the route's output falls short of its legs at spot prices with no "
        "fees, in percent; empty on a route quoted before it was reported",
        examples=["0.2249"],
    )

    @classmethod
    def of(cls, route: market_pb2.Route) -> RouteJSON:
        return cls.copied(
            route,
            legs=[
                RouteLegJSON.of(leg, share)
                for leg, share in zip(route.legs, leg_shares(route), strict=True)
            ],
            price=decimal_text(price(route.amount_in, route.amount_out)),
            inverse_price=decimal_text(price(route.amount_out, route.amount_in)),
        )


class QuoteJSON(CamelModel):
    quotes: list[VenueQuoteJSON] = Field(description="each venue's quote, best first")
    route: RouteJSON
    price: str | None = Field(
        None,
        description="the pair's price now, output tokens per input token (the best path's "
        "mid price): what limit and stop orders are compared to",
    )

    @classmethod
    def of(cls, reply: order_service_pb2.QuoteOrderResponse) -> QuoteJSON:
        return cls(
            quotes=[VenueQuoteJSON.of(q) for q in reply.quotes],
            route=RouteJSON.of(reply.route),
            price=reply.price or None,
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
    order_type: str = Field(
        "market", examples=["limit"], description="market, limit, stop, twap or sniper"
    )
    limit: LimitJSON | None = None
    stop: StopJSON | None = None
    twap: TwapJSON | None = None
    sniper: SniperJSON | None = None
    expire_time: str | None = Field(None, description="a waiting order's good-till time")
    priority_fee: str = Field(
        description="SOL each processed attempt pays on top of the network fee"
    )

    @classmethod
    def of(cls, order: order_pb2.Order) -> OrderJSON:
        kind = order.WhichOneof("order_type")
        return cls.copied(
            order,
            order_type=kind or "market",
            limit=LimitJSON.model_validate({"minAmountOut": order.limit.min_amount_out})
            if kind == "limit"
            else None,
            stop=StopJSON.model_validate({"triggerPrice": order.stop.trigger_price})
            if kind == "stop"
            else None,
            twap=TwapJSON.model_validate(
                {"slices": order.twap.slices, "interval": order.twap.interval.ToJsonString()}
            )
            if kind == "twap"
            else None,
            sniper=SniperJSON.model_validate({"maxPrice": order.sniper.max_price or None})
            if kind == "sniper"
            else None,
            expire_time=iso_time(order.expire_time) if order.HasField("expire_time") else None,
            status=status_name(order.status),
            client_order_id=order.client_order_id or None,
            create_time=iso_time(order.create_time),
            update_time=iso_time(order.update_time),
            route=RouteJSON.of(order.route) if order.HasField("route") else None,
            tx_hash=order.signature or None,
            amount_out=order.amount_out or None,
            failure_reason=order.failure_reason or None,
            priority_fee=order.priority_fee or "0",
        )


class BalanceJSON(CamelModel):
    token: str = Field(examples=["SOL"])
    amount: str = Field(description="whole tokens, a decimal string", examples=["12.5"])
    decimals: int = Field(description="the token's decimals", examples=[9])

    @classmethod
    def of(cls, balance: wallet_pb2.TokenBalance) -> BalanceJSON:
        return cls(token=balance.token, amount=balance.amount, decimals=balance.decimals)


class BalancesJSON(CamelModel):
    balances: list[BalanceJSON] = Field(description="every token (or those asked), SOL first")


class AirdropReply(CamelModel):
    balance: BalanceJSON = Field(description="what the wallet holds of the token now")
    duplicate: bool = Field(description="requestId named an airdrop given before")


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
        return cls.copied(
            event,
            status=status_name(event.status),
            timestamp=iso_time(event.event_time),
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
