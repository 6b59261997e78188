"""Runs the gateway: ``python -m gateway.main`` (GATEWAY_ADDRESS, default
http://127.0.0.1:8080, in front of ORDER_SERVICE_ADDRESS)."""

from __future__ import annotations

import logging
import math
import os
import sys

import uvicorn

from gateway.app import create_app
from gateway.config import GatewayConfig


def configure_logging() -> None:
    # The same format as the engine's other processes.
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level == "INFO":
        # Every WebSocket's open and close is INFO chatter to uvicorn; its
        # warnings and errors still show.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def main() -> None:
    configure_logging()
    try:
        config = GatewayConfig.from_env()
    except ValueError as exc:
        sys.exit(f"gateway: {exc}")
    print(f"gateway listening on {config.address} -> OrderService at "
          f"{config.order_service_address}", flush=True)
    uvicorn.run(
        create_app(config.order_service_address),
        host=config.bind_host, port=config.bind_port,
        log_config=None, log_level=None, access_log=False,
        # Then open WebSockets are closed (1012, "service restart").
        timeout_graceful_shutdown=max(1, math.ceil(config.shutdown_grace_seconds)),
    )


if __name__ == "__main__":
    main()
