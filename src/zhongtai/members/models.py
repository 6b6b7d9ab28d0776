"""ORM model of a consumer's verified real-name identity."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base
from zhongtai.core.tenancy import TenantOwned


class MemberIdentity(TenantOwned, Base):
    """One verified identity per consumer account and one account per identity, per brand.

    The resident ID number and the name are encrypted; `id_hash` (keyed HMAC) is what the unique
    constraint sees, so two accounts cannot claim one identity even when they race.
    """

    __tablename__ = "member_identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "consumer_id"),
        UniqueConstraint("tenant_id", "id_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    consumer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consumers.id", ondelete="CASCADE"))
    id_ciphertext: Mapped[str] = mapped_column(String(200))
    id_hash: Mapped[str] = mapped_column(String(64))
    id_masked: Mapped[str] = mapped_column(String(24))
    name_ciphertext: Mapped[str] = mapped_column(String(300))
    name_masked: Mapped[str] = mapped_column(String(40))
    birth_date: Mapped[date] = mapped_column(Date)
    region_code: Mapped[str] = mapped_column(String(6))
    verifier: Mapped[str] = mapped_column(String(40))
    verifier_reference: Mapped[str] = mapped_column(String(80))
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
