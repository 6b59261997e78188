"""``orderengine keys``: create, list and revoke API keys, on the engine's
database directly (DATABASE_URL; by default make run's file in the project).
The CLI runs each command through ``run``, which turns a database's failure
into the CLI's error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from orderengine.cli.errors import CommandError
from orderengine.cli.show import table
from orderengine.settings import Settings
from orderengine.store.api_keys import ApiKeys, KeyInfo
from orderengine.store.database import create_database_engine


class NoDatabase(CommandError):
    """``keys`` found no database to work on."""


def key_database_url(url: str, here: Path | None = None) -> str:
    """The database ``keys`` works on: ``url``, with a relative SQLite path
    (the default, var/orderengine.db) found in ``here`` or the nearest
    directory above it, as make run keeps it in the project. An SQLite file
    that is not there is an error, never made: keys in a new, empty database
    would reach no OrderService."""
    parsed = make_url(url)
    path = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not path
        or path == ":memory:"
        or parsed.query.get("uri")
    ):
        return url
    relative = Path(path)
    if relative.is_absolute():
        if not relative.is_file():
            raise NoDatabase(f"no database at {relative} (DATABASE_URL)")
        return url
    start = (here or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / relative).is_file():
            return parsed.set(database=str(directory / relative)).render_as_string(
                hide_password=False
            )
    raise NoDatabase(
        f"no database {relative} in {start} or above it: run this in the "
        f"project's directory (make run keeps its database in var/ there), "
        f"or set DATABASE_URL to the engine's database"
    )


def _keys() -> ApiKeys:
    return ApiKeys(create_database_engine(key_database_url(Settings().database_url)))


def database_error(exc: DBAPIError) -> str:
    url = Settings().database_url
    with suppress(NoDatabase):
        url = key_database_url(url)
    where = make_url(url).render_as_string(hide_password=True)
    said = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if "api_keys" in said:  # no such table (SQLite), does not exist (PostgreSQL)
        return (
            f"the database {where} has no api_keys table ({said}); bring it to the "
            f"newest schema with: python -m orderengine.store.migrate (make run does)"
        )
    return f"the database {where} failed: {said}"


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return command(args)
    except DBAPIError as exc:
        raise CommandError(database_error(exc)) from exc


def _aware(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back; the store writes UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(moment: datetime | None) -> str:
    """Local ISO time, as the CLI shows every time."""
    return _aware(moment).astimezone().isoformat(sep=" ", timespec="seconds") if moment else ""


def _utc(moment: datetime | None) -> str | None:
    """RFC 3339 UTC, as proto3 JSON writes a timestamp."""
    if moment is None:
        return None
    return _aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _as_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "keyId": info.key_id,
        "owner": info.owner,
        "prefix": info.prefix,
        "createTime": _utc(info.created_at),
        "revokeTime": _utc(info.revoked_at),
    }


def cmd_keys_create(args: argparse.Namespace) -> int:
    key, info = _keys().create(args.name)
    if args.json:
        print(json.dumps({"key": key, **_as_json(info)}, indent=2))
        return 0
    print(
        f"created key {info.prefix}... for {info.owner} (id {info.key_id}); it is shown only now:",
        file=sys.stderr,
    )
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = _keys().all()
    if args.json:
        print(json.dumps({"keys": [_as_json(info) for info in keys]}, indent=2))
        return 0
    if not keys:
        print("no keys yet: make one with  orderengine keys create NAME")
        return 0
    rows = [["key", "owner", "created", "state", "id"]]
    rows += [
        [
            f"{info.prefix}...",
            info.owner,
            _when(info.created_at),
            f"revoked {_when(info.revoked_at)}" if info.revoked_at else "active",
            info.key_id,
        ]
        for info in keys
    ]
    for line in table(rows, right=set()):
        print(line)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    revoked = _keys().revoke(args.prefix.removesuffix("..."))
    if not revoked:
        print(f"error: no active key {args.prefix!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"revoked": [_as_json(info) for info in revoked]}, indent=2))
        return 0
    for info in revoked:
        print(f"revoked {info.prefix}... of {info.owner}")
    return 0
