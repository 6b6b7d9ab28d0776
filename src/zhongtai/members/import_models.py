"""ORM models of member imports: a log of every import (who, when, which layout, the counts) and the
rows already imported, known only by keyed hashes so that importing a file again changes nothing.
Neither holds personal data."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned


class MemberImport(TenantOwned, Base):
    """One import that wrote something: the layout, the mode and the counts of the report."""

    __tablename__ = "member_imports"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    layout: Mapped[str] = mapped_column(String(40))
    file_format: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(12))
    earns_points: Mapped[bool] = mapped_column(Boolean, default=False)
    actor_label: Mapped[str] = mapped_column(String(254))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberImportRow(TenantOwned, Base):
    """A row imported before: `row_key` is the keyed hash of the layout's id of the row (the order
    number, the marketplace id, the member number or phone), `content_hash` that of its values."""

    __tablename__ = "member_import_rows"
    __table_args__ = (UniqueConstraint("tenant_id", "layout", "row_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    layout: Mapped[str] = mapped_column(String(40))
    row_key: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member_imports.id"))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
