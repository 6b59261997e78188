"""The API key a client shows OrderService: ``authorization: Bearer <key>``
on every call. Given, or ORDERENGINE_API_KEY, or the key file make run
writes (ORDERENGINE_API_KEY_FILE, default var/api-key)."""

from __future__ import annotations

from pathlib import Path

from orderengine.client.settings import ClientSettings

AUTHORIZATION = "authorization"


class NoApiKey(ValueError):
    """No key was given and none is in the environment or the key file."""


def key_metadata(key: str) -> list[tuple[str, str]]:
    return [(AUTHORIZATION, f"Bearer {key}")]


def read_key_file(path: str | Path) -> str | None:
    """The key in ``path``, or None when there is no such file."""
    try:
        return Path(path).read_text().strip() or None
    except FileNotFoundError:
        return None


def find_api_key(settings: ClientSettings | None = None) -> str:
    """ORDERENGINE_API_KEY, else the key file's content; raises NoApiKey."""
    settings = settings or ClientSettings()
    key = settings.api_key or read_key_file(settings.api_key_file)
    if key is None:
        raise NoApiKey(
            f"no API key: set ORDERENGINE_API_KEY, or start make run (it writes "
            f"{settings.api_key_file}), or have one made on the engine's side with: "
            f"orderengine keys create NAME"
        )
    return key
