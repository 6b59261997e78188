"""order types: what a waiting order (limit, stop, twap) waits for, and until when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every order stored before is a market order: the default says so,
    # with no rewrite of the table.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("order_type", sa.String(length=16), nullable=False, server_default="market")
        )
        batch_op.add_column(sa.Column("min_amount_out", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("trigger_price", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("expire_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("twap_slices", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("twap_interval_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("twap_interval_ms")
        batch_op.drop_column("twap_slices")
        batch_op.drop_column("expire_at")
        batch_op.drop_column("trigger_price")
        batch_op.drop_column("min_amount_out")
        batch_op.drop_column("order_type")
