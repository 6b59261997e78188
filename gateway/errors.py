"""Errors as HTTP statuses with one JSON body everywhere:
``{"error": {"code", "message", "field", "reason"}}``.

gRPC codes keep their names in ``code`` and their message unchanged; the
field comes from the google.rpc.BadRequest detail, in the JSON's camelCase.
Bad input of any kind, whether FastAPI or the engine finds it, is a 400."""

from __future__ import annotations

import math
from collections.abc import Iterable
from http import HTTPStatus
from typing import cast

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.rpc import error_details_pb2, status_pb2
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}
# Anything else (INTERNAL, UNKNOWN, UNIMPLEMENTED, ...) is the upstream's fault.
BAD_GATEWAY = 502
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# OrderService tells a caller without a key which gRPC metadata to send; an
# HTTP caller is told of the header the gateway reads it from (gateway/upstream.py).
MISSING_KEY_REASON = "API_KEY_MISSING"
MISSING_KEY_MESSAGE = (
    "missing API key: send the header 'Authorization: Bearer <key>' "
    "(orderengine keys create NAME makes one)"
)
# What every 401 names, as HTTP asks (RFC 9110, 15.5.2): how to authenticate.
WWW_AUTHENTICATE = 'Bearer realm="orderengine"'


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    reason: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field, reason=reason))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def json_path(field: str) -> str:
    """``order.input_token`` -> ``order.inputToken``: proto names as the JSON has them."""
    return ".".join(to_camel(part) for part in field.split("."))


class RpcFailure:
    """What a failed call says: its code, message and google.rpc details."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.code = error.code()
        self.message = error.details() or self.code.name
        self.field: str | None = None
        self.reason: str | None = None
        self.retry_after: int | None = None
        # grpc_status.rpc_status.from_call takes only sync calls; the aio
        # error carries the same status in its trailing metadata.
        metadata = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
        for key, value in metadata:
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                self._read_details(status_pb2.Status.FromString(value))
        if self.code is grpc.StatusCode.UNAUTHENTICATED and self.reason == MISSING_KEY_REASON:
            self.message = MISSING_KEY_MESSAGE

    def _read_details(self, status: status_pb2.Status) -> None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations and self.field is None:
                    self.field = json_path(bad.field_violations[0].field)
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                self.reason = info.reason or None
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
                self.retry_after = max(1, math.ceil(delay))

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, BAD_GATEWAY)

    def response(self) -> JSONResponse:
        headers = {}
        if self.code is grpc.StatusCode.RESOURCE_EXHAUSTED and self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.code is grpc.StatusCode.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        return error_response(
            self.http_status, self.code.name, self.message, self.field, self.reason, headers
        )


async def rpc_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    return RpcFailure(exc).response()


def _field(loc: tuple[int | str, ...]) -> str:
    """FastAPI's error location as the name a client sent: ("body", "amount")
    -> "amount", ("query", "pageSize") -> "pageSize", ("body",) -> "body"."""
    names = [str(part) for part in loc[1:] if isinstance(part, str)]
    return ".".join(names) if names else str(loc[0])


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = _field(tuple(first.get("loc", ("body",))))
    message = str(first.get("msg", "invalid"))
    if first.get("type") == "json_invalid":
        field, message = "body", f"not valid JSON: {first.get('ctx', {}).get('error', '')}"
    elif first.get("type") == "missing" and field == "body":
        message = 'a JSON object is required, e.g. {"inputToken": "SOL", ...}'
    elif first.get("type") in ("model_type", "model_attributes_type", "dict_type"):
        message = "must be a JSON object (Content-Type: application/json)"
    return error_response(400, "INVALID_ARGUMENT", f"{field}: {message}", field, "INVALID_FIELD")


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTPStatus(exc.status_code).name
    return error_response(
        exc.status_code, code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(grpc.aio.AioRpcError, rpc_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
