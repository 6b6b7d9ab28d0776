"""ORM models of reservation lotteries.

`LotteryStore` is the pick-up store list of this module: entries and stock refer to it by id only, so
the draw does not depend on the channel. A lottery store names the channel store (门店) that hands the
bottles over (`channel_store_id`); a winner's order is picked up there, by that store's clerks.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned

SESSION_DRAFT = "draft"
SESSION_COMMITTED = "committed"  # commitment published; entries accepted inside the window
SESSION_CLOSED = "closed"  # entries frozen, entries root published
SESSION_DRAWN = "drawn"  # winners chosen, server seed revealed
SESSION_STATUSES = (SESSION_DRAFT, SESSION_COMMITTED, SESSION_CLOSED, SESSION_DRAWN)

WIN_PENDING_PAYMENT = "pending_payment"
WIN_PAID = "paid"
WIN_FORFEITED = "forfeited"


class LotteryStore(TenantOwned, Base):
    __tablename__ = "lottery_stores"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    city: Mapped[str] = mapped_column(String(60), default="")
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The channel store (channel_stores.id) whose clerks hand over the winners' bottles.
    channel_store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)


class LotterySession(TenantOwned, Base):
    __tablename__ = "lottery_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(120))
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    minimum_age: Mapped[int] = mapped_column(SmallInteger, default=18)
    payment_hours: Mapped[int] = mapped_column(Integer, default=24)
    status: Mapped[str] = mapped_column(String(12), default=SESSION_DRAFT)
    algorithm: Mapped[str] = mapped_column(String(20))
    seed_ciphertext: Mapped[str] = mapped_column(String(200))
    seed_sha256: Mapped[str] = mapped_column(String(64))
    beacon_source: Mapped[str] = mapped_column(String(200), default="")  # announced before the window
    committed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    entries_count: Mapped[int] = mapped_column(Integer, default=0)
    excluded_count: Mapped[int] = mapped_column(Integer, default=0)
    entries_root: Mapped[str | None] = mapped_column(String(64), default=None)
    beacon: Mapped[str | None] = mapped_column(String(200), default=None)
    draw_seed: Mapped[str | None] = mapped_column(String(64), default=None)
    server_seed: Mapped[str | None] = mapped_column(String(64), default=None)  # revealed after the draw
    drawn_at: Mapped[datetime | None] = mapped_column(default=None)
    winners_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LotteryStock(TenantOwned, Base):
    __tablename__ = "lottery_stock"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lottery_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lottery_stores.id"), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    price_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # a winner pays this


class LotteryEntry(TenantOwned, Base):
    """One entry per (session, product, consumer). Its place in the frozen list is its rank by id;
    `excluded_reason` is set at close for entries that may not take part in the draw."""

    __tablename__ = "lottery_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "session_id", "product_id", "consumer_id"),
        Index("ix_lottery_entries_session_order", "session_id", "id"),
        Index("ix_lottery_entries_identity", "session_id", "product_id", "identity_hash", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lottery_sessions.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    store_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    consumer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consumers.id", ondelete="CASCADE"), index=True)
    identity_hash: Mapped[str] = mapped_column(String(64))
    entrant: Mapped[str] = mapped_column(String(32))
    excluded_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LotteryTreeNode(TenantOwned, Base):
    """Perfect subtrees of the frozen entry list at levels ≥ `STORED_LEVEL`, so that an inclusion
    proof needs only the leaves of a few 1,024-leaf blocks."""

    __tablename__ = "lottery_tree_nodes"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lottery_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LotteryWin(TenantOwned, Base):
    """A winning entry: what an order is created from. Pay by `payment_due_at` or it is forfeited."""

    __tablename__ = "lottery_wins"
    __table_args__ = (
        UniqueConstraint("entry_id"),
        Index("ix_lottery_wins_due", "status", "payment_due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lottery_sessions.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lottery_entries.id", ondelete="CASCADE"))
    consumer_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    store_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=WIN_PENDING_PAYMENT)
    payment_due_at: Mapped[datetime]
    notified_at: Mapped[datetime | None] = mapped_column(default=None)
    forfeited_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
