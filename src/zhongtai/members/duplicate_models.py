"""ORM model of probable duplicates: pairs of members a review queue offers an operator."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned


class MemberDuplicateSuggestion(TenantOwned, Base):
    """Two members who are probably one person (`member_a_id` < `member_b_id`, so a pair is one row).

    `status`: `open` (waiting for review), `merged` (an operator merged them, `merge_id`), `dismissed`
    (not one person, or the merge was undone) or `stale` (one of them was merged elsewhere or erased).
    A dismissed pair is never suggested again. `agreement` says per compared field how the two agreed
    (`exact`, `similar`, `different`, `missing`) — never the values themselves.
    """

    __tablename__ = "member_duplicate_suggestions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "member_a_id", "member_b_id"),
        Index("ix_member_duplicate_suggestions_status", "tenant_id", "status", "probability"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    member_a_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    member_b_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    probability: Mapped[float] = mapped_column(Float)
    match_weight: Mapped[float] = mapped_column(Float)
    agreement: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="open")
    merge_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member_merges.id"), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(254), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    note: Mapped[str] = mapped_column(String(300), default="")
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
