"""Ports on this machine, for what starts servers itself: make run, the
benchmark, the tests."""

from __future__ import annotations

import socket


def _socket(host: str) -> socket.socket:
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port``. A port whose last server just
    stopped (connections in TIME_WAIT) is free: the servers bind with
    SO_REUSEADDR, and so does this probe."""
    with _socket(host) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the caller binds it soon after)."""
    with _socket(host) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
