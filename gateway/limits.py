"""What the gateway takes from one client before reading it: a request body
of at most MAX_BODY_BYTES (an order is ~150 bytes), a WebSocket message of
at most MAX_WEBSOCKET_MESSAGE_BYTES (the only one read is the key). A
larger body is 413 with the error body, refused by its Content-Length
before anything runs, or, when it comes in chunks, as soon as it has grown
past the limit: never buffered whole."""

from __future__ import annotations

from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_response

MAX_BODY_BYTES = 64 * 1024
MAX_WEBSOCKET_MESSAGE_BYTES = 16 * 1024
TOO_LARGE = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def _message(limit: int) -> str:
    return f"body: a request body may have at most {limit} bytes"


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI lets an HTTPException through while
    reading the body, and the gateway's handler answers it with the error body."""

    def __init__(self, limit: int) -> None:
        super().__init__(TOO_LARGE, _message(limit))


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(TOO_LARGE, TOO_LARGE.name, _message(self.max_bytes))
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)
