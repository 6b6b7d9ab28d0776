"""ORM models of flash sales: the sale, the accepted purchases, and the embedded gate's member counts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Table, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned

SALE_DRAFT = "draft"
SALE_SCHEDULED = "scheduled"  # the gate is armed; buys are accepted between starts_at and ends_at
SALE_ENDED = "ended"  # ended by an operator (a scheduled sale also stops taking buys at ends_at)
SALE_STATUSES = (SALE_DRAFT, SALE_SCHEDULED, SALE_ENDED)

PURCHASE_QUEUED = "queued"  # accepted by the gate, waiting for the persister to make it an order
PURCHASE_ORDERED = "ordered"  # an order exists (pending payment until the sales module says otherwise)
PURCHASE_EXPIRED = "expired"  # unpaid by the deadline; its stock went back to the sale
PURCHASE_STATUSES = (PURCHASE_QUEUED, PURCHASE_ORDERED, PURCHASE_EXPIRED)


class FlashSale(TenantOwned, Base):
    __tablename__ = "flashsale_sales"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("stock_left >= 0 AND stock_left <= stock", name="stock_left_in_range"),
        CheckConstraint("per_member_limit >= 1", name="limit_positive"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(120))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id", ondelete="RESTRICT"), index=True)
    price_fen: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    # The embedded gate's counter (one conditional UPDATE per buy). On the Redis tier the gate's counter
    # lives in Redis and this column is written only when the sale ends.
    stock_left: Mapped[int] = mapped_column(Integer)
    per_member_limit: Mapped[int] = mapped_column(Integer, default=1)
    requires_verification: Mapped[bool] = mapped_column(Boolean, default=True)
    minimum_age: Mapped[int] = mapped_column(Integer, default=18)
    payment_minutes: Mapped[int] = mapped_column(Integer, default=15)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default=SALE_DRAFT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class FlashSalePurchase(TenantOwned, Base):
    """One buy the gate accepted. `reference` is what the buyer was told and the order's source_ref."""

    __tablename__ = "flashsale_purchases"
    __table_args__ = (
        UniqueConstraint("reference"),
        UniqueConstraint("sale_id", "consumer_id", "idempotency_key"),
        Index("ix_flashsale_purchases_sale_status", "sale_id", "status"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(32))
    sale_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flashsale_sales.id", ondelete="RESTRICT"))
    consumer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(12), default=PURCHASE_QUEUED)
    accepted_at: Mapped[datetime]
    pay_by: Mapped[datetime]
    persisted_at: Mapped[datetime] = mapped_column(default=utcnow)
    expired_at: Mapped[datetime | None] = mapped_column(default=None)


class FlashSaleMemberCount(TenantOwned, Base):
    """Units each member holds in a sale, for the embedded gate's per-member limit."""

    __tablename__ = "flashsale_member_counts"

    sale_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flashsale_sales.id", ondelete="CASCADE"), primary_key=True)
    consumer_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    bought: Mapped[int] = mapped_column(Integer, default=0)


# The tables, typed for Core statements (the gate and the persister skip the ORM on their hot paths).
SALES_TABLE = cast(Table, FlashSale.__table__)
PURCHASES_TABLE = cast(Table, FlashSalePurchase.__table__)
MEMBER_COUNTS_TABLE = cast(Table, FlashSaleMemberCount.__table__)
