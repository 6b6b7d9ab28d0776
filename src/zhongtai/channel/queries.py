"""What other domains may read of the channel: stores and the custody of items, as plain values.

The channel answers for its tables (`channel_stores`, `channel_custody`…); other domains ask here
rather than query them. Partner roles and holders are in `channel.rules`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel.models import Store
from zhongtai.channel.scan_models import Custody


@dataclass(frozen=True)
class CustodyFacts:
    """Who holds an item now: the dealer it came in through, the holder (`channel.rules.HOLDER_*`),
    the store and guide when it reached one."""

    code_id: int
    dealer_id: uuid.UUID
    holder: str
    store_id: uuid.UUID | None
    guide_id: uuid.UUID | None
    product_id: uuid.UUID | None
    received_at: datetime


async def store_exists(session: AsyncSession, store_id: uuid.UUID) -> bool:
    """Whether this is a channel store of the brand in the session's scope."""
    return await session.scalar(select(Store.id).where(Store.id == store_id)) is not None


async def store_location(
    session: AsyncSession, tenant_id: uuid.UUID, store_id: uuid.UUID
) -> tuple[float, float] | None:
    """The store's (latitude, longitude), or None when it has none or there is no such store."""
    row = (
        await session.execute(
            select(Store.latitude, Store.longitude).where(Store.tenant_id == tenant_id, Store.id == store_id)
        )
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return float(row[0]), float(row[1])


async def custody_of(session: AsyncSession, tenant_id: uuid.UUID, code_id: int) -> CustodyFacts | None:
    """Who holds this item in the channel, or None when it never entered the channel."""
    row = (
        await session.execute(
            select(
                Custody.code_id,
                Custody.dealer_id,
                Custody.holder,
                Custody.store_id,
                Custody.guide_id,
                Custody.product_id,
                Custody.received_at,
            ).where(Custody.tenant_id == tenant_id, Custody.code_id == code_id)
        )
    ).first()
    return None if row is None else CustodyFacts(*row)
