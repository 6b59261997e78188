"""Where the gateway listens and where it finds OrderService."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from orderengine.settings import Settings, env_value


def host_port(address: str) -> tuple[str, int]:
    """``http://host:port`` (or bare ``host:port``) as a host and a port."""
    url = urlsplit(address if "://" in address else f"http://{address}")
    if not url.hostname or url.port is None:
        raise ValueError(f"GATEWAY_ADDRESS: expected http://HOST:PORT, got {address!r}")
    return url.hostname, url.port


@dataclass(frozen=True)
class GatewayConfig:
    # The URL clients use, e.g. http://127.0.0.1:8080.
    address: str
    # What the server listens on: GATEWAY_BIND (HOST:PORT), else the address.
    bind_host: str
    bind_port: int
    order_service_address: str
    shutdown_grace_seconds: float
    # What one client may hold (gateway/connections.py).
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: int = 5
    max_connections: int = 10_000

    @classmethod
    def from_env(cls) -> GatewayConfig:
        settings = Settings()
        address = settings.gateway_address
        host, port = host_port(env_value("GATEWAY_BIND", address))
        for name, value in (
            ("GATEWAY_HEADER_TIMEOUT_SECONDS", settings.gateway_header_timeout_seconds),
            ("GATEWAY_KEEP_ALIVE_SECONDS", settings.gateway_keep_alive_seconds),
            ("GATEWAY_MAX_CONNECTIONS", settings.gateway_max_connections),
        ):
            if not value > 0:  # also NaN
                raise ValueError(f"{name}: must be more than 0, got {value}")
        return cls(
            address,
            host,
            port,
            settings.order_service_address,
            settings.shutdown_grace_seconds,
            settings.gateway_header_timeout_seconds,
            settings.gateway_keep_alive_seconds,
            settings.gateway_max_connections,
        )
