"""TLS for every gRPC server, every channel and the gateway, from the TLS_*
settings (docs/operations.md, "TLS"). Unset, everything stays plaintext; set
inconsistently, a process refuses to start and names the setting. Here, in
the client, because a client's channel reads the same settings as the
engine's own (orderengine.mesh.tls names it for the servers)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from orderengine.client.settings import ClientSettings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class TlsConfigError(ValueError):
    """The TLS_* settings do not make sense together; the message names them."""


def _readable(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{setting}: cannot read {path!r} ({exc.strerror})") from None


@dataclass(frozen=True)
class Tls:
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    server_name: str = ""
    # Clients speak TLS.
    clients: bool = False

    @classmethod
    def client(cls, ca_file: str = "", server_name: str = "") -> Tls:
        """A client's TLS: trusting ``ca_file`` (PEM), else the system's
        roots, and expecting ``server_name`` in the certificate when the
        address does not carry it."""
        if ca_file:
            _readable("ca_file", ca_file)
        return cls(ca_file=ca_file, server_name=server_name, clients=True)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> Tls:
        if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
            given, missing = (
                ("TLS_CERT_FILE", "TLS_KEY_FILE")
                if settings.tls_cert_file
                else ("TLS_KEY_FILE", "TLS_CERT_FILE")
            )
            raise TlsConfigError(
                f"{given} is set but {missing} is not: a server needs "
                "its certificate and its private key"
            )
        enabled = settings.tls_enabled.lower()
        if enabled and enabled not in _TRUE | _FALSE:
            raise TlsConfigError(f"TLS_ENABLED must be true or false, got {settings.tls_enabled!r}")
        files = bool(settings.tls_cert_file or settings.tls_ca_file)
        if enabled in _FALSE and files:
            raise TlsConfigError(
                "TLS_ENABLED is false but TLS_CERT_FILE or TLS_CA_FILE is "
                "set: unset them, or TLS_ENABLED"
            )
        clients = enabled in _TRUE or files
        if settings.tls_server_name and not clients:
            raise TlsConfigError(
                "TLS_SERVER_NAME is set but TLS is off: set TLS_CA_FILE (or TLS_ENABLED=true)"
            )
        tls = cls(
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_ca_file,
            settings.tls_server_name,
            clients,
        )
        # Unreadable files fail here, at start, not at the first call.
        for setting, path in (
            ("TLS_CERT_FILE", tls.cert_file),
            ("TLS_KEY_FILE", tls.key_file),
            ("TLS_CA_FILE", tls.ca_file),
        ):
            if path:
                _readable(setting, path)
        return tls

    @property
    def serves(self) -> bool:
        """Servers listen with TLS (a certificate and its key are given)."""
        return bool(self.cert_file)

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """For ``add_secure_port``; None: plaintext."""
        if not self.serves:
            return None
        return grpc.ssl_server_credentials(
            [(_readable("TLS_KEY_FILE", self.key_file), _readable("TLS_CERT_FILE", self.cert_file))]
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """For a secure channel, trusting TLS_CA_FILE or else the system
        roots; None: plaintext."""
        if not self.clients:
            return None
        roots = _readable("TLS_CA_FILE", self.ca_file) if self.ca_file else None
        return grpc.ssl_channel_credentials(root_certificates=roots)

    def https_context(self) -> ssl.SSLContext:
        """For an HTTPS client of the gateway: trusts TLS_CA_FILE, else the
        system's roots."""
        return ssl.create_default_context(cafile=self.ca_file or None)


def tls() -> Tls:
    """The process's TLS configuration (raises TlsConfigError)."""
    return Tls.from_settings(ClientSettings())
