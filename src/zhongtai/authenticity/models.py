"""ORM models of authenticity: one row per consumer check of a code, a summary per code, clone alerts
and each brand's authenticity settings.

`authenticity_scans` is append-only and written on the consumer's hot path, so it is narrow, carries
no foreign keys (the service is its only writer) and is indexed for the two ways it is read: one
code's history (`tenant_id, code_id, occurred_at`) and per-day aggregates of a brand
(`tenant_id, occurred_at`). Product and province are copied onto the row so that "scans per product
per province per day" needs no join with `codes`.

No raw network address is stored: `network_hash` and `client_hash` are keyed hashes
(`Crypto.lookup_hash`), enough to tell "the same client again" and to rate-limit, not to locate anyone.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, SmallInteger, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

# Scan kinds.
KIND_VIEW = "view"  # the visible code was opened (no PIN)
KIND_PIN_OK = "pin_ok"  # the hidden PIN was entered and matched
KIND_PIN_BAD = "pin_bad"  # a wrong PIN was entered
KINDS = (KIND_VIEW, KIND_PIN_OK, KIND_PIN_BAD)

# Verdicts (see rules.py for how each is reached).
GENUINE = "genuine"
VERIFIED_BEFORE = "verified_before"
SUSPICIOUS = "suspicious"
WRONG_PIN = "wrong_pin"
LOCKED = "locked"
VERDICTS = (GENUINE, VERIFIED_BEFORE, SUSPICIOUS, WRONG_PIN, LOCKED)

# Why a verdict is suspicious.
REASON_NOT_COMMISSIONED = "not_commissioned"
REASON_VOIDED = "voided"
REASON_TOO_MANY = "too_many"
REASON_CLONE = "clone"
REASONS = (REASON_NOT_COMMISSIONED, REASON_VOIDED, REASON_TOO_MANY, REASON_CLONE)

# User-agent classes (a coarse bucket, never the raw header).
UA_WECHAT, UA_ALIPAY, UA_MOBILE, UA_DESKTOP, UA_BOT, UA_OTHER = "wechat", "alipay", "mobile", "desktop", "bot", "other"
UA_CLASSES = (UA_WECHAT, UA_ALIPAY, UA_MOBILE, UA_DESKTOP, UA_BOT, UA_OTHER)

# Clone alert lifecycle.
ALERT_OPEN, ALERT_INVESTIGATING, ALERT_CONFIRMED, ALERT_DISMISSED = "open", "investigating", "confirmed", "dismissed"
ALERT_STATUSES = (ALERT_OPEN, ALERT_INVESTIGATING, ALERT_CONFIRMED, ALERT_DISMISSED)


class Scan(TenantOwned, Base):
    """One consumer check of one code: opening its page (view) or entering its PIN."""

    __tablename__ = "authenticity_scans"
    __table_args__ = (
        Index("ix_authenticity_scans_code_time", "tenant_id", "code_id", "occurred_at"),
        Index("ix_authenticity_scans_tenant_time", "tenant_id", "occurred_at"),
        # A member's scans (the member's 360 view, "my bottles"): only signed-in scans carry a consumer,
        # so the partial index stays small and costs nothing on the anonymous hot path.
        Index(
            "ix_authenticity_scans_consumer",
            "tenant_id",
            "consumer_id",
            "occurred_at",
            postgresql_where=text("consumer_id IS NOT NULL"),
            sqlite_where=text("consumer_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # no foreign key: hot-path append (see docstring)
    code_id: Mapped[int] = mapped_column(BigInteger)
    serial: Mapped[str] = mapped_column(String(20))  # the code's key: serial (AI 21) or SSCC (AI 00)
    gtin: Mapped[str | None] = mapped_column(String(14), default=None)
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    kind: Mapped[str] = mapped_column(String(8))
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)  # None for a view
    reason: Mapped[str | None] = mapped_column(String(20), default=None)  # why suspicious
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    # WGS-84 as the browser's Geolocation API gives it; absent unless the consumer allowed it.
    latitude: Mapped[float | None] = mapped_column(Float, default=None)
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    # GB/T 2260 division codes resolved offline from the coordinates.
    province_code: Mapped[str | None] = mapped_column(String(6), default=None)
    city_code: Mapped[str | None] = mapped_column(String(6), default=None)
    city_name: Mapped[str | None] = mapped_column(String(40), default=None)
    network_hash: Mapped[str | None] = mapped_column(String(32), default=None)
    client_hash: Mapped[str | None] = mapped_column(String(32), default=None)
    consumer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    ua_class: Mapped[str] = mapped_column(String(8), default=UA_OTHER)
    verification_number: Mapped[int | None] = mapped_column(Integer, default=None)  # 1 = first PIN check


class CodeSummary(TenantOwned, Base):
    """Per code: its first and latest successful PIN verification and counts, kept in step with the
    scans by one atomic upsert per check (no read-modify-write)."""

    __tablename__ = "authenticity_code_summaries"

    code_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    verify_count: Mapped[int] = mapped_column(Integer, default=0)  # PIN matched
    wrong_pin_count: Mapped[int] = mapped_column(Integer, default=0)
    first_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    first_scan_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    first_latitude: Mapped[float | None] = mapped_column(Float, default=None)
    first_longitude: Mapped[float | None] = mapped_column(Float, default=None)
    first_province_code: Mapped[str | None] = mapped_column(String(6), default=None)
    first_city_code: Mapped[str | None] = mapped_column(String(6), default=None)
    first_city_name: Mapped[str | None] = mapped_column(String(40), default=None)
    last_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    last_scan_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The latest verification that carried a location: the clone check compares against it.
    last_located_at: Mapped[datetime | None] = mapped_column(default=None)
    last_located_scan_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_latitude: Mapped[float | None] = mapped_column(Float, default=None)
    last_longitude: Mapped[float | None] = mapped_column(Float, default=None)
    suspicious_reason: Mapped[str | None] = mapped_column(String(20), default=None)  # sticky: clone
    suspicious_since: Mapped[datetime | None] = mapped_column(default=None)


class CloneAlert(TenantOwned, Base):
    """One code verified at two places too far apart for the time between: the evidence for the operator."""

    __tablename__ = "authenticity_clone_alerts"
    __table_args__ = (
        Index("ix_authenticity_clone_alerts_status", "tenant_id", "status", "created_at"),
        Index("ix_authenticity_clone_alerts_code", "tenant_id", "code_id"),
        Index("uq_authenticity_clone_alerts_scans", "tenant_id", "first_scan_id", "second_scan_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code_id: Mapped[int] = mapped_column(BigInteger)
    serial: Mapped[str] = mapped_column(String(20))
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    first_scan_id: Mapped[int] = mapped_column(BigInteger)
    second_scan_id: Mapped[int] = mapped_column(BigInteger)
    distance_km: Mapped[float] = mapped_column(Float)
    seconds_between: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float] = mapped_column(Float)
    # Both scans as they were (time, coordinates, city), so the alert stands on its own.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(14), default=ALERT_OPEN)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(254), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class AuthenticitySettings(TenantOwned, Base):
    """A brand's thresholds; a brand without a row uses the defaults in rules.DEFAULTS."""

    __tablename__ = "authenticity_settings"
    __table_args__ = (Index("uq_authenticity_settings_tenant", "tenant_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    max_verifications: Mapped[int] = mapped_column(Integer)
    clone_speed_kmh: Mapped[float] = mapped_column(Float)
    clone_min_distance_km: Mapped[float] = mapped_column(Float)
    pin_attempts_per_code: Mapped[int] = mapped_column(SmallInteger)
    pin_lock_minutes: Mapped[int] = mapped_column(Integer)
    pin_attempts_per_client: Mapped[int] = mapped_column(Integer)
    pin_attempts_per_network: Mapped[int] = mapped_column(Integer)
    contact: Mapped[str] = mapped_column(String(200), default="")  # shown on a locked or suspicious code
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
