"""Errors as gRPC statuses (AIP-193): a code, a message that names the
field, and machine-readable details (ErrorInfo, BadRequest) beside it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from orderengine.v1 import item_error_pb2

DOMAIN = "orderengine.v1"
# Where gRPC carries a google.rpc.Status with its details.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class FieldError(ValueError):
    """Bad input in one field of a request."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def status(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    field: FieldError | None = None,
    metadata: dict[str, str] | None = None,
    retry_after: float | None = None,
) -> grpc.Status:
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {}))
    ]
    if retry_after is not None:
        delay = error_details_pb2.RetryInfo()
        delay.retry_delay.FromMilliseconds(int(retry_after * 1000))
        details.append(_pack(delay))
    if field is not None:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=field.field, description=field.description
                        )
                    ]
                )
            )
        )
    return rpc_status.to_status(
        status_pb2.Status(
            code=getattr(code_pb2, code.name),
            message=message,
            details=details,
        )
    )


async def abort_invalid(context: grpc.aio.ServicerContext, error: FieldError) -> NoReturn:
    await ItemFailure.invalid(error).abort(context)


async def abort_as(context: grpc.aio.ServicerContext, error: grpc.aio.AioRpcError) -> NoReturn:
    """Aborts with a peer's failure as it came: its code, its message and
    its google.rpc details (ErrorInfo, BadRequest...), for a call whose
    answer is the peer's own."""
    metadata = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    for key, value in metadata:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            await context.abort_with_status(  # type: ignore[attr-defined]
                rpc_status.to_status(status_pb2.Status.FromString(value))
            )
    await context.abort(error.code(), error.details() or "")
    raise AssertionError("abort returns only by raising")


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str] | None = None,
    retry_after: float | None = None,
) -> NoReturn:
    await ItemFailure(code, message, reason, None, metadata, retry_after).abort(context)


@dataclass(frozen=True)
class ItemFailure:
    """Why one request (or one item of a batch) gets no answer: what the
    unary call aborts with, and, the same, what a batch answers for the item
    (an ItemError), so that both come from one piece of code. A call a guard
    refuses before its handler runs is answered by one too."""

    code: grpc.StatusCode
    message: str
    reason: str
    field: FieldError | None = None
    # ErrorInfo.metadata, and RetryInfo's delay in seconds (None: none).
    metadata: dict[str, str] | None = None
    retry_after: float | None = None

    @classmethod
    def invalid(cls, error: FieldError) -> ItemFailure:
        """Bad input in one field: as abort_invalid answers it."""
        return cls(grpc.StatusCode.INVALID_ARGUMENT, str(error), "INVALID_FIELD", error)

    def item_error(self) -> item_error_pb2.ItemError:
        error = item_error_pb2.ItemError(
            code=getattr(code_pb2, self.code.name),
            message=self.message,
            reason=self.reason,
            field=self.field.field if self.field is not None else "",
            metadata=self.metadata,
        )
        if self.retry_after is not None:
            error.retry_delay.FromMilliseconds(int(self.retry_after * 1000))
        return error

    async def abort(self, context: grpc.aio.ServicerContext) -> NoReturn:
        await context.abort_with_status(  # type: ignore[attr-defined]
            status(
                self.code,
                self.message,
                self.reason,
                field=self.field,
                metadata=self.metadata,
                retry_after=self.retry_after,
            )
        )
        raise AssertionError("abort_with_status returns only by raising")
