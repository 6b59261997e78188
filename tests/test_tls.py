"""TLS: with TLS_* set, every server, every channel and the gateway speak
TLS, and nothing else gets in; set inconsistently, nothing starts. A
throw-away CA made here signs a certificate for 127.0.0.1 and localhost."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.client.tls import TlsConfigError, tls
from orderengine.local.ports import free_port
from orderengine.mesh.auth import key_metadata, token_metadata
from orderengine.mesh.channels import QUOTE_SERVICE, channel
from orderengine.mesh.serving import create_server
from orderengine.v1 import (
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    quote_service_pb2,
    quote_service_pb2_grpc,
)
from tests.conftest import INTERNAL_TOKEN, OWNER, ROOT, LoopThread, Processes, Services
from tests.helpers import eventually, statuses, watch_all

QUOTE = quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="USDC", amount="1")


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path
    # Another CA's certificate for the same names: not to be trusted.
    stranger_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = _ca("order engine test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
        directory / "stranger-ca.pem",
    )
    paths.ca.write_bytes(_pem(ca_cert))
    paths.cert.write_bytes(_pem(cert))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths.stranger_ca.write_bytes(_pem(_ca("someone else")[1]))
    return paths


@pytest.fixture(autouse=True)
def tls_env(
    env: dict[str, str], certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The whole engine under test with TLS: set before any server starts."""
    values = {
        "TLS_CERT_FILE": str(certificates.cert),
        "TLS_KEY_FILE": str(certificates.key),
        "TLS_CA_FILE": str(certificates.ca),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    env.update(values)
    return values


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


def health_check(ch: grpc.Channel) -> int:
    return int(
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3).status
    )


