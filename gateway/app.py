"""The FastAPI app: the HTTP API, the WebSocket, /healthz, the OpenAPI
document (/openapi.json, /docs, /redoc) and the page at /."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import docs, errors, health, orders, wallet, watch
from gateway.limits import BodySizeLimit
from gateway.submit import SubmitFastPath
from gateway.upstream import Upstream
from orderengine.client.version import VERSION
from orderengine.observability.http_requests import ObservedRequests
from orderengine.observability.metrics import exposition
from orderengine.settings import Settings

STATIC = Path(__file__).parent / "static"
# How long a watch waits for a stopped OrderService to come back.
RESUME_SECONDS = 10.0

API_PREFIX = "/api/"
API_KEY_SCHEME = "ApiKey"
API_KEY_SECURITY = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "oe_…",
    "description": "an API key (`orderengine keys create NAME`), sent as "
    "`Authorization: Bearer <key>`; without one every /api call is a 401",
}
# Statuses any /api call may answer, in the error body, beside those each
# route declares (gateway/orders.py): limits, not the route's own doing.
EVERY_CALL_MAY_FAIL = {
    "429": "too many requests (RESOURCE_EXHAUSTED); `Retry-After` says when to try again"
}
BODY_MAY_FAIL = {"413": "the request body is too large"}

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


class GatewayApp(FastAPI):
    """FastAPI with only the middleware the gateway uses: its exception
    telemetry (the engine traces and logs every request itself, in
    ObservedRequests) and its body limit (BodySizeLimit's is the gateway's)
    would cost every request a layer for nothing."""

    def build_middleware_stack(self) -> ASGIApp:
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        middleware = [
            Middleware(ServerErrorMiddleware, handler=error_handler, debug=self.debug),
            *self.user_middleware,
            Middleware(ExceptionMiddleware, handlers=handlers, debug=self.debug),
            # FastAPI's routes need it (they close request files with it).
            Middleware(AsyncExitStackMiddleware),
        ]
        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        # FastAPI's own telemetry check, per request, skipped (see above).
        if self.root_path:
            scope["root_path"] = self.root_path
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        scope["app"] = self
        await self.middleware_stack(scope, receive, send)


def create_app(
    order_service_address: str | None = None, *, resume_seconds: float = RESUME_SECONDS
) -> FastAPI:
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

    app = GatewayApp(
        title="Order engine gateway",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        strict_content_type=False,
        # Served from the package instead (gateway/docs.py): FastAPI's load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.resume_seconds = resume_seconds
    errors.install(app)
    # Innermost: the ordinary submit is answered before FastAPI's routing.
    app.add_middleware(
        SubmitFastPath,
        route=next(
            route
            for route in orders.router.routes
            if isinstance(route, APIRoute) and route.endpoint is orders.submit_order
        ),
    )
    app.add_middleware(BodySizeLimit)
    # Outermost: every answer carries its X-Request-Id and is logged.
    app.add_middleware(ObservedRequests)
    app.include_router(orders.router)
    app.include_router(wallet.router)
    app.include_router(watch.router)
    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # Prometheus scrapes the gateway here, on its own port (docs/operations.md, "Metrics").
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    docs.install(app)
    _finish_document(app)
    return app


def _finish_document(app: FastAPI) -> None:
    """What FastAPI cannot say by itself: bad input is a 400 (FastAPI documents
    a 422 for every route with parameters), every /api call needs the API key
    (an HTTP bearer scheme, so clients and schemathesis know how to send it)
    and may meet the limits every call has."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            components["securitySchemes"] = {API_KEY_SCHEME: API_KEY_SECURITY}
            for path, methods in schema.get("paths", {}).items():
                for operation in methods.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    if not path.startswith(API_PREFIX):
                        operation["security"] = []  # /healthz: open, as the page
                        continue
                    operation["security"] = [{API_KEY_SCHEME: []}]
                    limits = {
                        **EVERY_CALL_MAY_FAIL,
                        **(BODY_MAY_FAIL if "requestBody" in operation else {}),
                    }
                    for status, description in limits.items():
                        responses.setdefault(status, _error_response(description))
            _link_submit_to_its_order(schema.get("paths", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _link_submit_to_its_order(paths: dict[str, Any]) -> None:
    """OpenAPI links: the orderId a submit answers is what GET and DELETE
    /api/orders/{order_id} take (clients and schemathesis's workflows follow them)."""
    submit = paths.get("/api/orders", {}).get("post")
    order = paths.get("/api/orders/{order_id}", {})
    if submit is None or not {"get", "delete"} <= set(order):
        return
    links = {
        name: {
            "operationId": order[method]["operationId"],
            "parameters": {"order_id": "$response.body#/orderId"},
        }
        for name, method in (("GetOrder", "get"), ("CancelOrder", "delete"))
    }
    for status in ("200", "201"):
        if status in submit["responses"]:
            submit["responses"][status]["links"] = links


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
