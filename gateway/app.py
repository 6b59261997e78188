"""The FastAPI app: the HTTP API, the WebSocket, /healthz, the OpenAPI
document (/openapi.json, /docs) and the page at /."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from gateway import errors, health, orders, watch
from gateway.upstream import Upstream
from orderengine.settings import Settings

STATIC = Path(__file__).parent / "static"
# How long a watch waits for a stopped OrderService to come back.
RESUME_SECONDS = 10.0

DESCRIPTION = """\
HTTP and WebSocket for the order execution engine: every call is one
`orderengine.v1.OrderService` gRPC call. Amounts are decimal strings in whole
tokens (a JSON number is read exactly, never as a float), times ISO-8601 UTC.
Every call needs an API key: `Authorization: Bearer <key>` (401 without one).

Watch an order live on `ws://HOST/ws/orders/{orderId}` (`?after=N` resumes):
each message is `{"type": "ORDER_UPDATE", "orderId", "status", "timestamp",
"sequence", "attempt", ...}` with what the step produced (`quotes` and `route`
on ROUTED, `txHash` on SUBMITTED and CONFIRMED, `amountOut` on CONFIRMED,
`reason` on FAILED); the socket closes with 1000 after the terminal event,
4404 for an unknown order, 4400 for bad input, 4401 without a good key. The
socket takes the key as the `Authorization` header, as the subprotocol
`bearer.<key>`, or as its first message `{"authorization": "Bearer <key>"}`.
"""


def create_app(order_service_address: str | None = None, *,
               resume_seconds: float = RESUME_SECONDS) -> FastAPI:
    """The gateway in front of OrderService at ``order_service_address``
    (default: ORDER_SERVICE_ADDRESS)."""
    address = order_service_address or Settings().order_service_address

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstream = Upstream(address)
        try:
            yield
        finally:
            await app.state.upstream.close()

    app = FastAPI(title="Order engine gateway", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan, strict_content_type=False)
    app.state.resume_seconds = resume_seconds
    errors.install(app)
    app.include_router(orders.router)
    app.include_router(watch.router)
    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _document_bad_input_as_400(app)
    return app


def _document_bad_input_as_400(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route with parameters; this gateway
    answers bad input with 400 and the error body, so the document says so."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
