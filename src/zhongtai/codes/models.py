"""ORM models of codes.

`codes` is the platform's largest table (tens of millions of rows per brand). It is kept narrow and
its rows are written with the database's bulk path (COPY on PostgreSQL): a batch reserves a
contiguous range of ids, so "the codes of a batch" is a primary-key range and needs no index of its
own, and the row carries no foreign keys (their per-row checks would halve the insert rate) — the
codes service is the only writer and keeps the references right. Item serials are an encrypted
counter (`codes.serials`): unique by construction and decrypted to the row's id for lookups, so
they need no index; SSCCs and other container codes are found through a partial unique index that
item rows stay out of (see docs/adr/0008-serials-are-an-encrypted-counter.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.codes.states import (
    BATCH_EXPORTED,
    BATCH_FAILED,
    BATCH_GENERATED,
    BATCH_GENERATING,
    BATCH_REQUESTED,
    BATCH_VOIDED,
    CASE,
    COMMISSIONED,
    DECOMMISSIONED,
    GENERATED,
    IN_STORE,
    ITEM,
    LEVEL_NAMES,
    LEVELS_BY_NAME,
    OPENED,
    PACKED,
    PALLET,
    RECEIVED,
    SHIPPED,
    SOLD,
    STATE_NAMES,
    VOIDED,
)
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

__all__ = [
    "BATCH_EXPORTED",
    "BATCH_FAILED",
    "BATCH_GENERATED",
    "BATCH_GENERATING",
    "BATCH_REQUESTED",
    "BATCH_VOIDED",
    "CASE",
    "COMMISSIONED",
    "DECOMMISSIONED",
    "GENERATED",
    "IN_STORE",
    "ITEM",
    "LEVELS_BY_NAME",
    "LEVEL_NAMES",
    "OPENED",
    "PACKED",
    "PALLET",
    "RECEIVED",
    "SHIPPED",
    "SOLD",
    "STATE_NAMES",
    "VOIDED",
    "Code",
    "CodeBatch",
    "CodeEvent",
    "CodeIdRange",
    "CodeSettings",
    "LegacySerial",
    "PinKey",
]


class CodeSettings(TenantOwned, Base):
    """A brand's code settings: its GS1 company prefix (for SSCCs) and the SSCC counter."""

    __tablename__ = "code_settings"
    __table_args__ = (Index("uq_code_settings_tenant", "tenant_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    gs1_company_prefix: Mapped[str | None] = mapped_column(String(12), default=None)
    resolver_base: Mapped[str | None] = mapped_column(String(200), default=None)
    sscc_extension_digit: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_sscc_reference: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PinKey(TenantOwned, Base):
    """A versioned per-brand key for hidden PINs, stored encrypted with the platform's PII keys."""

    __tablename__ = "code_pin_keys"
    __table_args__ = (Index("uq_code_pin_keys_version", "tenant_id", "version", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    version: Mapped[int] = mapped_column(Integer)
    key_ciphertext: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class CodeIdRange(Base):
    """The next free code id, shared by all brands: batches reserve ranges with one atomic update."""

    __tablename__ = "code_id_counter"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_id: Mapped[int] = mapped_column(BigInteger)


class CodeBatch(TenantOwned, Base):
    """N codes of one product and packaging level, generated together; ids first_code_id … +quantity-1."""

    __tablename__ = "code_batches"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("generated_count >= 0 AND generated_count <= quantity", name="generated_within"),
        Index("ix_code_batches_tenant_created", "tenant_id", "created_at"),
        Index("ix_code_batches_first_code", "first_code_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id", ondelete="RESTRICT"), index=True)
    level: Mapped[int] = mapped_column(SmallInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    scheme: Mapped[str] = mapped_column(String(10))  # "serial" or "sscc"
    first_code_id: Mapped[int] = mapped_column(BigInteger)
    first_sscc_reference: Mapped[int | None] = mapped_column(BigInteger, default=None)
    resolver_base: Mapped[str] = mapped_column(String(200))
    generated_count: Mapped[int] = mapped_column(Integer, default=0)
    pin_key_version: Mapped[int | None] = mapped_column(Integer, default=None)
    # Serial scheme: the key version that encrypts the ids into serials (None: SSCCs, or random
    # serials made before serials were encrypted ids).
    serial_key_version: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    status: Mapped[str] = mapped_column(String(12), default=BATCH_REQUESTED)
    commissioned_count: Mapped[int] = mapped_column(Integer, default=0)
    voided_count: Mapped[int] = mapped_column(Integer, default=0)
    export_count: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(200), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(80), default=None)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    generated_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


Index("uq_code_batches_idempotency", CodeBatch.tenant_id, CodeBatch.idempotency_key, unique=True)


class Code(TenantOwned, Base):
    """One printed code: an item serial (AI 21) or an SSCC (AI 00).

    Tenant-owned like every brand row (the tenancy guard scopes it), but its `tenant_id` carries no
    foreign key (see the module docstring).
    """

    __tablename__ = "codes"

    __table_args__ = (
        Index(
            "ix_codes_parent",
            "parent_id",
            postgresql_where="parent_id IS NOT NULL",
            sqlite_where=text("parent_id IS NOT NULL"),
        ),
        # Cases and pallets (SSCCs are looked up by value); item rows, the bulk, stay out of it.
        Index(
            "uq_codes_container_serial",
            "serial",
            unique=True,
            postgresql_where="level <> 1",
            sqlite_where=text("level <> 1"),
        ),
    )

    # INTEGER on SQLite: the rowid itself, so the table is its only B-tree.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # overrides TenantOwned's column: no foreign key
    serial: Mapped[str] = mapped_column(String(20).with_variant(String(20, collation="C"), "postgresql"))
    level: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[int] = mapped_column(SmallInteger, default=GENERATED)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    changed_at: Mapped[datetime | None] = mapped_column(default=None)


class CodeEvent(TenantOwned, Base):
    """A custody step of codes as the business recorded it (commissioning, packing, unpacking,
    decommissioning, voiding; later shipping, receiving, selling). Kept whole — what, which codes,
    when, where, by whom, with which lot data — so that the trace module can turn each into an EPCIS
    event without losing information."""

    __tablename__ = "code_events"
    __table_args__ = (
        Index("ix_code_events_tenant_time", "tenant_id", "event_time"),
        Index("ix_code_events_parent", "parent_code_id"),
        Index("uq_code_events_idempotency", "tenant_id", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # commission, pack, unpack, decommission, void
    action: Mapped[str] = mapped_column(String(8))  # EPCIS action: ADD, DELETE, OBSERVE
    biz_step: Mapped[str] = mapped_column(String(40))  # CBV business step
    disposition: Mapped[str | None] = mapped_column(String(40), default=None)
    parent_code_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    code_first: Mapped[int | None] = mapped_column(BigInteger, default=None)  # a contiguous range …
    code_last: Mapped[int | None] = mapped_column(BigInteger, default=None)
    code_ids: Mapped[list[int] | None] = mapped_column(JSONType, default=None)  # … or an explicit list
    quantity: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    event_time: Mapped[datetime]
    event_timezone: Mapped[str] = mapped_column(String(6), default="+08:00")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_point: Mapped[str | None] = mapped_column(String(200), default=None)  # e.g. factory / line
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_label: Mapped[str] = mapped_column(String(254))
    idempotency_key: Mapped[str | None] = mapped_column(String(80), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class LegacySerial(Base):
    """Item serials made before serials were encrypted ids (random, so not decryptable): their
    index, so that codes printed then are still found. Nothing new is written here."""

    __tablename__ = "code_legacy_serials"

    serial: Mapped[str] = mapped_column(
        String(20).with_variant(String(20, collation="C"), "postgresql"), primary_key=True
    )
    code_id: Mapped[int] = mapped_column(BigInteger)