def refused(ch: grpc.Channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        health_check(ch)
    return caught.value


# -- gRPC -------------------------------------------------------------------


def test_only_clients_that_trust_the_ca_get_in(
    loop: LoopThread, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = loop.run(create_server("127.0.0.1:0", []))
    try:
        for address in (
            f"127.0.0.1:{server.port}",
            f"localhost:{server.port}",
            f"localhost:{server.port},localhost:{server.port}",
        ):
            with channel(address) as ch:
                assert health_check(ch) == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plaintext:
            assert refused(plaintext).code() == grpc.StatusCode.UNAVAILABLE
        # Trusting only the system's roots, or another CA.
        monkeypatch.delenv("TLS_CA_FILE")
        monkeypatch.setenv("TLS_ENABLED", "true")
        with channel(f"127.0.0.1:{server.port}") as system_roots:
            assert refused(system_roots).code() == grpc.StatusCode.UNAVAILABLE
        monkeypatch.setenv("TLS_CA_FILE", str(certificates.stranger_ca))
        with channel(f"127.0.0.1:{server.port}") as stranger:
            assert refused(stranger).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        loop.run(server.stop(0))


def test_the_certificate_name_is_checked(loop: LoopThread, monkeypatch: pytest.MonkeyPatch) -> None:
    server = loop.run(create_server("127.0.0.1:0", []))
    try:
        monkeypatch.setenv("TLS_SERVER_NAME", "orders.example.com")
        with channel(f"127.0.0.1:{server.port}") as ch:
            assert refused(ch).code() == grpc.StatusCode.UNAVAILABLE
        monkeypatch.setenv("TLS_SERVER_NAME", "localhost")
        with channel(f"127.0.0.1:{server.port}") as ch:
            assert health_check(ch) == health_pb2.HealthCheckResponse.SERVING
    finally:
        loop.run(server.stop(0))


def test_plaintext_when_nothing_is_set(loop: LoopThread, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"):
        monkeypatch.delenv(name)
    server = loop.run(create_server("127.0.0.1:0", []))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plaintext:
            assert health_check(plaintext) == health_pb2.HealthCheckResponse.SERVING
        with channel(f"127.0.0.1:{server.port}") as ch:
            assert health_check(ch) == health_pb2.HealthCheckResponse.SERVING
    finally:
        loop.run(server.stop(0))


def test_probes_that_speak_no_tls_get_the_health_service_alone_on_its_own_port(
    loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEALTH_PORT: what a Kubernetes grpc probe (plaintext only) asks,
    while the server itself takes TLS alone."""
    probe_port = free_port()
    monkeypatch.setenv("HEALTH_PORT", str(probe_port))
    server = loop.run(create_server("127.0.0.1:0", []))
    stopped = False
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plaintext:
            assert refused(plaintext).code() == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(f"127.0.0.1:{probe_port}") as probe:
            assert health_check(probe) == health_pb2.HealthCheckResponse.SERVING
            # Nothing but health: not reflection, not a service's methods.
            with pytest.raises(grpc.RpcError) as other:
                quote_service_pb2_grpc.QuoteServiceStub(probe).GetQuote(QUOTE, timeout=3)
            assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED
            # A stopping server says so on the probe port too.
            loop.run(server.health.enter_graceful_shutdown())
            assert health_check(probe) == health_pb2.HealthCheckResponse.NOT_SERVING
            loop.run(server.stop(0))
            stopped = True
            assert refused(probe).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        if not stopped:
            loop.run(server.stop(0))


def test_a_taken_health_port_stops_the_start_naming_the_setting(
    loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("HEALTH_PORT", str(taken.getsockname()[1]))
        with pytest.raises(OSError, match="HEALTH_PORT"):
            loop.run(create_server("127.0.0.1:0", []))
    # Nor may two servers of one host share one: each answers for itself.
    monkeypatch.setenv("HEALTH_PORT", str(free_port()))
    first = loop.run(create_server("127.0.0.1:0", []))
    try:
        with pytest.raises(OSError, match="HEALTH_PORT"):
            loop.run(create_server("127.0.0.1:0", []))
    finally:
        loop.run(first.stop(0))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"TLS_KEY_FILE": None}, "TLS_KEY_FILE"),
        ({"TLS_CERT_FILE": None}, "TLS_CERT_FILE"),
        ({"TLS_CA_FILE": "/nonexistent/ca.pem"}, "TLS_CA_FILE"),
        ({"TLS_KEY_FILE": "/nonexistent/key.pem"}, "TLS_KEY_FILE"),
        ({"TLS_ENABLED": "maybe"}, "TLS_ENABLED"),
        ({"TLS_ENABLED": "false"}, "TLS_ENABLED"),
    ],
)
def test_inconsistent_settings_stop_the_start_naming_the_setting(
    loop: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, str | None],
    named: str,
) -> None:
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(TlsConfigError, match=named):
        loop.run(create_server("127.0.0.1:0", []))
    with pytest.raises(TlsConfigError, match=named):
        tls()


def test_replicas_under_several_names_need_a_server_name() -> None:
    with pytest.raises(TlsConfigError, match="TLS_SERVER_NAME"):
        channel("127.0.0.1:1,127.0.0.2:2")


# -- the engine and the gateway over TLS --------------------------------------


def test_an_order_goes_through_the_engine_over_tls(services: Services, engine: Processes) -> None:
    # The services started with TLS (the env above); the worker and the
    # tracker, as processes, reach them with the same settings.
    orders = services.channel("order")  # the fixture's plaintext channel
    assert refused(orders).code() == grpc.StatusCode.UNAVAILABLE
    with channel(
        services.address("quote"), token_metadata(INTERNAL_TOKEN), service=QUOTE_SERVICE
    ) as quotes:
        assert quote_service_pb2_grpc.QuoteServiceStub(quotes).GetQuote(QUOTE, timeout=5).quotes
    with channel(services.address("order"), key_metadata(services.keys[OWNER])) as ch:
        stub = order_service_pb2_grpc.OrderServiceStub(ch)
        order = stub.SubmitOrder(
            order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount="1"
            ),
            timeout=10,
        ).order
        assert statuses(watch_all(stub, order.order_id))[-1] == "CONFIRMED"
        stored = stub.GetOrder(
            order_service_pb2.GetOrderRequest(order_id=order.order_id), timeout=5
        )
        assert stored.status == order_pb2.ORDER_STATUS_CONFIRMED


def test_the_gateway_serves_https(services: Services, certificates: Certificates) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    trusting = ssl.create_default_context(cafile=certificates.ca)
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway.main"],
        cwd=ROOT,
        env={**os.environ, "GATEWAY_ADDRESS": url, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert gateway.stdout is not None
        assert gateway.stdout.readline().startswith(f"gateway listening on {url} ")

        def health() -> httpx.Response | None:
            try:
                return httpx.get(f"{url}/healthz", verify=trusting, timeout=2)
            except httpx.ConnectError:
                return None

        reply = eventually(health, timeout=20)
        assert reply.status_code == 200
        # Its channel to OrderService speaks TLS too, or this would not say SERVING.
        assert reply.json()["upstream"]["status"] == "SERVING"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", timeout=2)  # the system's roots only
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https", "http") + "/healthz", timeout=2)
    finally:
        gateway.terminate()
        gateway.wait(10)
