from orderengine.v1 import item_error_pb2 as _item_error_pb2
from orderengine.v1 import market_pb2 as _market_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetQuoteRequest(_message.Message):
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

class GetQuoteResponse(_message.Message):
    __slots__ = ("quotes", "route")
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[_market_pb2.VenueQuote]
    route: _market_pb2.Route
    def __init__(self, quotes: _Optional[_Iterable[_Union[_market_pb2.VenueQuote, _Mapping]]] = ..., route: _Optional[_Union[_market_pb2.Route, _Mapping]] = ...) -> None: ...

class BatchGetQuotesRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[GetQuoteRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[GetQuoteRequest, _Mapping]]] = ...) -> None: ...

class BatchGetQuotesResponse(_message.Message):
    __slots__ = ("results",)
    class Result(_message.Message):
        __slots__ = ("response", "error")
        RESPONSE_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        response: GetQuoteResponse
        error: _item_error_pb2.ItemError
        def __init__(self, response: _Optional[_Union[GetQuoteResponse, _Mapping]] = ..., error: _Optional[_Union[_item_error_pb2.ItemError, _Mapping]] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchGetQuotesResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchGetQuotesResponse.Result, _Mapping]]] = ...) -> None: ...
