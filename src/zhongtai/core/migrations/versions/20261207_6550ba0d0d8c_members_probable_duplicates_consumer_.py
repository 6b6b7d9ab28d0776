"""members: probable duplicates, consumer accounts of identifiers, scans by consumer

Revision ID: 6550ba0d0d8c
Revises: 3c9d4e5f6a71
Create Date: 2026-12-07 15:01:11.031466
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import zhongtai.core.models

revision = "6550ba0d0d8c"
down_revision = "3c9d4e5f6a71"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_duplicate_suggestions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_a_id", sa.Uuid(), nullable=False),
        sa.Column("member_b_id", sa.Uuid(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("match_weight", sa.Float(), nullable=False),
        sa.Column(
            "agreement", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("merge_id", sa.Uuid(), nullable=True),
        sa.Column("decided_by", sa.String(length=254), nullable=True),
        sa.Column("decided_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("found_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_a_id"], ["members.id"], name=op.f("fk_member_duplicate_suggestions_member_a_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["member_b_id"], ["members.id"], name=op.f("fk_member_duplicate_suggestions_member_b_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["merge_id"], ["member_merges.id"], name=op.f("fk_member_duplicate_suggestions_merge_id_member_merges")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_member_duplicate_suggestions_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_duplicate_suggestions")),
        sa.UniqueConstraint(
            "tenant_id",
            "member_a_id",
            "member_b_id",
            name=op.f("uq_member_duplicate_suggestions_tenant_id_member_a_id_member_b_id"),
        ),
    )
    with op.batch_alter_table("member_duplicate_suggestions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_member_duplicate_suggestions_status", ["tenant_id", "status", "probability"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_member_duplicate_suggestions_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("authenticity_scans", schema=None) as batch_op:
        batch_op.create_index(
            "ix_authenticity_scans_consumer",
            ["tenant_id", "consumer_id", "occurred_at"],
            unique=False,
            postgresql_where=sa.text("consumer_id IS NOT NULL"),
            sqlite_where=sa.text("consumer_id IS NOT NULL"),
        )

    with op.batch_alter_table("member_identifiers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_member_identifiers_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("member_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_identifiers_account_id"))
        batch_op.drop_column("account_id")

    with op.batch_alter_table("authenticity_scans", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_authenticity_scans_consumer",
            postgresql_where=sa.text("consumer_id IS NOT NULL"),
            sqlite_where=sa.text("consumer_id IS NOT NULL"),
        )

    with op.batch_alter_table("member_duplicate_suggestions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_duplicate_suggestions_tenant_id"))
        batch_op.drop_index("ix_member_duplicate_suggestions_status")

    op.drop_table("member_duplicate_suggestions")
