"""orders and their events

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:45:49.394658
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("client_order_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_token", sa.String(length=16), nullable=False),
        sa.Column("output_token", sa.String(length=16), nullable=False),
        sa.Column("amount_in", sa.BigInteger(), nullable=False),
        sa.Column("slippage_bps", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("route", sa.JSON(), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("amount_out", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
        sa.UniqueConstraint("owner", "client_order_id", name="uq_orders_owner_client_order_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_owner_created", ["owner", "created_at", "order_id"], unique=False
        )
        batch_op.create_index("ix_orders_status_updated", ["status", "updated_at"], unique=False)

    op.create_table(
        "order_events",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name=op.f("fk_order_events_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "sequence", name=op.f("pk_order_events")),
    )


def downgrade() -> None:
    op.drop_table("order_events")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status_updated")
        batch_op.drop_index("ix_orders_owner_created")

    op.drop_table("orders")
