"""How every channel to the engine's gRPC services is dialed: the address
forms, the balancing over replicas, the retries, the keepalive and TLS
(docs/architecture.md, "Calls between services"). The client's own
channels (orderengine.client) and the engine's (orderengine.mesh.channels,
which add its metrics and traces) are dialed alike."""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any

import grpc

from orderengine.client.keepalive import KEEPALIVE
from orderengine.client.tls import Tls, TlsConfigError, tls
from orderengine.v1 import execution_service_pb2, order_service_pb2, quote_service_pb2

ORDER_SERVICE = order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
QUOTE_SERVICE = quote_service_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name
EXECUTION_SERVICE = execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name

# Targets gRPC resolves itself (https://grpc.github.io/grpc/core/md_doc_naming.html).
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")

# A peer that restarts is back within a second or two; gRPC's default
# reconnect back-off (up to two minutes) would keep calls failing long after.
_RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

# Retried by gRPC itself (within the call's one deadline), only on
# UNAVAILABLE: the peer was unreachable, stopping, or its own store was down,
# and the call is one that may safely run twice.
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

# Safe to repeat:
# - GetQuote and BatchGetQuotes read pool state and change nothing.
# - SubmitSwap and BatchSubmitSwaps: the chain takes an attempt key with SET
#   NX and derives the signature from it (executor/chain/chain.py), so a repeated
#   submit answers the same signature with duplicate=true and never lands a
#   second swap; a retried call is exactly what executor/driver/jobs.py already
#   does on a later run.
# - GetSignatureStatuses, GetWallets, GetOrder, ListOrders, GetBalances only read.
# - FundWallet: the chain gives each request_id once (executor/chain/faucet.py)
#   and answers a repeat with the balance and duplicate=true.
# Each by name, so that a method added later is not repeated unless said
# here (tests/test_chain.py checks every internal method is).
RETRIED = [
    {"service": QUOTE_SERVICE, "method": "GetQuote"},
    {"service": QUOTE_SERVICE, "method": "BatchGetQuotes"},
    {"service": EXECUTION_SERVICE, "method": "SubmitSwap"},
    {"service": EXECUTION_SERVICE, "method": "BatchSubmitSwaps"},
    {"service": EXECUTION_SERVICE, "method": "GetSignatureStatuses"},
    {"service": EXECUTION_SERVICE, "method": "GetWallets"},
    {"service": EXECUTION_SERVICE, "method": "FundWallet"},
    {"service": ORDER_SERVICE, "method": "GetOrder"},
    {"service": ORDER_SERVICE, "method": "ListOrders"},
    {"service": ORDER_SERVICE, "method": "GetBalances"},
]
# Not retried by gRPC:
# - SubmitOrder and BatchSubmitOrders are idempotent only with a client_order_id (AIP-155), and a
#   service config cannot look into the request: an UNAVAILABLE that came
#   after the store write (a server stopping mid-call) would, without one,
#   store a second order. A client that sets client_order_id may repeat it
#   itself; gRPC still repeats transparently a call that never left.
# - CancelOrder: a repeat after a cancel that took answers "no longer
#   PENDING", which would hide the success.
# - RequestAirdrop, as SubmitOrder: idempotent only with a request_id.
# - QuoteOrder would be safe, but its GetQuote inside is retried already:
#   retrying both would multiply the attempts on a struggling QuoteService.
NOT_RETRIED = [
    {"service": ORDER_SERVICE, "method": "SubmitOrder"},
    {"service": ORDER_SERVICE, "method": "BatchSubmitOrders"},
    {"service": ORDER_SERVICE, "method": "CancelOrder"},
    {"service": ORDER_SERVICE, "method": "QuoteOrder"},
    {"service": ORDER_SERVICE, "method": "RequestAirdrop"},
]
# WatchOrder (a stream) is in neither: no retry, no deadline of the channel's
# own; its clients resume with after_sequence.

# A backstop: a call whose caller set no deadline still ends. Every call site
# sets a shorter one of its own.
DEFAULT_TIMEOUT = "30s"


def service_config(service: str) -> dict[str, Any]:
    """Round robin over the healthy replicas of ``service`` (its full name;
    "" is the server as a whole), and the retries and timeouts above."""
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        # Client-side health checking: a replica that says NOT_SERVING
        # (serving.Server.stop does so first) or stops answering gets no
        # new calls while the others take them.
        "healthCheckConfig": {"serviceName": service},
        "methodConfig": [
            {"name": RETRIED, "retryPolicy": RETRY_POLICY, "timeout": DEFAULT_TIMEOUT},
            {"name": NOT_RETRIED, "timeout": DEFAULT_TIMEOUT},
        ],
        # Retries stop while most calls fail (every replica down), so that
        # they never multiply the load on a struggling service.
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


