"""ORM models of members: verified real-name identities and OneID (members, identifiers, merges)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned


class MemberIdentity(TenantOwned, Base):
    """One verified identity per consumer account and one account per identity, per brand.

    The resident ID number and the name are encrypted; `id_hash` (keyed HMAC) is what the unique
    constraint sees, so two accounts cannot claim one identity even when they race.
    """

    __tablename__ = "member_identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "consumer_id"),
        UniqueConstraint("tenant_id", "id_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    consumer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consumers.id", ondelete="CASCADE"))
    id_ciphertext: Mapped[str] = mapped_column(String(200))
    id_hash: Mapped[str] = mapped_column(String(64))
    id_masked: Mapped[str] = mapped_column(String(24))
    name_ciphertext: Mapped[str] = mapped_column(String(300))
    name_masked: Mapped[str] = mapped_column(String(40))
    birth_date: Mapped[date] = mapped_column(Date)
    region_code: Mapped[str] = mapped_column(String(6))
    verifier: Mapped[str] = mapped_column(String(40))
    verifier_reference: Mapped[str] = mapped_column(String(80))
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)


class Member(TenantOwned, Base):
    """One person of a brand (OneID). `status` is `active`, `merged` (into `merged_into_id`) or `erased`.

    `profile` maps a field (name, birthday, gender, city) to its surviving value with its source,
    `verified` flag and time; the name is kept encrypted with a masked copy.
    """

    __tablename__ = "members"
    # The brand's members newest first (the console's list) — and, by its prefix, every tenant look-up,
    # so the mixin's own tenant index is not kept as well.
    __table_args__ = (Index("ix_members_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False)
    status: Mapped[str] = mapped_column(String(12), default="active")
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.id"), default=None)
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberIdentifier(TenantOwned, Base):
    """An identifier of a member. `(tenant, type, value_hash)` is unique, so one identifier belongs to
    one member even when two links race; the value is hashed with the installation's lookup key."""

    __tablename__ = "member_identifiers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "type", "value_hash"),
        Index("ix_member_identifiers_member", "tenant_id", "member_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # No separate tenant index: the unique (tenant_id, type, value_hash) index serves tenant look-ups,
    # and one index less is felt when millions of identifiers are loaded in bulk.
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    type: Mapped[str] = mapped_column(String(30))
    value_hash: Mapped[str] = mapped_column(String(64))
    value_ciphertext: Mapped[str | None] = mapped_column(String(300), default=None)
    value_masked: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # The consumer account a `consumer_account` identifier names (an internal id, not personal data):
    # what the member's scans, orders and rewards are found by (always from the member: no index of
    # its own). Erasure deletes the row with the rest.
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberMerge(TenantOwned, Base):
    """A merge of `merged_id` into `survivor_id`, with what is needed to undo it."""

    __tablename__ = "member_merges"
    __table_args__ = (Index("ix_member_merges_members", "tenant_id", "survivor_id", "merged_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    survivor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    merged_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    actor_label: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(300))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)
    undone_by: Mapped[str | None] = mapped_column(String(254), default=None)
    undo_reason: Mapped[str | None] = mapped_column(String(300), default=None)


class MemberBlockedIdentifier(TenantOwned, Base):
    """A value never used to match or merge (a store's counter phone, a test account), kept hashed."""

    __tablename__ = "member_blocked_identifiers"
    __table_args__ = (UniqueConstraint("tenant_id", "type", "value_hash"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(30))
    value_hash: Mapped[str] = mapped_column(String(64))
    value_masked: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberOneIdSettings(TenantOwned, Base):
    """A brand's own caps per identifier type, over the defaults (`oneid_rules.DEFAULT_CAPS`)."""

    __tablename__ = "member_oneid_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    caps: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberConsent(TenantOwned, Base):
    """One decision of a member about one purpose (granted or withdrawn), append-only: the latest row
    of a member and purpose is the current state, the earlier ones its history."""

    __tablename__ = "member_consents"
    __table_args__ = (Index("ix_member_consents_member", "tenant_id", "member_id", "purpose", "recorded_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    purpose: Mapped[str] = mapped_column(String(30))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(20))
    text_version: Mapped[str] = mapped_column(String(40))
    actor_kind: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberErasure(TenantOwned, Base):
    """The record that a member's personal data was erased: who, when, why and how much — no personal
    data. One per erased member; `members` lists every member record of the person that was erased."""

    __tablename__ = "member_erasures"
    __table_args__ = (UniqueConstraint("tenant_id", "member_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    requested_by: Mapped[str] = mapped_column(String(12))  # member | staff
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_label: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(300))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
