"""What the engine's gRPC plumbing costs a unary call in CPU, server and
client side: a stand-in QuoteService (a fixed answer, no pool math) behind
``create_server`` and called through ``aio_channel``, against the same
servicer on a bare grpc.aio server called through a bare channel.

    python -m orderengine.local.bench.call_cpu [--calls N] [--rounds R] [TREE...]

Each TREE is a checkout of the engine (default: this one); the rounds
alternate between them, and between the engine's plumbing and the bare one,
so that a noisy machine weighs on each alike. Server CPU is read from
/proc (every thread of the server process), client CPU from the client
process's own clock; both per call, after a warm-up."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

TOKEN = "bench-call-cpu-token"
CONCURRENCY = 8
WARM_UP = 500


def _process_cpu(pid: int) -> float:
    """User plus system CPU seconds of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _serve(kind: str) -> None:
    from orderengine.v1 import quote_service_pb2, quote_service_pb2_grpc

    answer = quote_service_pb2.GetQuoteResponse()
    answer.route.amount_out = "1"

    class Fixed(quote_service_pb2_grpc.QuoteServiceServicer):
        async def GetQuote(self, request: Any, context: Any) -> Any:
            return answer

        async def BatchGetQuotes(self, request: Any, context: Any) -> Any:
            return quote_service_pb2.BatchGetQuotesResponse()

    if kind == "bare":
        server = grpc.aio.server()
        quote_service_pb2_grpc.add_QuoteServiceServicer_to_server(Fixed(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
    else:
        from orderengine.mesh import auth
        from orderengine.mesh.channels import QUOTE_SERVICE
        from orderengine.mesh.serving import Service, create_server
        from orderengine.observability.logs import configure_logging

        configure_logging("bench-call-cpu")
        # A checkout from before guards took interceptors' place takes a list.
        guard: Any = (
            auth.InternalTokenGuard(TOKEN)
            if hasattr(auth, "InternalTokenGuard")
            else [vars(auth)["InternalTokenInterceptor"](TOKEN)]
        )
        engine = await create_server(
            "127.0.0.1:0",
            [
                Service(
                    QUOTE_SERVICE,
                    quote_service_pb2_grpc.add_QuoteServiceServicer_to_server,
                    Fixed(),
                )
            ],
            guard,
        )
        server, port = engine.grpc_server, engine.port
    print(port, flush=True)
    await server.wait_for_termination()


async def _client(kind: str, address: str, server_pid: int, calls: int) -> None:
    from orderengine.v1 import quote_service_pb2, quote_service_pb2_grpc

    if kind == "bare":
        channel = grpc.aio.insecure_channel(address)
        metadata: Any = (("x-internal-token", TOKEN),)
    else:
        from orderengine.mesh.auth import token_metadata
        from orderengine.mesh.channels import QUOTE_SERVICE, aio_channel
        from orderengine.observability.logs import configure_logging

        configure_logging("bench-call-cpu-client")
        channel = aio_channel(address, token_metadata(TOKEN), service=QUOTE_SERVICE)
        metadata = None
    stub = quote_service_pb2_grpc.QuoteServiceStub(channel)
    request = quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="USDC", amount="1")

    async def run(count: int) -> None:
        async def one_lane(n: int) -> None:
            for _ in range(n):
                await stub.GetQuote(request, metadata=metadata, timeout=10)

        await asyncio.gather(*(one_lane(count // CONCURRENCY) for _ in range(CONCURRENCY)))

    await run(WARM_UP)
    server_before, client_before = _process_cpu(server_pid), time.process_time()
    await run(calls)
    server_after, client_after = _process_cpu(server_pid), time.process_time()
    done = calls // CONCURRENCY * CONCURRENCY
    print(
        f"{(server_after - server_before) / done * 1e6:.1f} "
        f"{(client_after - client_before) / done * 1e6:.1f}",
        flush=True,
    )
    await channel.close(None)


def _env(tree: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": tree, "OTEL_TRACES_EXPORTER": "none"}


def _measure(tree: str, kind: str, calls: int) -> tuple[float, float]:
    """(server, client) CPU microseconds per call."""
    script = str(Path(__file__).resolve())
    server = subprocess.Popen(
        [sys.executable, script, "serve", kind], env=_env(tree), stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        out = subprocess.run(
            [
                sys.executable,
                script,
                "client",
                kind,
                f"127.0.0.1:{port}",
                str(server.pid),
                str(calls),
            ],
            env=_env(tree),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return float(out[0]), float(out[1])
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare reference")
    parser.add_argument("trees", nargs="*")
    args = parser.parse_args()
    trees = args.trees or [str(Path(__file__).resolve().parents[3])]
    runs = [(tree, "engine") for tree in trees]
    if not args.no_bare:
        runs.append((trees[0], "bare"))
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {run: [] for run in runs}
    for number in range(args.rounds):
        # Alternate the order too: what runs first in a round is not favoured.
        for run in runs if number % 2 == 0 else runs[::-1]:
            figures[run].append(_measure(*run, args.calls))
    print(f"{'tree':40} {'kind':7} {'server us/call':>22} {'client us/call':>22}")
    for (tree, kind), measured in figures.items():
        server = [s for s, _ in measured]
        client = [c for _, c in measured]
        print(
            f"{tree[-40:]:40} {kind:7} "
            f"{statistics.median(server):8.1f} [{min(server):5.1f}-{max(server):5.1f}] "
            f"{statistics.median(client):8.1f} [{min(client):5.1f}-{max(client):5.1f}]"
        )
    # Each round's figure over the first run's of the same round: the pairs
    # share the machine's load of that moment.
    first = figures[runs[0]]
    for run in runs[1:]:
        pairs = list(zip(figures[run], first, strict=True))
        server_ratio = statistics.median(s / f[0] for (s, _), f in pairs)
        client_ratio = statistics.median(c / f[1] for (_, c), f in pairs)
        print(
            f"{run[0][-32:]} {run[1]} / first: server x{server_ratio:.3f}, "
            f"client x{client_ratio:.3f} (medians of per-round ratios)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(_serve(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        asyncio.run(_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        main()