# -- addresses --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What gRPC dials, and the one host name its servers answer to (for
    TLS), if there is one."""

    target: str
    host: str | None
    replicas: bool  # a list: several addresses


def _split_host_port(part: str, address: str) -> tuple[str, str]:
    host, colon, port = part.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(
            f"{address!r}: expected HOST:PORT, or a comma-separated list of them, got {part!r}"
        )
    return host.strip("[]"), port


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolved(host: str, port: str, address: str) -> list[str]:
    """The IP addresses of ``host``. A name in a list is resolved once, when
    the channel opens: gRPC has no resolver for a list of names."""
    ip = _ip(host)
    if ip is not None:
        return [str(ip)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"{address!r}: cannot resolve {host!r} ({exc.strerror})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_target(address: str) -> Target:
    """The gRPC target for an address setting: one ``host:port``; a
    comma-separated list ``host:port,host:port`` (IP literals or names,
    balanced over); or a gRPC target such as ``dns:///orders.internal:50051``
    (every address the name resolves to, re-resolved as replicas come and
    go). Raises ValueError for a malformed one."""
    address = address.strip()
    if not address:
        raise ValueError("an address is empty")
    if address.startswith(_SCHEMES):
        return Target(address, _target_host(address), "," in address)
    parts = [p.strip() for p in address.split(",")]
    if len(parts) == 1:
        host, _ = _split_host_port(parts[0], address)
        return Target(parts[0], host, False)
    hosts_ports = [_split_host_port(p, address) for p in parts]
    hosts = {host for host, _ in hosts_ports}
    v4: list[str] = []
    v6: list[str] = []
    every_v4 = every_v6 = True
    for host, port in hosts_ports:
        ips = [_ip(ip) for ip in _resolved(host, port, address)]
        mine4 = [f"{ip}:{port}" for ip in ips if ip and ip.version == 4]
        mine6 = [f"[{ip}]:{port}" for ip in ips if ip and ip.version == 6]
        every_v4, every_v6 = every_v4 and bool(mine4), every_v6 and bool(mine6)
        v4 += mine4
        v6 += mine6
    # One target holds one address family.
    if every_v4:
        target = "ipv4:" + ",".join(dict.fromkeys(v4))
    elif every_v6:
        target = "ipv6:" + ",".join(dict.fromkeys(v6))
    else:
        raise ValueError(f"{address!r}: mixes IPv4-only and IPv6-only replicas")
    return Target(target, hosts.pop() if len(hosts) == 1 else None, True)


def _target_host(target: str) -> str | None:
    """The host of a gRPC target, when it names exactly one."""
    scheme, _, rest = target.partition(":")
    if scheme in ("unix", "unix-abstract", "vsock"):
        return "localhost"
    if rest.startswith("//"):  # dns://[authority]/host:port
        rest = rest[2:].partition("/")[2]
    hosts = {p.rpartition(":")[0].strip("[]") for p in rest.split(",")}
    return hosts.pop() if len(hosts) == 1 and "" not in hosts else None


def is_single_address(address: str) -> bool:
    """A server can listen here: one ``host:port``, not a list or a target."""
    address = address.strip()
    return bool(address) and "," not in address and not address.startswith(_SCHEMES)


# -- channels ---------------------------------------------------------------


@dataclass(frozen=True)
class Dial:
    """What opening a channel to an address takes: gRPC's target, the TLS
    credentials (None: plaintext) and the channel's options."""

    target: str
    credentials: grpc.ChannelCredentials | None
    options: list[tuple[str, Any]]


def dial(address: str, service: str = "", config: Tls | None = None) -> Dial:
    """How to reach ``address`` (any form parse_target takes), picking the
    replicas by the health of ``service`` (a full name; "" the server as a
    whole), with TLS as ``config`` says (default: the TLS_* settings).
    Raises ValueError for a malformed address or inconsistent TLS."""
    target = parse_target(address)
    config = tls() if config is None else config
    options: list[tuple[str, Any]] = [
        *_RECONNECT_OPTIONS,
        *KEEPALIVE.client_options(),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config(service))),
        # The config above is the engine's: none from DNS TXT records.
        ("grpc.service_config_disable_resolution", 1),
    ]
    credentials = config.channel_credentials()
    if credentials is not None:
        name = _server_name(config, target, address)
        if name:
            options.append(("grpc.ssl_target_name_override", name))
    return Dial(target.target, credentials, options)


def open_channel(how: Dial) -> grpc.Channel:
    if how.credentials is None:
        return grpc.insecure_channel(how.target, options=how.options)
    return grpc.secure_channel(how.target, how.credentials, options=how.options)


def open_aio_channel(how: Dial, interceptors: Any = None) -> grpc.aio.Channel:
    """The same for grpc.aio (open it inside the running loop)."""
    if how.credentials is None:
        return grpc.aio.insecure_channel(how.target, options=how.options, interceptors=interceptors)
    return grpc.aio.secure_channel(
        how.target, how.credentials, options=how.options, interceptors=interceptors
    )


def _server_name(config: Tls, target: Target, address: str) -> str | None:
    """The name the servers' certificates must carry, when gRPC would not
    take it from the target itself."""
    if config.server_name:
        return config.server_name
    if not target.replicas:
        return None
    if target.host is None:
        raise TlsConfigError(
            f"TLS_SERVER_NAME: {address!r} names replicas under several "
            "hosts; set the name their certificate carries"
        )
    return target.host
