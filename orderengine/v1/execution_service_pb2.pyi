from orderengine.v1 import item_error_pb2 as _item_error_pb2
from orderengine.v1 import market_pb2 as _market_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Commitment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMITMENT_UNSPECIFIED: _ClassVar[Commitment]
    COMMITMENT_PENDING: _ClassVar[Commitment]
    COMMITMENT_PROCESSED: _ClassVar[Commitment]
    COMMITMENT_CONFIRMED: _ClassVar[Commitment]
    COMMITMENT_FINALIZED: _ClassVar[Commitment]
COMMITMENT_UNSPECIFIED: Commitment
COMMITMENT_PENDING: Commitment
COMMITMENT_PROCESSED: Commitment
COMMITMENT_CONFIRMED: Commitment
COMMITMENT_FINALIZED: Commitment

class SubmitSwapRequest(_message.Message):
    __slots__ = ("attempt_key", "route")
    ATTEMPT_KEY_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    attempt_key: str
    route: _market_pb2.Route
    def __init__(self, attempt_key: _Optional[str] = ..., route: _Optional[_Union[_market_pb2.Route, _Mapping]] = ...) -> None: ...

class SubmitSwapResponse(_message.Message):
    __slots__ = ("signature", "duplicate")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    signature: str
    duplicate: bool
    def __init__(self, signature: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class BatchSubmitSwapsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SubmitSwapRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SubmitSwapRequest, _Mapping]]] = ...) -> None: ...

class BatchSubmitSwapsResponse(_message.Message):
    __slots__ = ("results",)
    class Result(_message.Message):
        __slots__ = ("response", "error")
        RESPONSE_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        response: SubmitSwapResponse
        error: _item_error_pb2.ItemError
        def __init__(self, response: _Optional[_Union[SubmitSwapResponse, _Mapping]] = ..., error: _Optional[_Union[_item_error_pb2.ItemError, _Mapping]] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchSubmitSwapsResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchSubmitSwapsResponse.Result, _Mapping]]] = ...) -> None: ...

class GetSignatureStatusesRequest(_message.Message):
    __slots__ = ("signatures",)
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    signatures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, signatures: _Optional[_Iterable[str]] = ...) -> None: ...

class SignatureStatus(_message.Message):
    __slots__ = ("signature", "found", "commitment", "slot", "error_code", "error", "amount_out")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    signature: str
    found: bool
    commitment: Commitment
    slot: int
    error_code: str
    error: str
    amount_out: str
    def __init__(self, signature: _Optional[str] = ..., found: _Optional[bool] = ..., commitment: _Optional[_Union[Commitment, str]] = ..., slot: _Optional[int] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., amount_out: _Optional[str] = ...) -> None: ...

class GetSignatureStatusesResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[SignatureStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[SignatureStatus, _Mapping]]] = ...) -> None: ...
