"""lottery stores name their channel store; stock carries the price a winner pays

Revision ID: 5b1c0e7a9d21
Revises: d8cc756484e8
Create Date: 2026-12-05 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5b1c0e7a9d21"
down_revision = "d8cc756484e8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lottery_stores") as batch:
        batch.add_column(sa.Column("channel_store_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("lottery_stock") as batch:
        batch.add_column(sa.Column("price_fen", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("lottery_stock") as batch:
        batch.drop_column("price_fen")
    with op.batch_alter_table("lottery_stores") as batch:
        batch.drop_column("channel_store_id")
