"""ORM models of touches, lifecycle, tags and segments. No name, phone or ID number is ever stored here:
the only personal facts are city, gender and birth date, which erasure clears."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned


class MemberTouch(TenantOwned, Base):
    """One contact with a member (a purchase, a verified scan, a guide's call, a message, an app visit).

    `(tenant, kind, ref)` is unique so that a producer retrying records one touch. `origin_member_id`
    is the member it was recorded for; `member_id` follows merges (and goes back when one is undone).
    """

    __tablename__ = "member_touches"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "ref"),
        Index("ix_member_touches_member", "tenant_id", "member_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    origin_member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str | None] = mapped_column(String(30), default=None)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberFacts(TenantOwned, Base):
    """What segments see of one member, one row each. `seq` is dense per brand (the member's bit in a
    segment's bitmap); `updated_at` moves only when a value changes, which is what incremental refresh
    looks for. `member_updated_at` is the member's `updated_at` the profile facts were read at."""

    __tablename__ = "member_facts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "member_id"),
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_member_facts_updated", "tenant_id", "updated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    seq: Mapped[int] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(default=True)
    city: Mapped[str | None] = mapped_column(String(80), default=None)
    gender: Mapped[str | None] = mapped_column(String(10), default=None)
    birth_date: Mapped[date | None] = mapped_column(Date, default=None)
    stage: Mapped[str] = mapped_column(String(12), default="new")
    stage_since: Mapped[date] = mapped_column(Date)
    recency_score: Mapped[int | None] = mapped_column(Integer, default=None)
    frequency_score: Mapped[int | None] = mapped_column(Integer, default=None)
    monetary_score: Mapped[int | None] = mapped_column(Integer, default=None)
    scans: Mapped[int] = mapped_column(Integer, default=0)
    purchases: Mapped[int] = mapped_column(Integer, default=0)
    spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    first_touch_at: Mapped[datetime | None] = mapped_column(default=None)
    last_touch_at: Mapped[datetime | None] = mapped_column(default=None)
    last_purchase_at: Mapped[datetime | None] = mapped_column(default=None)
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    member_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


DEFAULT_NEW_DAYS, DEFAULT_AT_RISK_DAYS, DEFAULT_DORMANT_DAYS, DEFAULT_CHURNED_DAYS = 30, 45, 90, 180


class MemberLifecycleSettings(TenantOwned, Base):
    """A brand's lifecycle thresholds (days without a touch), the last day the daily job ran, and the
    counter that hands out `member_facts.seq`."""

    __tablename__ = "member_lifecycle_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    new_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_NEW_DAYS)
    at_risk_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_AT_RISK_DAYS)
    dormant_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_DORMANT_DAYS)
    churned_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_CHURNED_DAYS)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    lifecycle_ran_on: Mapped[date | None] = mapped_column(Date, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberStageTransition(TenantOwned, Base):
    """A member moved from one lifecycle stage to another (append-only)."""

    __tablename__ = "member_stage_transitions"
    __table_args__ = (Index("ix_member_stage_transitions_member", "tenant_id", "member_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    from_stage: Mapped[str | None] = mapped_column(String(12), default=None)
    to_stage: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberTag(TenantOwned, Base):
    """A tag of a brand: `manual` (staff assign it) or `computed` (a CEL expression over facts)."""

    __tablename__ = "member_tags"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))
    expression: Mapped[str | None] = mapped_column(String(2000), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberTagAssignment(TenantOwned, Base):
    """A manual tag on a member."""

    __tablename__ = "member_tag_assignments"
    __table_args__ = (UniqueConstraint("tenant_id", "tag_id", "member_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    tag_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member_tags.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberTagLog(TenantOwned, Base):
    """Who assigned or removed a manual tag, and when (append-only)."""

    __tablename__ = "member_tag_log"
    __table_args__ = (Index("ix_member_tag_log_member", "tenant_id", "member_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    tag_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member_tags.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    action: Mapped[str] = mapped_column(String(10))  # assign | unassign
    actor_label: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberSegment(TenantOwned, Base):
    """A saved segment: its CEL expression and its members as a serialized roaring bitmap of `seq`.

    `refreshed_at` is the facts' time the bitmap reflects; `evaluated_on` the day that time-dependent
    facts (age, days since the last touch) were computed for.
    """

    __tablename__ = "member_segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    expression: Mapped[str] = mapped_column(String(2000))
    bitmap: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(default=None)
    evaluated_on: Mapped[date | None] = mapped_column(Date, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
