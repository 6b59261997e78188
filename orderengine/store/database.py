"""Engines and sessions: one code path for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_WRITE_LOCK = "orderengine.write_lock"
_WRITE_LOCKED = "orderengine.write_locked"


def _write_unlock(connection: Any) -> None:
    try:
        info = connection.info  # the pool's connection: its record's info
    except (AttributeError, NotImplementedError):  # one the pool does not keep (first connect)
        return
    if info.pop(_WRITE_LOCKED, False):
        fcntl.flock(info[_WRITE_LOCK], fcntl.LOCK_UN)


def _unlocking(end: Callable[[Any], None]) -> Callable[[Any], None]:
    """``end`` (the dialect's commit or rollback), then the write lock let go."""

    def ended(connection: Any) -> None:
        try:
            end(connection)
        finally:
            _write_unlock(connection)

    return ended


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here, not the psycopg2 default."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_database_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Every order and the API keys' hashes: readable by the owner only,
            # as the key file is. Made here, empty, since SQLite would make it
            # 0644; its -wal and -shm files take the database file's mode.
            # An existing file keeps the mode it has, and is not opened here:
            # closing any descriptor of a file drops every POSIX lock this
            # process holds on it, so a connection already open in this
            # process would look gone to the others, and the last of them to
            # close would delete the -wal and -shm under it. (A "file:" URI
            # names no plain path.)
            if not parsed.query.get("uri"):
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(parsed.database, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        # Several processes write one file: wait for the lock instead of
        # failing, and let readers run beside the writer (WAL). Writers queue
        # on a kernel lock (flock) beside the file first: SQLite's own wait
        # sleeps 1, 2, 5, 10, 15... ms between tries, so under load writers
        # slept past the moment the lock came free, and the unlucky starved.
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        lock_path = (
            f"{parsed.database}.write-lock"
            if parsed.database and parsed.database != ":memory:"
            else None
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # Transactions are begun below, as IMMEDIATE: a deferred one that
            # reads and then writes fails at once (SQLITE_BUSY) when another
            # process wrote in between, instead of waiting its turn.
            dbapi_connection.isolation_level = None
            if lock_path is not None:
                record.info[_WRITE_LOCK] = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

        @event.listens_for(engine, "close")
        def _close(_dbapi_connection: Any, record: Any) -> None:
            if _WRITE_LOCK in record.info:
                os.close(record.info.pop(_WRITE_LOCK))

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            # Readers need no lock under WAL: only a session made with
            # read_only=True (see reading()) begins DEFERRED.
            # The driver's own execute: BEGIN runs once a transaction, and
            # SQLAlchemy's statement machinery around it cost more than it.
            pooled = connection.connection
            if connection.get_execution_options().get("read_only", False):
                pooled.driver_connection.execute("BEGIN DEFERRED")
                return
            info = pooled.info
            if _WRITE_LOCK in info:
                fcntl.flock(info[_WRITE_LOCK], fcntl.LOCK_EX)
                info[_WRITE_LOCKED] = True
            try:
                pooled.driver_connection.execute("BEGIN IMMEDIATE")
            except BaseException:
                _write_unlock(connection.connection)
                raise

        # The write lock is let go once the transaction has ended, not
        # before (SQLAlchemy's commit event comes before the COMMIT).
        dialect = engine.dialect
        dialect.do_commit = _unlocking(dialect.do_commit)  # type: ignore[method-assign,assignment]
        dialect.do_rollback = _unlocking(dialect.do_rollback)  # type: ignore[method-assign,assignment]
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def reading(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: on SQLite they take no write lock."""
    return sessionmaker(engine.execution_options(read_only=True), expire_on_commit=False)
