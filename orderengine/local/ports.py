"""Ports on this machine, for what starts servers itself: make run, the
benchmark, the tests."""

from __future__ import annotations

import random
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


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for port 0 and outgoing sockets."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


# Ports picked here lie below the kernel's ephemeral range, so a port picked
# now cannot be taken by another process's port-0 server (a metrics
# endpoint) or outgoing connection before its own server binds it.
_LOWEST = 10_000
# Ports given out or claimed: a server of this process (or one it starts)
# binds each soon, though nothing may listen on it yet.
_given: set[int] = set()


def claim(port: int) -> None:
    """A server this process starts will bind ``port`` (one configured, or
    given out by another process): free_port never gives it out."""
    _given.add(port)


def available(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` and this process has not given it out."""
    return port not in _given and port_is_free(host, port)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the caller binds it soon after), never
    one this process gave out or claimed before."""
    highest = _ephemeral_low() - 1
    if highest > _LOWEST:
        for _ in range(1_000):
            port = random.randint(_LOWEST, highest)
            if available(host, port):
                claim(port)
                return port
    with _socket(host) as probe:  # no room below the ephemeral range
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
