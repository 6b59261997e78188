"""``GET /healthz``: the gateway answers, and says how its upstream is."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from gateway.models import CamelModel
from gateway.upstream import Upstream
from orderengine.mesh.channels import ORDER_SERVICE

router = APIRouter(tags=["health"])


class UpstreamHealth(CamelModel):
    service: str = Field(examples=[ORDER_SERVICE])
    address: str
    status: str = Field(
        description="the gRPC health status (SERVING, NOT_SERVING), or the "
        "error code of the check (UNAVAILABLE, ...)"
    )
    message: str | None = None


class Health(CamelModel):
    status: str = Field(description="SERVING when the gateway and its upstream both are")
    gateway: str = "SERVING"
    upstream: UpstreamHealth
    open_streams: int = Field(description="WatchOrder streams open to OrderService")


@router.get(
    "/healthz",
    response_model=Health,
    summary="The gateway and OrderService",
    responses={503: {"model": Health, "description": "OrderService is not serving"}},
)
async def healthz(request: Request) -> JSONResponse:
    upstream: Upstream = request.app.state.upstream
    status, message = await upstream.health()
    serving = status == "SERVING"
    health = Health(
        status="SERVING" if serving else "NOT_SERVING",
        upstream=UpstreamHealth(
            service=ORDER_SERVICE, address=upstream.address, status=status, message=message
        ),
        open_streams=upstream.open_streams,
    )
    return JSONResponse(health.model_dump(), status_code=200 if serving else 503)
