"""The gRPC ceiling: a bare grpc.aio server whose only unary call is the
standard health Check. ``python -m orderengine.local.bench.echo`` prints its port."""

from __future__ import annotations

import asyncio

from orderengine.mesh.serving import create_server, serve_until_signal


async def serve() -> None:
    server = await create_server("127.0.0.1:0", [])
    print(server.port, flush=True)
    await serve_until_signal(server, 0.5)


if __name__ == "__main__":
    asyncio.run(serve())
