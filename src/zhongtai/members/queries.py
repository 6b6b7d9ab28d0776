"""What other domains may read of members: verified identities.

Members answer for their table (`member_identities`). Besides per-consumer reads, set-based callers
(a lottery excluding millions of entries at once) get SQL conditions built here over the members'
table, so they never name it themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.crypto import Crypto
from zhongtai.members import loyalty, privacy
from zhongtai.members.models import MemberIdentity


@dataclass(frozen=True)
class IdentityFacts:
    """A consumer's verified identity, without its encrypted parts."""

    consumer_id: uuid.UUID
    id_hash: str
    id_masked: str
    name_masked: str
    birth_date: date
    region_code: str


async def identity_of(session: AsyncSession, consumer_id: uuid.UUID) -> IdentityFacts | None:
    """The consumer's verified identity, or None when the consumer has none (in the session's scope)."""
    row = await session.scalar(select(MemberIdentity).where(MemberIdentity.consumer_id == consumer_id))
    if row is None:
        return None
    return IdentityFacts(row.consumer_id, row.id_hash, row.id_masked, row.name_masked, row.birth_date, row.region_code)


def verified_identity_exists(
    tenant_id: ColumnElement[Any], consumer_id: ColumnElement[Any], *, born_on_or_before: date | None = None
) -> ColumnElement[bool]:
    """A correlated SQL condition: the consumer named by these columns (of the caller's table) has a
    verified identity in that brand — born on or before the given day when one is given."""
    identities = MemberIdentity.__table__.c
    query = select(identities.id).where(identities.tenant_id == tenant_id, identities.consumer_id == consumer_id)
    if born_on_or_before is not None:
        query = query.where(identities.birth_date <= born_on_or_before)
    return query.exists()


async def refresh_statistics(session: AsyncSession) -> None:
    """Refresh the planner's statistics of the identities (PostgreSQL) before a set-based join over them."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("ANALYZE member_identities"))


async def benefits_for_consumer(session: AsyncSession, crypto: Crypto, consumer_id: uuid.UUID) -> list[loyalty.Benefit]:
    """The tier benefits (discount in basis points, birthday gift, free shipping) of the consumer's
    member, one per program where they hold a tier; none when the consumer is no member. Orders and
    campaigns read these; the lottery's draw never does (equal odds for every entry)."""
    member = await privacy.member_for_consumer(session, crypto, consumer_id)
    return [] if member is None else await loyalty.benefits_for_member(session, member.id)
