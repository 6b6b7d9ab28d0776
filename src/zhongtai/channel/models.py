"""ORM models of the channel: dealers, stores, shopping guides, partner accounts and their sessions.

Phone numbers are personal data: stored encrypted (`*_ciphertext`, AES-GCM), found through a keyed
hash (`*_hash`) and shown masked (`*_masked`). Nothing is deleted: dealers, stores and guides are
archived, so that past scans and rewards keep their partner.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.channel.rules import PARTNER_DEALER, PARTNER_GUIDE, PARTNER_ROLES, PARTNER_STORE
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

ACTIVE = "active"
ARCHIVED = "archived"
STATUSES = (ACTIVE, ARCHIVED)

__all__ = [
    "ACTIVE",
    "ARCHIVED",
    "PARTNER_DEALER",
    "PARTNER_GUIDE",
    "PARTNER_ROLES",
    "PARTNER_STORE",
    "STATUSES",
    "Dealer",
    "Guide",
    "PartnerAccount",
    "PartnerSession",
    "Store",
]


class _Phone:
    """An optional encrypted phone number."""

    phone_ciphertext: Mapped[str | None] = mapped_column(String(200), default=None)
    phone_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    phone_masked: Mapped[str | None] = mapped_column(String(32), default=None)


class Dealer(_Phone, TenantOwned, Base):
    """A dealer (经销商) and its territory: administrative region codes (province, city or county,
    GB/T 2260) and/or drawn polygons (lists of rings of [lon, lat], WGS-84, GeoJSON order)."""

    __tablename__ = "channel_dealers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_channel_dealers_tenant_name", "tenant_id", "name"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(80), default="")
    territory_region_codes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    territory_polygons: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(12), default=ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_archived(self) -> bool:
        return self.status == ARCHIVED

    @property
    def has_territory(self) -> bool:
        return bool(self.territory_region_codes or self.territory_polygons)


class Store(_Phone, TenantOwned, Base):
    """A store (门店/终端) supplied by one dealer. Its WGS-84 location resolves offline to the
    province, city and county it lies in."""

    __tablename__ = "channel_stores"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_channel_stores_tenant_name", "tenant_id", "name"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
        CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="location_complete"),
        CheckConstraint("latitude IS NULL OR (latitude BETWEEN -90 AND 90)", name="latitude_range"),
        CheckConstraint("longitude IS NULL OR (longitude BETWEEN -180 AND 180)", name="longitude_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    dealer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channel_dealers.id", ondelete="RESTRICT"), index=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    contact_name: Mapped[str] = mapped_column(String(80), default="")
    latitude: Mapped[float | None] = mapped_column(Float, default=None)
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    province_code: Mapped[str | None] = mapped_column(String(6), default=None)
    city_code: Mapped[str | None] = mapped_column(String(6), default=None)
    county_code: Mapped[str | None] = mapped_column(String(6), default=None)
    status: Mapped[str] = mapped_column(String(12), default=ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_archived(self) -> bool:
        return self.status == ARCHIVED

    @property
    def region_codes(self) -> list[str]:
        codes: list[str] = []
        for code in (self.province_code, self.city_code, self.county_code):
            if code and code not in codes:  # a municipality is its own city (110000)
                codes.append(code)
        return codes


class Guide(_Phone, TenantOwned, Base):
    """A shopping guide (导购) of one store. One guide per phone number in a brand."""

    __tablename__ = "channel_guides"
    __table_args__ = (
        UniqueConstraint("tenant_id", "phone_hash"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channel_stores.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default=ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_archived(self) -> bool:
        return self.status == ARCHIVED


class PartnerAccount(TenantOwned, Base):
    """The sign-in of a dealer's staff member, a store clerk or a guide: one per phone number in a
    brand. It points at the dealer, the store, or the guide (and the guide's store) it acts for."""

    __tablename__ = "channel_partner_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "phone_hash"),
        CheckConstraint("role IN ('dealer', 'store', 'guide')", name="role_known"),
        CheckConstraint(
            "(role = 'dealer' AND dealer_id IS NOT NULL AND store_id IS NULL AND guide_id IS NULL)"
            " OR (role = 'store' AND store_id IS NOT NULL AND guide_id IS NULL)"
            " OR (role = 'guide' AND guide_id IS NOT NULL AND store_id IS NOT NULL)",
            name="role_target",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    role: Mapped[str] = mapped_column(String(12))
    display_name: Mapped[str] = mapped_column(String(80))
    phone_ciphertext: Mapped[str] = mapped_column(String(200))
    phone_hash: Mapped[str] = mapped_column(String(64))
    phone_masked: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    dealer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channel_dealers.id", ondelete="RESTRICT"), index=True, default=None
    )
    store_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channel_stores.id", ondelete="RESTRICT"), index=True, default=None
    )
    guide_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channel_guides.id", ondelete="RESTRICT"), index=True, default=None
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class PartnerSession(TenantOwned, Base):
    """A partner's bearer token (`ztp_…`); only its SHA-256 is stored."""

    __tablename__ = "channel_partner_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channel_partner_accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
