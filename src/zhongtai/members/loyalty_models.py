"""ORM models of loyalty: programs and their tiers, memberships, earning rules, points lots, sign-ins.

Points balances live in the ledger (one `points` account per member); these tables say where each
point came from (a lot per earning, unique per rule and source) and what is left of it, which is
what FIFO spending, expiry, refunds and merges work on. None of them holds personal data.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned


class LoyaltyProgram(TenantOwned, Base):
    """A brand's membership program, for every channel (`channel` None) or one channel.

    `qualify_by` is `points` (points earned) or `spend` (fen paid) over the last `period_days`;
    `downgrade_mode` is `period_end` (a tier holds until its period ends) or `rolling` (re-evaluated
    every day). Upgrades always apply at once.
    """

    __tablename__ = "loyalty_programs"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str | None] = mapped_column(String(40), default=None)
    qualify_by: Mapped[str] = mapped_column(String(10), default="points")
    period_days: Mapped[int] = mapped_column(Integer, default=365)
    downgrade_mode: Mapped[str] = mapped_column(String(12), default="period_end")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoyaltyTier(TenantOwned, Base):
    """A tier of a program: reached at `threshold` (points or fen, per the program), with its benefits."""

    __tablename__ = "loyalty_tiers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "program_id", "rank"),
        UniqueConstraint("tenant_id", "program_id", "code"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    program_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loyalty_programs.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(80))
    rank: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(BigInteger)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points off a price: 500 = 5 %
    birthday_gift: Mapped[bool] = mapped_column(Boolean, default=False)
    free_shipping: Mapped[bool] = mapped_column(Boolean, default=False)


class LoyaltyMembership(TenantOwned, Base):
    """A member in a program, at a tier since `tier_since`; the tier holds until `period_ends_at`."""

    __tablename__ = "loyalty_memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "program_id", "member_id"),
        Index("ix_loyalty_memberships_member", "tenant_id", "member_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    program_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loyalty_programs.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    tier_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loyalty_tiers.id"), default=None)
    tier_since: Mapped[datetime] = mapped_column(default=utcnow)
    period_ends_at: Mapped[datetime | None] = mapped_column(default=None)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsRule(TenantOwned, Base):
    """How many points an earning `kind` gives in this brand, and when they expire.

    `points` is per occurrence, or per yuan paid for `purchase`; `streak_bonus` adds that many per
    consecutive sign-in day (up to `streak_cap` days). Expiry is `next_year_end` (end of the calendar
    year after the earning, China time) or `days` (`expiry_days` after the earning).
    """

    __tablename__ = "points_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "kind"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))
    points: Mapped[int] = mapped_column(Integer)
    streak_bonus: Mapped[int] = mapped_column(Integer, default=0)
    streak_cap: Mapped[int] = mapped_column(Integer, default=7)
    expiry: Mapped[str] = mapped_column(String(16), default="next_year_end")
    expiry_days: Mapped[int | None] = mapped_column(Integer, default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsLot(TenantOwned, Base):
    """The points one earning gave (`amount`) and what is left of them (`remaining`).

    `(tenant, rule, source)` is unique: one source (a bottle, an order, a day's sign-in) earns once
    per rule. `qualifying_fen` is the spend the earning stands for (purchases), counted by tiers that
    qualify on spend — also when it earned no points (a lot of 0 with no ledger entry). A refund sets
    `reversed_at`, takes back `reversed_amount` and records what it could not take back as
    `shortfall`; expiry sets `expired_amount`.
    """

    __tablename__ = "points_lots"
    __table_args__ = (
        UniqueConstraint("tenant_id", "rule", "source"),
        Index("ix_points_lots_member", "tenant_id", "member_id", "expires_at"),
        Index("ix_points_lots_expiry", "tenant_id", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)  # None: a purchase that earned 0
    rule: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(120))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    qualifying_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    expired_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_at: Mapped[datetime | None] = mapped_column(default=None)
    reversed_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    shortfall: Mapped[int] = mapped_column(BigInteger, default=0)


class PointsSignIn(TenantOwned, Base):
    """A member's daily sign-in (China calendar day) and the streak it continued."""

    __tablename__ = "points_sign_ins"
    __table_args__ = (UniqueConstraint("tenant_id", "member_id", "day"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    day: Mapped[date] = mapped_column(Date)
    streak: Mapped[int] = mapped_column(Integer)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
