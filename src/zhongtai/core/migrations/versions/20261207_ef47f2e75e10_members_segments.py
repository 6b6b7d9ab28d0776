"""members: touches, facts, lifecycle stages, tags and segments

Revision ID: ef47f2e75e10
Revises: 884f33b75dbf
Create Date: 2026-12-07 14:59:03.193143
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import zhongtai.core.models

revision = "ef47f2e75e10"
down_revision = "884f33b75dbf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_lifecycle_settings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("new_days", sa.Integer(), nullable=False),
        sa.Column("at_risk_days", sa.Integer(), nullable=False),
        sa.Column("dormant_days", sa.Integer(), nullable=False),
        sa.Column("churned_days", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("lifecycle_ran_on", sa.Date(), nullable=True),
        sa.Column("updated_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_member_lifecycle_settings_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_lifecycle_settings")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_member_lifecycle_settings_tenant_id")),
    )
    with op.batch_alter_table("member_lifecycle_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_lifecycle_settings_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_segments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("expression", sa.String(length=2000), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("evaluated_on", sa.Date(), nullable=True),
        sa.Column("created_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_segments_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_segments")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_member_segments_tenant_id_name")),
    )
    with op.batch_alter_table("member_segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_segments_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_tags",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("expression", sa.String(length=2000), nullable=True),
        sa.Column("created_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_tags_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_tags")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_member_tags_tenant_id_name")),
    )
    with op.batch_alter_table("member_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_tags_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_facts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("city", sa.String(length=80), nullable=True),
        sa.Column("gender", sa.String(length=10), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("stage", sa.String(length=12), nullable=False),
        sa.Column("stage_since", sa.Date(), nullable=False),
        sa.Column("recency_score", sa.Integer(), nullable=True),
        sa.Column("frequency_score", sa.Integer(), nullable=True),
        sa.Column("monetary_score", sa.Integer(), nullable=True),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("spend_fen", sa.BigInteger(), nullable=False),
        sa.Column("first_touch_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_touch_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_purchase_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "channels", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False),
        sa.Column("joined_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("member_updated_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_facts_member_id_members")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_facts_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_facts")),
        sa.UniqueConstraint("tenant_id", "member_id", name=op.f("uq_member_facts_tenant_id_member_id")),
        sa.UniqueConstraint("tenant_id", "seq", name=op.f("uq_member_facts_tenant_id_seq")),
    )
    with op.batch_alter_table("member_facts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_facts_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_member_facts_updated", ["tenant_id", "updated_at"], unique=False)

    op.create_table(
        "member_stage_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage", sa.String(length=12), nullable=True),
        sa.Column("to_stage", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=False),
        sa.Column("at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_member_stage_transitions_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_member_stage_transitions_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_stage_transitions")),
    )
    with op.batch_alter_table("member_stage_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_member_stage_transitions_member", ["tenant_id", "member_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_member_stage_transitions_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_tag_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tag_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("assigned_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_member_tag_assignments_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["member_tags.id"], name=op.f("fk_member_tag_assignments_tag_id_member_tags")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_tag_assignments_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_tag_assignments")),
        sa.UniqueConstraint(
            "tenant_id", "tag_id", "member_id", name=op.f("uq_member_tag_assignments_tenant_id_tag_id_member_id")
        ),
    )
    with op.batch_alter_table("member_tag_assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_tag_assignments_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_tag_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tag_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_tag_log_member_id_members")),
        sa.ForeignKeyConstraint(["tag_id"], ["member_tags.id"], name=op.f("fk_member_tag_log_tag_id_member_tags")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_tag_log_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_tag_log")),
    )
    with op.batch_alter_table("member_tag_log", schema=None) as batch_op:
        batch_op.create_index("ix_member_tag_log_member", ["tenant_id", "member_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_member_tag_log_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "member_touches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("origin_member_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=30), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_touches_member_id_members")),
        sa.ForeignKeyConstraint(
            ["origin_member_id"], ["members.id"], name=op.f("fk_member_touches_origin_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_touches_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_touches")),
        sa.UniqueConstraint("tenant_id", "kind", "ref", name=op.f("uq_member_touches_tenant_id_kind_ref")),
    )
    with op.batch_alter_table("member_touches", schema=None) as batch_op:
        batch_op.create_index("ix_member_touches_member", ["tenant_id", "member_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_member_touches_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("member_touches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_touches_tenant_id"))
        batch_op.drop_index("ix_member_touches_member")

    op.drop_table("member_touches")
    with op.batch_alter_table("member_tag_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_tag_log_tenant_id"))
        batch_op.drop_index("ix_member_tag_log_member")

    op.drop_table("member_tag_log")
    with op.batch_alter_table("member_tag_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_tag_assignments_tenant_id"))

    op.drop_table("member_tag_assignments")
    with op.batch_alter_table("member_stage_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_stage_transitions_tenant_id"))
        batch_op.drop_index("ix_member_stage_transitions_member")

    op.drop_table("member_stage_transitions")
    with op.batch_alter_table("member_facts", schema=None) as batch_op:
        batch_op.drop_index("ix_member_facts_updated")
        batch_op.drop_index(batch_op.f("ix_member_facts_tenant_id"))

    op.drop_table("member_facts")
    with op.batch_alter_table("member_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_tags_tenant_id"))

    op.drop_table("member_tags")
    with op.batch_alter_table("member_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_segments_tenant_id"))

    op.drop_table("member_segments")
    with op.batch_alter_table("member_lifecycle_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_lifecycle_settings_tenant_id"))

    op.drop_table("member_lifecycle_settings")
