"""What a client of the engine reads from its environment: where
OrderService is, the API key, and TLS. The engine's own processes read the
same variables, and more (orderengine.settings extends this class);
docs/operations.md ("Settings") lists them all."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def env_value(name: str, default: str) -> str:
    """The variable's value, stripped; ``default`` when it is unset or blank."""
    return os.environ.get(name, "").strip() or default


# Where clients look for OrderService when not told (make run's banner
# names any other address).
ORDER_SERVICE_DEFAULT = "127.0.0.1:50051"


@dataclass(frozen=True)
class ClientSettings:
    # Where clients find OrderService: HOST:PORT, a comma-separated list of
    # replicas, or a gRPC target such as dns:///orders.internal:50051.
    order_service_address: str = field(
        default_factory=lambda: env_value("ORDER_SERVICE_ADDRESS", ORDER_SERVICE_DEFAULT)
    )

    # What clients (the CLI, make bench, the tests) send: the key itself, or
    # the file make run wrote it to (mode 0600).
    api_key: str = field(default_factory=lambda: env_value("ORDERENGINE_API_KEY", ""))
    api_key_file: str = field(
        default_factory=lambda: env_value("ORDERENGINE_API_KEY_FILE", "var/api-key")
    )

    # TLS (docs/operations.md, "TLS"; checked in orderengine.client.tls). A server given a
    # certificate and its key serves TLS only, the gateway HTTPS; clients
    # speak TLS when TLS_CA_FILE or TLS_CERT_FILE is set, or TLS_ENABLED is
    # true (then trusting the system roots). All unset: plaintext, as on one
    # machine.
    tls_cert_file: str = field(default_factory=lambda: env_value("TLS_CERT_FILE", ""))
    tls_key_file: str = field(default_factory=lambda: env_value("TLS_KEY_FILE", ""))
    tls_ca_file: str = field(default_factory=lambda: env_value("TLS_CA_FILE", ""))
    # The name clients check the servers' certificates for, when the address
    # does not carry it (a list of IPs, replicas under other names).
    tls_server_name: str = field(default_factory=lambda: env_value("TLS_SERVER_NAME", ""))
    # "true" or "false"; empty: on when a certificate or a CA is given.
    tls_enabled: str = field(default_factory=lambda: env_value("TLS_ENABLED", ""))
