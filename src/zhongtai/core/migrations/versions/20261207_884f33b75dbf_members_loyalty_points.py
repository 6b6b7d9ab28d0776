"""members: loyalty programs, tiers, memberships, points rules, lots and sign-ins

Revision ID: 884f33b75dbf
Revises: 6550ba0d0d8c
Create Date: 2026-12-07 14:57:03.635835
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhongtai.core.models

revision = "884f33b75dbf"
down_revision = "6550ba0d0d8c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loyalty_programs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("qualify_by", sa.String(length=10), nullable=False),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("downgrade_mode", sa.String(length=12), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_loyalty_programs_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_programs")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_loyalty_programs_tenant_id_code")),
    )
    with op.batch_alter_table("loyalty_programs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_programs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "points_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("streak_bonus", sa.Integer(), nullable=False),
        sa.Column("streak_cap", sa.Integer(), nullable=False),
        sa.Column("expiry", sa.String(length=16), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_points_rules_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_rules")),
        sa.UniqueConstraint("tenant_id", "kind", name=op.f("uq_points_rules_tenant_id_kind")),
    )
    with op.batch_alter_table("points_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_points_rules_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "loyalty_tiers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("discount_bp", sa.Integer(), nullable=False),
        sa.Column("birthday_gift", sa.Boolean(), nullable=False),
        sa.Column("free_shipping", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["loyalty_programs.id"], name=op.f("fk_loyalty_tiers_program_id_loyalty_programs")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_loyalty_tiers_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_tiers")),
        sa.UniqueConstraint("tenant_id", "program_id", "code", name=op.f("uq_loyalty_tiers_tenant_id_program_id_code")),
        sa.UniqueConstraint("tenant_id", "program_id", "rank", name=op.f("uq_loyalty_tiers_tenant_id_program_id_rank")),
    )
    with op.batch_alter_table("loyalty_tiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_tiers_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "points_lots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("qualifying_fen", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expired_amount", sa.BigInteger(), nullable=False),
        sa.Column("reversed_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reversed_amount", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_points_lots_member_id_members")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_points_lots_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_lots")),
        sa.UniqueConstraint("tenant_id", "rule", "source", name=op.f("uq_points_lots_tenant_id_rule_source")),
    )
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.create_index("ix_points_lots_expiry", ["tenant_id", "expires_at"], unique=False)
        batch_op.create_index("ix_points_lots_member", ["tenant_id", "member_id", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_points_lots_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "points_sign_ins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("signed_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_points_sign_ins_member_id_members")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_points_sign_ins_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_sign_ins")),
        sa.UniqueConstraint("tenant_id", "member_id", "day", name=op.f("uq_points_sign_ins_tenant_id_member_id_day")),
    )
    with op.batch_alter_table("points_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_points_sign_ins_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "loyalty_memberships",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("tier_id", sa.Uuid(), nullable=True),
        sa.Column("tier_since", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_ends_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("joined_at", zhongtai.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_loyalty_memberships_member_id_members")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["loyalty_programs.id"], name=op.f("fk_loyalty_memberships_program_id_loyalty_programs")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_loyalty_memberships_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"], ["loyalty_tiers.id"], name=op.f("fk_loyalty_memberships_tier_id_loyalty_tiers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_memberships")),
        sa.UniqueConstraint(
            "tenant_id", "program_id", "member_id", name=op.f("uq_loyalty_memberships_tenant_id_program_id_member_id")
        ),
    )
    with op.batch_alter_table("loyalty_memberships", schema=None) as batch_op:
        batch_op.create_index("ix_loyalty_memberships_member", ["tenant_id", "member_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_loyalty_memberships_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("loyalty_memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_memberships_tenant_id"))
        batch_op.drop_index("ix_loyalty_memberships_member")

    op.drop_table("loyalty_memberships")
    with op.batch_alter_table("points_sign_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_points_sign_ins_tenant_id"))

    op.drop_table("points_sign_ins")
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_points_lots_tenant_id"))
        batch_op.drop_index("ix_points_lots_member")
        batch_op.drop_index("ix_points_lots_expiry")

    op.drop_table("points_lots")
    with op.batch_alter_table("loyalty_tiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_tiers_tenant_id"))

    op.drop_table("loyalty_tiers")
    with op.batch_alter_table("points_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_points_rules_tenant_id"))

    op.drop_table("points_rules")
    with op.batch_alter_table("loyalty_programs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_programs_tenant_id"))

    op.drop_table("loyalty_programs")
