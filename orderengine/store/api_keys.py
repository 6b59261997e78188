"""API keys: created, listed and revoked with ``orderengine keys``, verified
by OrderService on every call (through a short cache).

A key is ``oe_`` and 32 random bytes (urlsafe base64). The database keeps
only its SHA-256: a key with 256 bits of entropy cannot be guessed or
brute-forced from its hash, so a slow password hash (bcrypt, argon2) would
buy nothing but a slower check on every call; those exist for low-entropy
secrets that people choose. The lookup is by the hash (an index), and the
found hash is compared again in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, or_, select, update

from orderengine.store.database import session_factory
from orderengine.store.models import ApiKeyRow

KEY_PREFIX = "oe_"
# What listings show of a key: "oe_" and 8 characters of its random part.
DISPLAY_CHARS = len(KEY_PREFIX) + 8
MAX_OWNER = 64
# A key that is longer than this is not one of ours (and is not hashed).
MAX_KEY_CHARS = 128


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display(key: str) -> str:
    """The part of a key that may be shown or logged."""
    return key[:DISPLAY_CHARS]


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    owner: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(row.key_id, row.owner, row.prefix, row.created_at, row.revoked_at)


class ApiKeys:
    """The api_keys table."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)

    def create(self, owner: str) -> tuple[str, KeyInfo]:
        """A new key for ``owner``: the key (shown once, never stored) and its record."""
        owner = owner.strip()
        if not owner or len(owner) > MAX_OWNER:
            raise ValueError(f"the owner name must be 1 to {MAX_OWNER} characters")
        key = generate()
        row = ApiKeyRow(
            key_id=str(uuid.uuid4()),
            owner=owner,
            key_hash=digest(key),
            prefix=display(key),
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return key, _info(row)

    def owner_of(self, key: str) -> str | None:
        """Whose key this is, or None for a key that is unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
            return None
        hashed = digest(key)
        with self._sessions() as session:
            row = session.scalars(
                select(ApiKeyRow).where(
                    ApiKeyRow.key_hash == hashed, ApiKeyRow.revoked_at.is_(None)
                )
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, hashed):
            return None
        return row.owner

    def all(self) -> list[KeyInfo]:
        with self._sessions() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
            return [_info(row) for row in rows]

    def revoke(self, prefix_or_id: str) -> list[KeyInfo]:
        """Revokes the key with this display prefix (or id); returns what it revoked."""
        now = datetime.now(UTC)
        match = or_(ApiKeyRow.prefix == prefix_or_id, ApiKeyRow.key_id == prefix_or_id)
        with self._sessions.begin() as session:
            rows = list(
                session.scalars(select(ApiKeyRow).where(match, ApiKeyRow.revoked_at.is_(None)))
            )
            if len(rows) > 1:
                raise ValueError(f"{prefix_or_id!r} names {len(rows)} keys; use the key id")
            session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.key_id.in_([r.key_id for r in rows]))
                .values(revoked_at=now)
            )
        return [KeyInfo(r.key_id, r.owner, r.prefix, r.created_at, now) for r in rows]


class KeyCache:
    """Verified keys remembered for ``ttl`` seconds, so that a client's
    calls cost no database query each. A revoked key is refused at most
    ``ttl`` after the revocation; unknown keys are never remembered (a new
    key works at once)."""

    MAX_ENTRIES = 10_000

    def __init__(self, keys: ApiKeys, ttl: float) -> None:
        self.keys = keys
        self.ttl = ttl
        self._known: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> str | None:
        """The owner if the key was verified within the TTL, else None."""
        entry = self._known.get(digest(key))
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    def verify(self, key: str) -> str | None:
        """The key's owner (asking the database unless cached), or None."""
        owner = self.cached(key)
        if owner is not None:
            return owner
        owner = self.keys.owner_of(key)
        if owner is not None and self.ttl > 0:
            with self._lock:
                if len(self._known) >= self.MAX_ENTRIES:
                    now = time.monotonic()
                    self._known = {k: v for k, v in self._known.items() if v[1] > now}
                    if len(self._known) >= self.MAX_ENTRIES:
                        self._known.clear()
                self._known[digest(key)] = (owner, time.monotonic() + self.ttl)
        return owner


def write_key_file(path: str | Path, key: str) -> None:
    """Writes ``key`` to ``path``, readable by its owner only (0600) from the
    first byte on."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w") as out:
        out.write(key + "\n")
