"""The tables. The database is the truth; Redis only buffers and fans out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from orderengine.v1 import market_pb2

# Named constraints, so that migrations are the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class U64(TypeDecorator[int]):
    """A u64 (an amount in base units) in a signed 64-bit BIGINT: its bits,
    two's complement, so the column holds every u64 exactly on SQLite and
    PostgreSQL without a schema change, and values below 2**63 (every row
    written before) read the same. The database sees the signed value: no
    SQL may compare, order or sum these columns."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not 0 <= value < 2**64:
            raise ValueError(f"{value} is not a u64")
        return value - 2**64 if value >= 2**63 else value

    def process_result_value(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return value + 2**64 if value < 0 else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # AIP-155: one order per owner and client_order_id, also under races.
        UniqueConstraint("owner", "client_order_id", name="uq_orders_owner_client_order_id"),
        # ListOrders: the owner's orders, newest first.
        Index("ix_orders_owner_created", "owner", "created_at", "order_id"),
        # The reconciler: non-terminal orders by age.
        Index("ix_orders_status_updated", "status", "updated_at"),
    )

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    input_token: Mapped[str] = mapped_column(String(16))
    output_token: Mapped[str] = mapped_column(String(16))
    # Base units of the input token.
    amount_in: Mapped[int] = mapped_column(U64)
    slippage_bps: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    last_sequence: Mapped[int] = mapped_column(Integer)
    # The current attempt's route, once ROUTED: serialized proto in route_pb
    # (parsing proto JSON cost more CPU than the rest of a read). ``route``
    # holds it as proto JSON in rows written before route_pb existed; the
    # next change of such an order moves it to route_pb.
    route: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    route_pb: Mapped[bytes | None] = mapped_column(LargeBinary)
    signature: Mapped[str | None] = mapped_column(String(128))
    # Base units of the output token, once CONFIRMED.
    amount_out: Mapped[int | None] = mapped_column(U64)
    failure_reason: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Lamports each processed attempt pays on top of the network fee (at
    # most 1 SOL, orderengine.fees: a plain BIGINT holds it).
    priority_fee: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ApiKeyRow(Base):
    """An API key: who it belongs to, and only a hash of it (never the key)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # The lookup on every uncached call: by the key's hash.
        UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Whose orders the key reaches (``orderengine keys create NAME``).
    owner: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the key, hex.
    key_hash: Mapped[str] = mapped_column(String(64))
    # The key's first characters, to tell keys apart in listings and logs.
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    __tablename__ = "order_events"

    order_id: Mapped[str] = mapped_column(
        ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True
    )
    # 1, 2, 3 ... per order; the primary key makes a duplicate impossible.
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The whole OrderEvent, what the step produced, as serialized proto;
    # events written before event_pb existed have it as proto JSON in
    # ``event`` instead.
    event: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    event_pb: Mapped[bytes | None] = mapped_column(LargeBinary)


@dataclass(slots=True)
class StoredOrder:
    """An order as read or written by the store: a plain object, not a
    mapped one (building ORM instances cost more than the SQL they came
    from). Fields as OrderRow's columns, with the route as a message."""

    order_id: str
    owner: str
    client_order_id: str | None
    status: str
    input_token: str
    output_token: str
    amount_in: int
    slippage_bps: int
    attempt: int
    last_sequence: int
    route: market_pb2.Route | None
    signature: str | None
    amount_out: int | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    # Lamports on top of the network fee, per processed attempt.
    priority_fee: int = 0
