"""members: consent per purpose (append-only history) and the record of erasures

Revision ID: 3c9d4e5f6a71
Revises: 85f6a2117449
Create Date: 2026-12-07 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import zhongtai.core.models

revision = "3c9d4e5f6a71"
down_revision = "85f6a2117449"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("text_version", sa.String(length=40), nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("recorded_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_consents_member_id_members")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_consents_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_consents")),
    )
    with op.batch_alter_table("member_consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_member_consents_member", ["tenant_id", "member_id", "purpose", "recorded_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_member_consents_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_erasures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.String(length=12), nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column(
            "summary", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("erased_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_erasures_member_id_members")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_erasures_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_erasures")),
        sa.UniqueConstraint("tenant_id", "member_id", name=op.f("uq_member_erasures_tenant_id_member_id")),
    )
    with op.batch_alter_table("member_erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_erasures_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("member_erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_erasures_tenant_id"))
    op.drop_table("member_erasures")
    with op.batch_alter_table("member_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_consents_tenant_id"))
        batch_op.drop_index("ix_member_consents_member")
    op.drop_table("member_consents")
