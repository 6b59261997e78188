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

    @classmethod
    def from_env(cls) -> GatewayConfig:
        settings = Settings()
        address = settings.gateway_address
        host, port = host_port(env_value("GATEWAY_BIND", address))
        return cls(address, host, port, settings.order_service_address,
                   settings.shutdown_grace_seconds)
