"""events and routes as serialized proto: event_pb, route_pb; event JSON only in old rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Old rows keep their proto JSON and are read from it: no rewrite of a
    # large table here.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route_pb", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_pb", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("event", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    # Refused rather than lossy: events and routes written since are in the
    # columns this would drop.
    raise NotImplementedError("0003 cannot be undone without losing events")
