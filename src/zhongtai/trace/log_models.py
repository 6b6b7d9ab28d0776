"""ORM models of the tamper-evident log: one append-only Merkle tree per tenant (RFC 9162).

`trace_log_nodes` holds every *perfect* subtree hash of every tenant's tree — the leaf hashes
(level 0) and each interior node once both its halves exist. A node never changes after it is
written, so appending writes about two rows per leaf and reads only the O(log n) nodes of the old
tree's right edge, and every proof or past root is a fold of O(log n) rows fetched in one query.
The rows carry no foreign key (as `codes`: the log is the only writer, and the per-row check would
slow the bulk append); `tenant_id` leads the primary key, so no separate tenant index is needed.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned


class TraceLog(TenantOwned, Base):
    """A tenant's log: its size. Appends reserve leaf indexes with one atomic update of this row."""

    __tablename__ = "trace_logs"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TraceLogNode(TenantOwned, Base):
    """The hash of the perfect subtree over leaves `node_index * 2**level … (node_index + 1) * 2**level - 1`."""

    __tablename__ = "trace_log_nodes"
    __table_args__ = (
        Index(
            "ix_trace_log_nodes_leaf_hash",
            "tenant_id",
            "hash",
            postgresql_where=text("level = 0"),
            sqlite_where=text("level = 0"),
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # no foreign key, see above
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TraceLogKey(TenantOwned, Base):
    """A tenant's Ed25519 checkpoint signing key; the private key is encrypted with the PII keys."""

    __tablename__ = "trace_log_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    version: Mapped[int] = mapped_column(Integer)
    key_name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    private_key_ciphertext: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class TraceCheckpoint(TenantOwned, Base):
    """A signed tree head, kept for ever: the C2SP checkpoint text exactly as published."""

    __tablename__ = "trace_checkpoints"
    __table_args__ = (UniqueConstraint("tenant_id", "tree_size"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_version: Mapped[int] = mapped_column(Integer)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text)
