"""ORM models of the ledger: accounts, one balance row per account, journal entries and their lines.

Entries and lines are append-only (database triggers refuse UPDATE and DELETE); a mistake is undone by
a reversal entry. Amounts are integers in the currency's minor unit (fen for CNY, whole points for PTS).
Sign convention: a line's amount is the change of its account's balance, so every entry's lines sum
to zero and so do all balances of one currency in one tenant.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

AmountType = BigInteger().with_variant(Integer, "sqlite")


class LedgerAccount(TenantOwned, Base):
    """An account: a fee pool, a partner's or consumer's wallet, payouts in transit, brand funding…

    `key` is the caller's natural key ("pool:<campaign id>", "wallet:consumer:<id>"), unique per tenant,
    so opening an account is idempotent. `floor` (minor units) is the lowest balance the ledger allows:
    0 for a pool or a wallet, None for accounts that may go negative (the brand's funding source).
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        Index("ix_ledger_accounts_owner", "tenant_id", "owner_type", "owner_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    owner_type: Mapped[str | None] = mapped_column(String(30), default=None)
    owner_id: Mapped[str | None] = mapped_column(String(80), default=None)
    floor: Mapped[int | None] = mapped_column(AmountType, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerBalance(TenantOwned, Base):
    """The current balance of one account, changed only by posting (a guarded UPDATE in the posting
    transaction) or by `recompute_balances(repair=True)`. `floor` repeats the account's so that the
    guard is one conditional UPDATE."""

    __tablename__ = "ledger_balances"
    __table_args__ = (CheckConstraint("floor IS NULL OR balance >= floor", name="above_floor"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(AmountType, default=0)
    floor: Mapped[int | None] = mapped_column(AmountType, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(TenantOwned, Base):
    """A journal entry: two or more lines that sum to zero per currency. Append-only."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # No separate tenant index: the unique (tenant_id, idempotency_key) index serves tenant lookups.
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(200), default="")
    reference_type: Mapped[str | None] = mapped_column(String(40), default=None)
    reference_id: Mapped[str | None] = mapped_column(String(80), default=None)
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_entries.id", ondelete="RESTRICT"), unique=True, default=None
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    posted_by: Mapped[str] = mapped_column(String(254), default="")
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerLine(TenantOwned, Base):
    """One line of an entry: the signed change of one account's balance. Append-only."""

    __tablename__ = "ledger_lines"
    __table_args__ = (
        Index("ix_ledger_lines_account", "account_id", "id"),
        CheckConstraint("amount <> 0", name="nonzero"),
    )

    id: Mapped[int] = mapped_column(AmountType, primary_key=True, autoincrement=True)
    # Overrides the mixin's column to skip its index: lines are found by account or entry, and a
    # tenant index on the largest table would cost more than it serves.
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_entries.id", ondelete="RESTRICT"), index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(AmountType)
