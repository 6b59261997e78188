"""Runs the gateway: ``python -m gateway.main`` (GATEWAY_ADDRESS, default
http://127.0.0.1:8080, in front of ORDER_SERVICE_ADDRESS). With TLS_CERT_FILE
and TLS_KEY_FILE it serves HTTPS (and wss://) with that certificate, and its
channel to OrderService speaks TLS as every channel does (docs/operations.md, "TLS")."""

from __future__ import annotations

import logging
import math
import sys
from urllib.parse import urlsplit

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.connections import BACKLOG, RepeatLimit, connection_cap, guarded
from gateway.limits import MAX_WEBSOCKET_MESSAGE_BYTES
from orderengine.mesh.tls import tls
from orderengine.observability.logs import configure_logging, say


def public_url(address: str, https: bool) -> str:
    """GATEWAY_ADDRESS with the scheme it is really served under."""
    return urlsplit(address)._replace(scheme="https" if https else "http").geturl()


def main() -> None:
    # Every WebSocket's open and close is INFO chatter to uvicorn; its
    # warnings and errors still show.
    configure_logging("gateway", chatter=["uvicorn.error"])
    # Out of descriptors, the event loop logs a traceback per pending
    # connection: thousands a second under attack.
    logging.getLogger("asyncio").addFilter(RepeatLimit())
    try:
        config = GatewayConfig.from_env()
        certificate = tls()
    except ValueError as exc:
        sys.exit(f"gateway: {exc}")
    say(
        f"gateway listening on {public_url(config.address, certificate.serves)} -> OrderService "
        f"at {config.order_service_address}"
    )
    uvicorn.run(
        create_app(config.order_service_address),
        host=config.bind_host,
        port=config.bind_port,
        log_config=None,
        log_level=None,
        access_log=False,
        ws_max_size=MAX_WEBSOCKET_MESSAGE_BYTES,
        # Slow or idle clients, and too many at once, must not use it up.
        http=guarded(
            config.header_timeout_seconds, connection_cap(config.max_connections), HttpToolsProtocol
        ),
        # grpc.aio runs on uvloop too: the channel to OrderService shares it.
        loop="uvloop",
        timeout_keep_alive=config.keep_alive_seconds,
        backlog=BACKLOG,
        # Then open WebSockets are closed (1012, "service restart").
        timeout_graceful_shutdown=max(1, math.ceil(config.shutdown_grace_seconds)),
        # HTTPS with the certificate the gRPC servers serve; plaintext without.
        ssl_certfile=certificate.cert_file or None,
        ssl_keyfile=certificate.key_file or None,
    )


if __name__ == "__main__":
    main()
