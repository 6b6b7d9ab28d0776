"""ORM models of rewards: rules, fee pools and their usage counters, grants (one per code, reward
event and party role), the brand's risk settings, withdrawal requests and payout batches.

Money itself lives in the ledger (`zhongtai.ledger`): a pool is a `fee_pool` account, a wallet a
`partner_wallet` / `consumer_wallet` account, a held reward sits in the brand's `suspense` account,
a withdrawal in `payouts_in_transit`. The rows here say why money moved and keep the caps.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

AmountType = BigInteger().with_variant(Integer, "sqlite")

ROLES = ("consumer", "store", "guide", "dealer")

# Grant statuses.
PAID = "paid"  # in the party's wallet, spendable
HELD = "held"  # in the brand's suspense account, awaiting an operator's review
RELEASED = "released"  # held, then released to the wallet by an operator
REJECTED = "rejected"  # held, then rejected: the money went back to the pool
REFUSED = "refused"  # nothing paid: the pool was empty, or a daily or per-partner cap was reached
GRANT_STATUSES = (PAID, HELD, RELEASED, REJECTED, REFUSED)


class FeePool(TenantOwned, Base):
    """A budget (费用池) for a campaign or a product; its money is the ledger account `account_id`.

    Caps: the pool's balance (floor 0) is the total; `daily_cap_fen` limits what it pays per day
    (China time); `per_partner_cap_fen` limits what one party (a store, a guide, a dealer, a consumer)
    receives from it over its life.
    """

    __tablename__ = "rewards_pools"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    campaign: Mapped[str] = mapped_column(String(120), default="")
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="RESTRICT"))
    daily_cap_fen: Mapped[int | None] = mapped_column(AmountType, default=None)
    per_partner_cap_fen: Mapped[int | None] = mapped_column(AmountType, default=None)
    funded_fen: Mapped[int] = mapped_column(AmountType, default=0)  # the sum of its fundings
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PoolDay(TenantOwned, Base):
    """What a pool granted on one day (China time); the daily cap is a conditional UPDATE of this row."""

    __tablename__ = "rewards_pool_days"

    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rewards_pools.id", ondelete="RESTRICT"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    granted_fen: Mapped[int] = mapped_column(AmountType, default=0)
    grants: Mapped[int] = mapped_column(Integer, default=0)


class PoolParty(TenantOwned, Base):
    """What one party received from a pool; the per-partner cap is a conditional UPDATE of this row."""

    __tablename__ = "rewards_pool_parties"

    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rewards_pools.id", ondelete="RESTRICT"), primary_key=True)
    party: Mapped[str] = mapped_column(String(80), primary_key=True)  # "store:<id>", "device:<hash>"…
    granted_fen: Mapped[int] = mapped_column(AmountType, default=0)


class RewardRule(TenantOwned, Base):
    """What one party role earns for one reward event, for a product (or all products), in a period.

    `mode` "fixed" pays `amount_fen`; "random" draws from `distribution` ({"type": "tiers", "tiers":
    [{"amount_fen", "weight"}…]} or {"type": "uniform", "min_fen", "max_fen"}) with `secrets`.
    `expected_fen` is the distribution's mean, computed when the rule is saved.
    """

    __tablename__ = "rewards_rules"
    __table_args__ = (
        Index("ix_rewards_rules_match", "tenant_id", "event_kind", "is_active"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    event_kind: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(12))
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rewards_pools.id", ondelete="RESTRICT"), index=True)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None] = mapped_column(default=None)
    mode: Mapped[str] = mapped_column(String(10))
    amount_fen: Mapped[int | None] = mapped_column(AmountType, default=None)
    distribution: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    expected_fen: Mapped[float] = mapped_column(Float)
    min_fen: Mapped[int] = mapped_column(AmountType)
    max_fen: Mapped[int] = mapped_column(AmountType)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RewardGrant(TenantOwned, Base):
    """One reward to one party for one code's reward event: unique per (code, event kind, role), so a
    retried or racing event pays once. `party` names the wallet's owner ("store:<id>", "consumer:<id>",
    "device:<hash>" for a consumer not signed in, who can claim it later)."""

    __tablename__ = "rewards_grants"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code_id", "event_kind", "role", name="uq_rewards_grants_once"),
        Index("ix_rewards_grants_party", "tenant_id", "party", "created_at"),
        Index("ix_rewards_grants_device", "tenant_id", "device_hash", "created_at"),
        Index("ix_rewards_grants_consumer", "tenant_id", "consumer_id", "created_at"),  # a consumer's wallet
        Index("ix_rewards_grants_status", "tenant_id", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    code_id: Mapped[int] = mapped_column(AmountType)
    event_kind: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(12))
    party: Mapped[str] = mapped_column(String(80))
    rule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rewards_rules.id", ondelete="RESTRICT"))
    pool_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rewards_pools.id", ondelete="RESTRICT"))
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    amount_fen: Mapped[int] = mapped_column(AmountType)
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(40), default="")  # why refused
    holds: Mapped[list[str]] = mapped_column(JSONType, default=list)  # why held (risk signals)
    hold_detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    wallet_account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    source_ref: Mapped[str] = mapped_column(String(120))
    device_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    consumer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    partner_account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    dealer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    store_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)  # a device's packet claimed by a consumer
    reviewed_by: Mapped[str | None] = mapped_column(String(254), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    review_note: Mapped[str] = mapped_column(String(300), default="")


class RewardSettings(TenantOwned, Base):
    """A brand's risk thresholds and withdrawal minimum; a brand without a row uses the defaults."""

    __tablename__ = "rewards_settings"
    __table_args__ = (Index("uq_rewards_settings_tenant", "tenant_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Withdrawal statuses.
REQUESTED = "requested"  # money moved from the wallet to payouts in transit
IN_BATCH = "in_batch"  # part of an approved batch, sent to the provider
WD_PAID = "paid"  # the provider confirmed it: payouts in transit → paid
WD_FAILED = "failed"  # the provider failed it: the money went back to the wallet
WITHDRAWAL_STATUSES = (REQUESTED, IN_BATCH, WD_PAID, WD_FAILED)


class Withdrawal(TenantOwned, Base):
    """A party's request to be paid out of its wallet (提现)."""

    __tablename__ = "rewards_withdrawals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_key", name="uq_rewards_withdrawals_key"),
        Index("ix_rewards_withdrawals_status", "tenant_id", "status", "created_at"),
        Index("ix_rewards_withdrawals_party", "tenant_id", "party", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    request_key: Mapped[str] = mapped_column(String(120))  # the caller's Idempotency-Key, scoped to the party
    party: Mapped[str] = mapped_column(String(80))
    wallet_account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    amount_fen: Mapped[int] = mapped_column(AmountType)
    payee_name: Mapped[str] = mapped_column(String(80), default="")
    payee_account_ciphertext: Mapped[str] = mapped_column(String(300), default="")  # encrypted (core.crypto)
    payee_account_masked: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[str] = mapped_column(String(10), default=REQUESTED)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rewards_payout_batches.id"), default=None)
    provider_ref: Mapped[str | None] = mapped_column(String(80), default=None)
    failure_reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(default=None)


# Batch statuses.
SENT = "sent"  # approved and handed to the provider (or exported)
RECONCILED = "reconciled"  # every withdrawal in it is paid or failed


class PayoutBatch(TenantOwned, Base):
    """Withdrawals an operator approved together and handed to a payout provider or exported as CSV."""

    __tablename__ = "rewards_payout_batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default=SENT)
    count: Mapped[int] = mapped_column(Integer, default=0)
    total_fen: Mapped[int] = mapped_column(AmountType, default=0)
    paid_fen: Mapped[int] = mapped_column(AmountType, default=0)
    failed_fen: Mapped[int] = mapped_column(AmountType, default=0)
    approved_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reconciled_at: Mapped[datetime | None] = mapped_column(default=None)
