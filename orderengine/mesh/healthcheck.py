"""Is a gRPC server serving? ``python -m orderengine.mesh.healthcheck ADDRESS``
exits 0 when the standard health service says SERVING (for container
health checks); the stack uses it to wait for its services."""

from __future__ import annotations

import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.mesh.channels import channel as orderengine_channel


def serving(channel: grpc.Channel, service: str = "", timeout: float = 1.0) -> bool:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def wait_serving(address: str, deadline: float) -> None:
    """Waits until ``address`` serves, or raises TimeoutError at ``deadline``
    (a time.monotonic() value)."""
    with orderengine_channel(address) as channel:
        while not serving(channel):
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing serving on {address}")
            time.sleep(0.1)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m orderengine.mesh.healthcheck HOST:PORT")
    with orderengine_channel(sys.argv[1]) as channel:
        sys.exit(0 if serving(channel, timeout=3.0) else 1)


if __name__ == "__main__":
    main()
