"""What other domains may read of authenticity: consumers' scans, as plain values.

Authenticity answers for its tables (`authenticity_scans`, summaries, alerts…); other domains ask here
rather than query them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity.models import GENUINE, KIND_PIN_OK, Scan


@dataclass(frozen=True)
class ScanFacts:
    """One consumer check of one code: which code, when, where (when the consumer allowed it)."""

    id: int
    code_id: int
    serial: str
    gtin: str | None
    product_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    kind: str
    verdict: str | None
    occurred_at: datetime
    latitude: float | None
    longitude: float | None
    accuracy_m: float | None
    province_code: str | None
    city_code: str | None
    city_name: str | None
    consumer_id: uuid.UUID | None
    verification_number: int | None = None  # 1 = the code's first successful PIN check

    @property
    def is_first_verification(self) -> bool:
        """The check that opened the bottle for consumers: its first matching PIN, judged genuine."""
        return self.kind == KIND_PIN_OK and self.verdict == GENUINE and self.verification_number == 1


def scan_facts(scan: Scan) -> ScanFacts:
    return ScanFacts(
        id=scan.id,
        code_id=scan.code_id,
        serial=scan.serial,
        gtin=scan.gtin,
        product_id=scan.product_id,
        lot_id=scan.lot_id,
        kind=scan.kind,
        verdict=scan.verdict,
        occurred_at=scan.occurred_at,
        latitude=scan.latitude,
        longitude=scan.longitude,
        accuracy_m=scan.accuracy_m,
        province_code=scan.province_code,
        city_code=scan.city_code,
        city_name=scan.city_name,
        consumer_id=scan.consumer_id,
        verification_number=scan.verification_number,
    )


async def scans_after(session: AsyncSession, after_id: int, *, limit: int) -> list[ScanFacts]:
    """The scans with ids above `after_id`, by id, at most `limit` (for sweeps that follow the scans)."""
    rows = await session.scalars(select(Scan).where(Scan.id > after_id).order_by(Scan.id).limit(limit))
    return [scan_facts(scan) for scan in rows]


async def scans_of_consumers(
    session: AsyncSession, consumer_ids: list[uuid.UUID], *, limit: int = 20
) -> tuple[list[ScanFacts], int]:
    """The consumers' signed-in scans, newest first (at most `limit`), and how many there are."""
    if not consumer_ids:
        return [], 0
    mine = (Scan.consumer_id.in_(consumer_ids), Scan.consumer_id.is_not(None))
    total = await session.scalar(select(func.count()).select_from(Scan).where(*mine))
    rows = await session.scalars(
        select(Scan).where(*mine).order_by(Scan.occurred_at.desc(), Scan.id.desc()).limit(limit)
    )
    return [scan_facts(scan) for scan in rows], int(total or 0)


async def claim_code_scans(
    session: AsyncSession, consumer_id: uuid.UUID, client_hash: str, code_ids: list[int], *, since: datetime
) -> list[ScanFacts]:
    """Give a consumer who has just signed in the anonymous checks their own device made of these codes
    since `since` (the scan page keeps the codes it checked; the device is its cookie's keyed hash, so
    nobody can claim another device's checks). Returns the scans claimed now."""
    if not code_ids:
        return []
    rows = await session.scalars(
        select(Scan)
        .where(
            Scan.code_id.in_(code_ids),
            Scan.consumer_id.is_(None),
            Scan.client_hash == client_hash,
            Scan.occurred_at >= since,
        )
        .order_by(Scan.id)
        .with_for_update()
    )
    claimed = list(rows)
    for scan in claimed:
        scan.consumer_id = consumer_id
    await session.flush()
    return [scan_facts(scan) for scan in claimed]
