"""Runs a part of the executor:

python -m executor.main chain     ExecutionService, the simulated chain
python -m executor.main worker    an RQ worker driving orders
python -m executor.main tracker   the confirmation tracker and reconciler
python -m executor.main triggers  the trigger part: waiting orders' prices and expiries
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from contextlib import AsyncExitStack

from executor.chain.chain import Chain
from executor.chain.execution_service import ExecutionServicer
from executor.chain.faucet import FaucetLimits
from executor.chain.faults import FailureRates, Faults
from executor.driver import tracker, worker
from orderengine.market import launches
from orderengine.mesh.auth import InternalTokenGuard, exit_on_placeholder_token
from orderengine.mesh.channels import EXECUTION_SERVICE
from orderengine.mesh.redis_clients import async_redis
from orderengine.mesh.serving import Server, Service, create_server, serve
from orderengine.observability.logs import configure_logging
from orderengine.observability.metrics import serve_metrics
from orderengine.settings import Settings
from orderengine.v1 import execution_service_pb2_grpc


async def create_execution_server(address: str, settings: Settings) -> Server:
    # Internal: only the engine's own services (raises without INTERNAL_TOKEN).
    internal_only = InternalTokenGuard(settings.internal_token)
    faucet = FaucetLimits.from_settings(settings)  # a bad limit stops the start here
    # Closed in reverse order, by the server once it stops, or here if it
    # never starts.
    async with AsyncExitStack() as opened:
        redis = await opened.enter_async_context(async_redis(settings.chain_redis_url))
        launches.install(settings.chain_redis_url)
        chain = Chain(
            redis,
            settings.slot_seconds,
            settings.confirm_seconds,
            Faults(FailureRates.from_settings(settings), settings.chain_seed),
        )
        stopping = asyncio.Event()
        lander = asyncio.create_task(chain.run_lander(stopping))

        async def stop_lander() -> None:
            stopping.set()
            await lander

        opened.push_async_callback(stop_lander)
        server = await create_server(
            address,
            [
                Service(
                    EXECUTION_SERVICE,
                    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server,
                    ExecutionServicer(chain, faucet),
                ),
            ],
            internal_only,
        )
        server.owns(opened)
    return server


def run_tracker() -> None:
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    tracker.run(stopping)


def run_triggers() -> None:
    from executor.driver.context import context
    from executor.triggers.engine import Triggers
    from executor.triggers.metrics import report_waiting

    async def follow() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        ctx = context()
        async with async_redis(ctx.settings.chain_redis_url) as market:
            triggers = Triggers(ctx, market)
            report_waiting(triggers.index.waiting)
            await triggers.run(stopping, ctx.settings.trigger_poll_seconds)

    asyncio.run(follow())


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m executor.main",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("part", choices=["chain", "worker", "tracker", "triggers"])
    parser.add_argument("--burst", action="store_true", help="worker: stop when the queue is empty")
    args = parser.parse_args()
    process = {
        "chain": "execution-service",
        "worker": "executor-worker",
        "tracker": "executor-tracker",
        "triggers": "executor-triggers",
    }[args.part]
    configure_logging(process)
    exit_on_placeholder_token(process)
    serve_metrics(Settings(), f"executor {args.part}")
    if args.part == "chain":
        asyncio.run(serve("ExecutionService", create_execution_server, "EXECUTION_SERVICE"))
    elif args.part == "worker":
        worker.run(burst=args.burst)
    elif args.part == "triggers":
        run_triggers()
    else:
        run_tracker()


if __name__ == "__main__":
    main()
