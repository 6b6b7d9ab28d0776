"""rewards: grants by consumer, for the consumer's wallet page

Revision ID: 5b1e0c9d7a42
Revises: c78f141ec917
Create Date: 2026-12-07 16:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "5b1e0c9d7a42"
down_revision = "c78f141ec917"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The wallet lists a consumer's red packets: their own and the ones they claimed from a device.
    with op.batch_alter_table("rewards_grants", schema=None) as batch_op:
        batch_op.create_index("ix_rewards_grants_consumer", ["tenant_id", "consumer_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rewards_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_rewards_grants_consumer")
