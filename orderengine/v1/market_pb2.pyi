from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Venue(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VENUE_UNSPECIFIED: _ClassVar[Venue]
    VENUE_RAYDIUM: _ClassVar[Venue]
    VENUE_METEORA: _ClassVar[Venue]
VENUE_UNSPECIFIED: Venue
VENUE_RAYDIUM: Venue
VENUE_METEORA: Venue

class VenueQuote(_message.Message):
    __slots__ = ("venue", "pool_id", "amount_in", "amount_out", "fee", "price_impact_pct")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    PRICE_IMPACT_PCT_FIELD_NUMBER: _ClassVar[int]
    venue: Venue
    pool_id: str
    amount_in: str
    amount_out: str
    fee: str
    price_impact_pct: str
    def __init__(self, venue: _Optional[_Union[Venue, str]] = ..., pool_id: _Optional[str] = ..., amount_in: _Optional[str] = ..., amount_out: _Optional[str] = ..., fee: _Optional[str] = ..., price_impact_pct: _Optional[str] = ...) -> None: ...

class RouteLeg(_message.Message):
    __slots__ = ("venue", "pool_id", "input_token", "output_token", "amount_in", "amount_out", "fee", "share_bps")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    SHARE_BPS_FIELD_NUMBER: _ClassVar[int]
    venue: Venue
    pool_id: str
    input_token: str
    output_token: str
    amount_in: str
    amount_out: str
    fee: str
    share_bps: int
    def __init__(self, venue: _Optional[_Union[Venue, str]] = ..., pool_id: _Optional[str] = ..., input_token: _Optional[str] = ..., output_token: _Optional[str] = ..., amount_in: _Optional[str] = ..., amount_out: _Optional[str] = ..., fee: _Optional[str] = ..., share_bps: _Optional[int] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("legs", "input_token", "output_token", "amount_in", "amount_out", "min_amount_out", "price_impact_pct")
    LEGS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    MIN_AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    PRICE_IMPACT_PCT_FIELD_NUMBER: _ClassVar[int]
    legs: _containers.RepeatedCompositeFieldContainer[RouteLeg]
    input_token: str
    output_token: str
    amount_in: str
    amount_out: str
    min_amount_out: str
    price_impact_pct: str
    def __init__(self, legs: _Optional[_Iterable[_Union[RouteLeg, _Mapping]]] = ..., input_token: _Optional[str] = ..., output_token: _Optional[str] = ..., amount_in: _Optional[str] = ..., amount_out: _Optional[str] = ..., min_amount_out: _Optional[str] = ..., price_impact_pct: _Optional[str] = ...) -> None: ...
