from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class TokenBalance(_message.Message):
    __slots__ = ("token", "amount", "decimals")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    token: str
    amount: str
    decimals: int
    def __init__(self, token: _Optional[str] = ..., amount: _Optional[str] = ..., decimals: _Optional[int] = ...) -> None: ...
