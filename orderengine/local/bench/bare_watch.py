"""The watch ceiling: a bare grpc.aio server (the engine's server options,
the standard health service its clients check) whose WatchOrder sends one
event and then holds the stream open, nothing else. The memory of its idle
streams is what grpc.aio alone takes for one.
``python -m orderengine.local.bench.bare_watch`` prints its port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from orderengine.mesh.channels import ORDER_SERVICE
from orderengine.mesh.serving import SERVER_OPTIONS
from orderengine.v1 import order_pb2, order_service_pb2

FOREVER = asyncio.Event()  # never set: a stream ends when its caller cancels it


async def watch_order(
    request: order_service_pb2.WatchOrderRequest, context: Any
) -> AsyncIterator[order_pb2.OrderEvent]:
    # What the engine's stream sends first: the order as it stands.
    event = order_pb2.OrderEvent(
        order_id=request.order_id, sequence=1, status=order_pb2.ORDER_STATUS_PENDING
    )
    event.event_time.GetCurrentTime()
    yield event
    await FOREVER.wait()


async def serve() -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    health_servicer: Any = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                ORDER_SERVICE,
                {
                    "WatchOrder": grpc.unary_stream_rpc_method_handler(
                        watch_order,
                        request_deserializer=order_service_pb2.WatchOrderRequest.FromString,
                        response_serializer=order_pb2.OrderEvent.SerializeToString,
                    )
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve())
