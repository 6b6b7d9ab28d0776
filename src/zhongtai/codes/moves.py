"""Moves of codes made by other domains' steps: the channel's receive, ship, case-open and sale scans.

The codes domain answers for the `codes` and `code_events` tables; a domain that moves goods asks here
to lock, read and change codes and to record the step for the trace. What it gets back are the codes'
rows (`CodeRow`), as `custody.resolve_map` gives them, for reading.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes import custody
from zhongtai.codes.models import Code, CodeEvent
from zhongtai.codes.states import CASE, ITEM, PALLET
from zhongtai.core import sql

CHUNK = 1000
CodeRow: TypeAlias = Code
CodeStepRow: TypeAlias = CodeEvent


async def lock_codes(session: AsyncSession, codes: Sequence[CodeRow]) -> None:
    """Row locks on the codes in one global order — pallets, then cases, then items, each by id — so
    that steps naming a pallet, its cases or its bottles at once serialise without deadlocking (SQLite
    has one writer at a time and needs none)."""
    if not sql.is_postgres(session) or not codes:
        return
    for level in (PALLET, CASE, ITEM):
        ordered = sorted({c.id for c in codes if c.level == level})
        for start in range(0, len(ordered), CHUNK):
            await session.execute(
                select(Code.id).where(Code.id.in_(ordered[start : start + CHUNK])).order_by(Code.id).with_for_update()
            )


async def fresh_codes(session: AsyncSession, ids: list[int]) -> dict[int, CodeRow]:
    """The codes read again (after their locks), by id."""
    found: dict[int, CodeRow] = {}
    for start in range(0, len(ids), CHUNK):
        rows = await session.scalars(
            select(Code).where(Code.id.in_(ids[start : start + CHUNK])).execution_options(populate_existing=True)
        )
        found.update({c.id: c for c in rows})
    return found


async def codes_inside(session: AsyncSession, parent_ids: list[int]) -> list[CodeRow]:
    """The codes packed directly in these containers, by id."""
    found: list[CodeRow] = []
    for start in range(0, len(parent_ids), CHUNK):
        found.extend(
            await session.scalars(
                select(Code)
                .where(Code.parent_id.in_(parent_ids[start : start + CHUNK]))
                .order_by(Code.id)
                .execution_options(populate_existing=True)
            )
        )
    return found


async def set_codes(session: AsyncSession, ids: list[int], *, changed_at: datetime, **values: Any) -> None:
    """Set `state` and/or `parent_id` (None: taken out of its container) of these codes."""
    unknown = set(values) - {"state", "parent_id"}
    if unknown:
        raise ValueError(f"Only a code's state and container change in a move, not {sorted(unknown)}.")
    for start in range(0, len(ids), CHUNK):
        await session.execute(
            update(Code)
            .where(Code.id.in_(ids[start : start + CHUNK]))
            .values(**values, changed_at=changed_at)
            .execution_options(synchronize_session=False)
        )


def record_step(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    when: datetime,
    kind: str,
    action: str,
    biz_step: str,
    disposition: str | None,
    code_ids: list[int],
    parent_id: int | None,
    product_id: uuid.UUID | None,
    actor_kind: str,
    actor_label: str,
    data: dict[str, Any],
) -> CodeStepRow:
    """One custody step of these codes (the trace module turns it into an EPCIS event); added to the
    session, flushed with it."""
    first, last, explicit = custody.range_of(code_ids)
    event = CodeEvent(
        tenant_id=tenant_id,
        kind=kind,
        action=action,
        biz_step=biz_step,
        disposition=disposition,
        parent_code_id=parent_id,
        code_first=first,
        code_last=last,
        code_ids=explicit,
        quantity=len(code_ids),
        product_id=product_id,
        event_time=when,
        event_timezone="+08:00",
        read_point=data.get("read_point_name"),
        actor_kind=actor_kind,
        actor_label=actor_label[:254],
        data=data,
    )
    session.add(event)
    return event
