"""ORM models of channel scans, custody, and diversion alerts.

- `channel_scans`: one row per partner scan request (what, who, where, the answer it got), so that a
  retry with the same Idempotency-Key answers the same.
- `channel_scan_items`: one row per item per custody step (dealer_receive, ship, store_receive,
  case_open, sale). Unique per (code, step): a step happens to an item once, whatever the retries or
  races. Partner inventory is counted from these rows.
- `channel_custody`: who holds each item now (the dealer it came in through, and the store it went to).
- `channel_diversion_alerts`: goods found outside their dealer's territory or at a store their dealer
  does not supply, with the evidence and the triage workflow.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.channel.rules import HOLDER_DEALER, HOLDER_SOLD, HOLDER_STORE, HOLDER_TRANSIT, HOLDERS
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

# Scan actions (the steps a partner scans).
DEALER_RECEIVE = "dealer_receive"
SHIP = "ship"
STORE_RECEIVE = "store_receive"
CASE_OPEN = "case_open"
SALE = "sale"
ACTIONS = (DEALER_RECEIVE, SHIP, STORE_RECEIVE, CASE_OPEN, SALE)

# Who holds an item now: `channel.rules.HOLDER_*` (re-exported here).
__all__ = [
    "ACTIONS",
    "ALERT_CONFIRMED",
    "ALERT_DISMISSED",
    "ALERT_KINDS",
    "ALERT_OPEN",
    "ALERT_PENALIZED",
    "ALERT_STATUSES",
    "CASE_OPEN",
    "DEALER_RECEIVE",
    "HOLDERS",
    "HOLDER_DEALER",
    "HOLDER_SOLD",
    "HOLDER_STORE",
    "HOLDER_TRANSIT",
    "KIND_CONSUMER_OUTSIDE",
    "KIND_FOREIGN_STORE",
    "KIND_STORE_OUTSIDE",
    "SALE",
    "SEVERITIES",
    "SHIP",
    "STORE_RECEIVE",
    "ChannelScan",
    "ChannelScanItem",
    "Custody",
    "DiversionAlert",
    "DiversionCursor",
]

# Diversion alerts.
KIND_STORE_OUTSIDE = "store_outside_territory"  # a store scanned the dealer's goods outside its territory
KIND_FOREIGN_STORE = "foreign_store"  # a store the dealer does not supply received its goods
KIND_CONSUMER_OUTSIDE = "consumer_outside_territory"  # a consumer checked the goods outside the territory
ALERT_KINDS = (KIND_STORE_OUTSIDE, KIND_FOREIGN_STORE, KIND_CONSUMER_OUTSIDE)
SEVERITIES = ("low", "medium", "high")
ALERT_OPEN, ALERT_CONFIRMED, ALERT_PENALIZED, ALERT_DISMISSED = "open", "confirmed", "penalized", "dismissed"
ALERT_STATUSES = (ALERT_OPEN, ALERT_CONFIRMED, ALERT_PENALIZED, ALERT_DISMISSED)


class ChannelScan(TenantOwned, Base):
    """One partner scan request and the answer it got."""

    __tablename__ = "channel_scans"
    __table_args__ = (
        Index("ix_channel_scans_tenant_time", "tenant_id", "occurred_at"),
        Index("uq_channel_scans_idempotency", "tenant_id", "partner_account_id", "idempotency_key", unique=True),
        CheckConstraint(
            "action IN ('dealer_receive', 'ship', 'store_receive', 'case_open', 'sale')", name="action_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(16))
    partner_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channel_partner_accounts.id", ondelete="RESTRICT"), index=True
    )
    role: Mapped[str] = mapped_column(String(12))
    dealer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    guide_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    to_store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)  # where a dealer ships
    codes: Mapped[list[str]] = mapped_column(JSONType, default=list)  # as scanned (first 100)
    code_count: Mapped[int] = mapped_column(Integer, default=0)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    alert_count: Mapped[int] = mapped_column(Integer, default=0)  # diversion alerts it raised
    latitude: Mapped[float | None] = mapped_column(Float, default=None)  # WGS-84, from the browser
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    device_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(80), default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ChannelScanItem(TenantOwned, Base):
    """One item through one custody step; inventory is counted from these rows."""

    __tablename__ = "channel_scan_items"
    __table_args__ = (
        Index("uq_channel_scan_items_step", "tenant_id", "code_id", "action", unique=True),
        Index("ix_channel_scan_items_dealer", "tenant_id", "dealer_id", "action", "product_id"),
        Index("ix_channel_scan_items_store", "tenant_id", "store_id", "action", "product_id"),
        Index("ix_channel_scan_items_scan", "scan_id"),
        Index("ix_channel_scan_items_parent", "tenant_id", "parent_code_id", "action"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # set-based inserts; the scan row carries the FK
    scan_id: Mapped[int] = mapped_column(BigInteger)
    code_id: Mapped[int] = mapped_column(BigInteger)
    parent_code_id: Mapped[int] = mapped_column(BigInteger)  # the code scanned (the item itself, or its case)
    action: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    dealer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    guide_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class Custody(TenantOwned, Base):
    """Who holds an item now: the dealer it came in through (the reference for diversion) and the
    store it was shipped to, is at, or was sold by."""

    __tablename__ = "channel_custody"
    __table_args__ = (
        Index("ix_channel_custody_dealer", "tenant_id", "dealer_id", "holder"),
        Index("ix_channel_custody_store", "tenant_id", "store_id", "holder"),
        CheckConstraint("holder IN ('dealer', 'transit', 'store', 'sold')", name="holder_known"),
    )

    code_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    dealer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    holder: Mapped[str] = mapped_column(String(8))
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    guide_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)  # by the dealer
    shipped_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_scan_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class DiversionAlert(TenantOwned, Base):
    """Goods of dealer D found where they should not be, with the evidence and its triage."""

    __tablename__ = "channel_diversion_alerts"
    __table_args__ = (
        Index("ix_channel_diversion_alerts_status", "tenant_id", "status", "created_at"),
        Index("ix_channel_diversion_alerts_dealer", "tenant_id", "dealer_id", "created_at"),
        Index("uq_channel_diversion_alerts_source", "tenant_id", "source_ref", unique=True),
        CheckConstraint(
            "kind IN ('store_outside_territory', 'foreign_store', 'consumer_outside_territory')", name="kind_known"
        ),
        CheckConstraint("severity IN ('low', 'medium', 'high')", name="severity_known"),
        CheckConstraint("status IN ('open', 'confirmed', 'penalized', 'dismissed')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), default=ALERT_OPEN)
    dealer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channel_dealers.id", ondelete="RESTRICT"))
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)  # the store that scanned, if any
    code_id: Mapped[int] = mapped_column(BigInteger)  # the code scanned (a case, a pallet or a bottle)
    serial: Mapped[str] = mapped_column(String(20))
    item_count: Mapped[int] = mapped_column(Integer, default=1)
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    latitude: Mapped[float | None] = mapped_column(Float, default=None)
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    province_code: Mapped[str | None] = mapped_column(String(6), default=None)
    city_code: Mapped[str | None] = mapped_column(String(6), default=None)
    place_label: Mapped[str] = mapped_column(String(120), default="")
    distance_km: Mapped[float | None] = mapped_column(Float, default=None)  # to the dealer's nearest store
    actor_kind: Mapped[str] = mapped_column(String(12))  # store, guide, consumer
    actor_label: Mapped[str] = mapped_column(String(200), default="")
    source_ref: Mapped[str] = mapped_column(String(80))  # channel-scan:{id} or consumer-scan:{id}
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    penalty_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)  # fen
    note: Mapped[str] = mapped_column(String(500), default="")
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DiversionCursor(TenantOwned, Base):
    """How far the diversion sweep has read the consumer scans of a brand (`authenticity_scans.id`)."""

    __tablename__ = "channel_diversion_cursors"
    __table_args__ = (Index("uq_channel_diversion_cursors_tenant", "tenant_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    last_scan_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
