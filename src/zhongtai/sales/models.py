"""ORM models of sales: orders and their state history.

Orders carry no foreign keys to products, consumers or stores: flash-sale workers insert them in
large batches (per-row foreign-key checks would cost more than the insert) and lottery orders name
the lottery's pick-up stores. The sales service is the only writer and checks what it is given.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned


class SalesOrder(TenantOwned, Base):
    __tablename__ = "sales_orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source", "source_ref"),
        UniqueConstraint("tenant_id", "order_no"),
        Index("ix_sales_orders_due", "state", "pay_deadline"),
        Index("ix_sales_orders_consumer", "tenant_id", "consumer_id", "created_at"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen >= 0 AND amount_fen >= 0", name="amounts_not_negative"),
        CheckConstraint(
            "state IN ('pending_payment', 'paid', 'ready_for_pickup', 'picked_up', 'expired', 'refunded')",
            name="state_known",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    order_no: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str] = mapped_column(String(120))
    consumer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None, index=True)
    state: Mapped[str] = mapped_column(String(20), default="pending_payment")
    pay_deadline: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    picked_up_at: Mapped[datetime | None] = mapped_column(default=None)
    expired_at: Mapped[datetime | None] = mapped_column(default=None)
    refunded_at: Mapped[datetime | None] = mapped_column(default=None)
    item_code_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class SalesOrderEvent(TenantOwned, Base):
    """Append-only history of an order's state changes (creation is the order's `created_at`)."""

    __tablename__ = "sales_order_events"
    __table_args__ = (Index("ix_sales_order_events_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(80), default="system")
    note: Mapped[str] = mapped_column(String(200), default="")
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class SalesPayment(TenantOwned, Base):
    """One attempt to pay an order through a provider. `created` until the provider's signed callback
    says it succeeded; at most one succeeded payment per order (the order leaves pending_payment)."""

    __tablename__ = "sales_payments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "provider_txn_id"),
        CheckConstraint("status IN ('created', 'succeeded', 'refunded')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="created")
    provider_txn_id: Mapped[str | None] = mapped_column(String(64), default=None)
    refund_ref: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    succeeded_at: Mapped[datetime | None] = mapped_column(default=None)
    refunded_at: Mapped[datetime | None] = mapped_column(default=None)


class SalesSettlementRule(TenantOwned, Base):
    """How a paid order splits between brand, dealer and store (结算清分规则).

    `scope` is "default" or a product id. Mode `percent`: shares in basis points (1/100 of a percent)
    summing to 10,000. Mode `fixed`: dealer and store get fixed fen per unit, the brand the rest.
    """

    __tablename__ = "sales_settlement_rules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "scope"),
        CheckConstraint("mode IN ('percent', 'fixed')", name="mode_known"),
        CheckConstraint("brand_share >= 0 AND dealer_share >= 0 AND store_share >= 0", name="shares_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(8))
    brand_share: Mapped[int] = mapped_column(BigInteger)
    dealer_share: Mapped[int] = mapped_column(BigInteger)
    store_share: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SalesSettlement(TenantOwned, Base):
    """The split of one paid order, posted to the ledger once (idempotency key per order)."""

    __tablename__ = "sales_settlements"
    __table_args__ = (
        Index("ix_sales_settlements_store_day", "tenant_id", "business_day", "store_id"),
        Index("ix_sales_settlements_dealer_day", "tenant_id", "business_day", "dealer_id"),
        CheckConstraint("brand_fen + dealer_fen + store_fen = amount_fen", name="shares_sum"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id", ondelete="CASCADE"), primary_key=True)
    business_day: Mapped[date] = mapped_column(Date)
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    dealer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    brand_fen: Mapped[int] = mapped_column(BigInteger)
    dealer_fen: Mapped[int] = mapped_column(BigInteger)
    store_fen: Mapped[int] = mapped_column(BigInteger)
    rule_scope: Mapped[str] = mapped_column(String(40))
    ledger_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)  # none for a free order
    status: Mapped[str] = mapped_column(String(10), default="settled")
    settled_at: Mapped[datetime] = mapped_column(default=utcnow)
    reversed_at: Mapped[datetime | None] = mapped_column(default=None)


class SalesOrderItem(TenantOwned, Base):
    """A bottle handed over for an order at pickup: its own code, scanned at the counter. A code is
    handed over once (unique per tenant)."""

    __tablename__ = "sales_order_items"
    __table_args__ = (UniqueConstraint("tenant_id", "code_id"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id", ondelete="CASCADE"), primary_key=True)
    code_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    epcis_hash: Mapped[str] = mapped_column(String(100))
    handed_over_at: Mapped[datetime] = mapped_column(default=utcnow)
    partner_account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
