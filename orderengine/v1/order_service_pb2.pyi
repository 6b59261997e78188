from orderengine.v1 import item_error_pb2 as _item_error_pb2
from orderengine.v1 import market_pb2 as _market_pb2
from orderengine.v1 import order_pb2 as _order_pb2
from orderengine.v1 import wallet_pb2 as _wallet_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitOrderRequest(_message.Message):
    __slots__ = ("input_token", "output_token", "amount", "slippage_bps", "client_order_id", "priority_fee")
    INPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FEE_FIELD_NUMBER: _ClassVar[int]
    input_token: str
    output_token: str
    amount: str
    slippage_bps: int
    client_order_id: str
    priority_fee: str
    def __init__(self, input_token: _Optional[str] = ..., output_token: _Optional[str] = ..., amount: _Optional[str] = ..., slippage_bps: _Optional[int] = ..., client_order_id: _Optional[str] = ..., priority_fee: _Optional[str] = ...) -> None: ...

class SubmitOrderResponse(_message.Message):
    __slots__ = ("order", "already_exists")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTS_FIELD_NUMBER: _ClassVar[int]
    order: _order_pb2.Order
    already_exists: bool
    def __init__(self, order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ..., already_exists: _Optional[bool] = ...) -> None: ...

class BatchSubmitOrdersRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SubmitOrderRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SubmitOrderRequest, _Mapping]]] = ...) -> None: ...

class BatchSubmitOrdersResponse(_message.Message):
    __slots__ = ("results",)
    class Result(_message.Message):
        __slots__ = ("response", "error")
        RESPONSE_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        response: SubmitOrderResponse
        error: _item_error_pb2.ItemError
        def __init__(self, response: _Optional[_Union[SubmitOrderResponse, _Mapping]] = ..., error: _Optional[_Union[_item_error_pb2.ItemError, _Mapping]] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchSubmitOrdersResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchSubmitOrdersResponse.Result, _Mapping]]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_order_pb2.Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[_order_pb2.Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class QuoteOrderRequest(_message.Message):
    __slots__ = ("input_token", "output_token", "amount", "slippage_bps")
    INPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    input_token: str
    output_token: str
    amount: str
    slippage_bps: int
    def __init__(self, input_token: _Optional[str] = ..., output_token: _Optional[str] = ..., amount: _Optional[str] = ..., slippage_bps: _Optional[int] = ...) -> None: ...

class QuoteOrderResponse(_message.Message):
    __slots__ = ("quotes", "route")
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[_market_pb2.VenueQuote]
    route: _market_pb2.Route
    def __init__(self, quotes: _Optional[_Iterable[_Union[_market_pb2.VenueQuote, _Mapping]]] = ..., route: _Optional[_Union[_market_pb2.Route, _Mapping]] = ...) -> None: ...

class WatchOrderRequest(_message.Message):
    __slots__ = ("order_id", "after_sequence")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    after_sequence: int
    def __init__(self, order_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class GetBalancesRequest(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class GetBalancesResponse(_message.Message):
    __slots__ = ("balances",)
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[_wallet_pb2.TokenBalance]
    def __init__(self, balances: _Optional[_Iterable[_Union[_wallet_pb2.TokenBalance, _Mapping]]] = ...) -> None: ...

class RequestAirdropRequest(_message.Message):
    __slots__ = ("token", "amount", "request_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    amount: str
    request_id: str
    def __init__(self, token: _Optional[str] = ..., amount: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RequestAirdropResponse(_message.Message):
    __slots__ = ("balance", "duplicate")
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    balance: _wallet_pb2.TokenBalance
    duplicate: bool
    def __init__(self, balance: _Optional[_Union[_wallet_pb2.TokenBalance, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...
