from orderengine.v1 import item_error_pb2 as _item_error_pb2
from orderengine.v1 import market_pb2 as _market_pb2
from orderengine.v1 import wallet_pb2 as _wallet_pb2
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
    __slots__ = ("attempt_key", "route", "owner", "priority_fee")
    ATTEMPT_KEY_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FEE_FIELD_NUMBER: _ClassVar[int]
    attempt_key: str
    route: _market_pb2.Route
    owner: str
    priority_fee: str
    def __init__(self, attempt_key: _Optional[str] = ..., route: _Optional[_Union[_market_pb2.Route, _Mapping]] = ..., owner: _Optional[str] = ..., priority_fee: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("signature", "found", "commitment", "slot", "error_code", "error", "amount_out", "fee")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    signature: str
    found: bool
    commitment: Commitment
    slot: int
    error_code: str
    error: str
    amount_out: str
    fee: str
    def __init__(self, signature: _Optional[str] = ..., found: _Optional[bool] = ..., commitment: _Optional[_Union[Commitment, str]] = ..., slot: _Optional[int] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., amount_out: _Optional[str] = ..., fee: _Optional[str] = ...) -> None: ...

class GetSignatureStatusesResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[SignatureStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[SignatureStatus, _Mapping]]] = ...) -> None: ...

class GetWalletsRequest(_message.Message):
    __slots__ = ("owners",)
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    owners: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, owners: _Optional[_Iterable[str]] = ...) -> None: ...

class Wallet(_message.Message):
    __slots__ = ("owner", "balances")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    owner: str
    balances: _containers.RepeatedCompositeFieldContainer[_wallet_pb2.TokenBalance]
    def __init__(self, owner: _Optional[str] = ..., balances: _Optional[_Iterable[_Union[_wallet_pb2.TokenBalance, _Mapping]]] = ...) -> None: ...

class GetWalletsResponse(_message.Message):
    __slots__ = ("wallets",)
    WALLETS_FIELD_NUMBER: _ClassVar[int]
    wallets: _containers.RepeatedCompositeFieldContainer[Wallet]
    def __init__(self, wallets: _Optional[_Iterable[_Union[Wallet, _Mapping]]] = ...) -> None: ...

class FundWalletRequest(_message.Message):
    __slots__ = ("owner", "token", "amount", "request_id")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    owner: str
    token: str
    amount: str
    request_id: str
    def __init__(self, owner: _Optional[str] = ..., token: _Optional[str] = ..., amount: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class FundWalletResponse(_message.Message):
    __slots__ = ("balance", "duplicate")
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    balance: _wallet_pb2.TokenBalance
    duplicate: bool
    def __init__(self, balance: _Optional[_Union[_wallet_pb2.TokenBalance, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...
