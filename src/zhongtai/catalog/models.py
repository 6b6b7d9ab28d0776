"""ORM models of the catalog: products and their lots.

Prices are stored as integer fen (分, 1/100 yuan) so that sums are exact on every database; the API
and the console show and accept yuan with at most two decimals. GTINs are stored as GTIN-14
(shorter GTINs left-padded with zeros), so `06901234567892` and `6901234567892` are one product.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.catalog.rules import PRODUCT_ACTIVE, PRODUCT_ARCHIVED, PRODUCT_STATUSES
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

__all__ = ["PRODUCT_ACTIVE", "PRODUCT_ARCHIVED", "PRODUCT_STATUSES", "Lot", "Product"]


class Product(TenantOwned, Base):
    """A product (SKU) with its GTIN and packaging: one item, `items_per_case` items in a case,
    `cases_per_pallet` cases on a pallet (either level may be absent)."""

    __tablename__ = "catalog_products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "gtin"),
        Index("ix_catalog_products_tenant_name", "tenant_id", "name"),
        CheckConstraint("items_per_case IS NULL OR items_per_case >= 1", name="items_per_case_positive"),
        CheckConstraint("cases_per_pallet IS NULL OR cases_per_pallet >= 1", name="cases_per_pallet_positive"),
        CheckConstraint("cases_per_pallet IS NULL OR items_per_case IS NOT NULL", name="pallet_needs_case"),
        CheckConstraint("price_fen IS NULL OR price_fen >= 0", name="price_not_negative"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    gtin: Mapped[str] = mapped_column(String(14))
    name: Mapped[str] = mapped_column(String(200))
    specification: Mapped[str] = mapped_column(String(200), default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    image_urls: Mapped[list[str]] = mapped_column(JSONType, default=list)
    price_fen: Mapped[int | None] = mapped_column(BigInteger, default=None)
    items_per_case: Mapped[int | None] = mapped_column(Integer, default=None)
    cases_per_pallet: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(12), default=PRODUCT_ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_archived(self) -> bool:
        return self.status == PRODUCT_ARCHIVED


class Lot(TenantOwned, Base):
    """A production lot (batch, 批次) of one product: GS1 AI (10) lot number, dates, factory and line."""

    __tablename__ = "catalog_lots"
    __table_args__ = (
        UniqueConstraint("product_id", "lot_number"),
        CheckConstraint(
            "expires_on IS NULL OR produced_on IS NULL OR expires_on > produced_on", name="expiry_after_production"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id", ondelete="RESTRICT"), index=True)
    lot_number: Mapped[str] = mapped_column(String(20))
    produced_on: Mapped[date | None] = mapped_column(Date, default=None)
    expires_on: Mapped[date | None] = mapped_column(Date, default=None)
    factory: Mapped[str] = mapped_column(String(120), default="")
    line: Mapped[str] = mapped_column(String(60), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
