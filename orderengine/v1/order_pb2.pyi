import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from orderengine.v1 import market_pb2 as _market_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING: _ClassVar[OrderStatus]
    ORDER_STATUS_ROUTING: _ClassVar[OrderStatus]
    ORDER_STATUS_ROUTED: _ClassVar[OrderStatus]
    ORDER_STATUS_SUBMITTED: _ClassVar[OrderStatus]
    ORDER_STATUS_CONFIRMED: _ClassVar[OrderStatus]
    ORDER_STATUS_FAILED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELLED: _ClassVar[OrderStatus]
    ORDER_STATUS_OPEN: _ClassVar[OrderStatus]
    ORDER_STATUS_EXPIRED: _ClassVar[OrderStatus]
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING: OrderStatus
ORDER_STATUS_ROUTING: OrderStatus
ORDER_STATUS_ROUTED: OrderStatus
ORDER_STATUS_SUBMITTED: OrderStatus
ORDER_STATUS_CONFIRMED: OrderStatus
ORDER_STATUS_FAILED: OrderStatus
ORDER_STATUS_CANCELLED: OrderStatus
ORDER_STATUS_OPEN: OrderStatus
ORDER_STATUS_EXPIRED: OrderStatus

class MarketOrder(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LimitOrder(_message.Message):
    __slots__ = ("min_amount_out",)
    MIN_AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    min_amount_out: str
    def __init__(self, min_amount_out: _Optional[str] = ...) -> None: ...

class StopOrder(_message.Message):
    __slots__ = ("trigger_price",)
    TRIGGER_PRICE_FIELD_NUMBER: _ClassVar[int]
    trigger_price: str
    def __init__(self, trigger_price: _Optional[str] = ...) -> None: ...

class SniperOrder(_message.Message):
    __slots__ = ("max_price",)
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    max_price: str
    def __init__(self, max_price: _Optional[str] = ...) -> None: ...

class TwapOrder(_message.Message):
    __slots__ = ("slices", "interval")
    SLICES_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    slices: int
    interval: _duration_pb2.Duration
    def __init__(self, slices: _Optional[int] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "status", "input_token", "output_token", "amount", "slippage_bps", "client_order_id", "create_time", "update_time", "attempt", "route", "signature", "amount_out", "failure_reason", "last_sequence", "priority_fee", "market", "limit", "stop", "sniper", "twap", "expire_time")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FEE_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SNIPER_FIELD_NUMBER: _ClassVar[int]
    TWAP_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: OrderStatus
    input_token: str
    output_token: str
    amount: str
    slippage_bps: int
    client_order_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    attempt: int
    route: _market_pb2.Route
    signature: str
    amount_out: str
    failure_reason: str
    last_sequence: int
    priority_fee: str
    market: MarketOrder
    limit: LimitOrder
    stop: StopOrder
    sniper: SniperOrder
    twap: TwapOrder
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., input_token: _Optional[str] = ..., output_token: _Optional[str] = ..., amount: _Optional[str] = ..., slippage_bps: _Optional[int] = ..., client_order_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., route: _Optional[_Union[_market_pb2.Route, _Mapping]] = ..., signature: _Optional[str] = ..., amount_out: _Optional[str] = ..., failure_reason: _Optional[str] = ..., last_sequence: _Optional[int] = ..., priority_fee: _Optional[str] = ..., market: _Optional[_Union[MarketOrder, _Mapping]] = ..., limit: _Optional[_Union[LimitOrder, _Mapping]] = ..., stop: _Optional[_Union[StopOrder, _Mapping]] = ..., sniper: _Optional[_Union[SniperOrder, _Mapping]] = ..., twap: _Optional[_Union[TwapOrder, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("order_id", "sequence", "status", "event_time", "attempt", "quotes", "route", "signature", "amount_out", "reason", "reason_code")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    sequence: int
    status: OrderStatus
    event_time: _timestamp_pb2.Timestamp
    attempt: int
    quotes: _containers.RepeatedCompositeFieldContainer[_market_pb2.VenueQuote]
    route: _market_pb2.Route
    signature: str
    amount_out: str
    reason: str
    reason_code: str
    def __init__(self, order_id: _Optional[str] = ..., sequence: _Optional[int] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., quotes: _Optional[_Iterable[_Union[_market_pb2.VenueQuote, _Mapping]]] = ..., route: _Optional[_Union[_market_pb2.Route, _Mapping]] = ..., signature: _Optional[str] = ..., amount_out: _Optional[str] = ..., reason: _Optional[str] = ..., reason_code: _Optional[str] = ...) -> None: ...

class OrderEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[OrderEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[OrderEvent, _Mapping]]] = ...) -> None: ...
