"""Segments: a saved CEL expression over member facts whose members are kept as a roaring bitmap of the
members' `seq`.

A full refresh evaluates every active member; an incremental refresh evaluates only the members whose
facts changed since the last refresh and patches the bitmap (their bits cleared, then set again where
the expression holds). `refreshed_at` is kept `REFRESH_OVERLAP` behind the refresh's start so that a
change committed late with an earlier timestamp is still seen next time (evaluating a member twice is
harmless). Expressions on facts that move with the calendar (age, days since the last touch) are
evaluated in full once a day, as each new day changes them for members whose rows did not change.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed
from zhongtai.members import expressions, facts
from zhongtai.members.models import Member
from zhongtai.members.segment_models import MemberFacts, MemberSegment

REFRESH_OVERLAP = timedelta(minutes=5)
SAMPLE_SIZE = 5
EXPORT_CHUNK = 5000


@dataclass(frozen=True)
class Evaluation:
    bitmap: BitMap
    evaluated: int


def check_name(name: str) -> str:
    text = " ".join((name or "").split())
    if not 1 <= len(text) <= 80:
        raise ValidationFailed("A segment name has 1 to 80 characters.", field="name")
    return text


def bitmap_of(segment: MemberSegment) -> BitMap:
    return BitMap.deserialize(segment.bitmap) if segment.bitmap else BitMap()


def evaluate_rows(program: expressions.Compiled, rows: Sequence[MemberFacts], on: date) -> BitMap:
    """The `seq` of the active rows the expression selects."""
    active = [row for row in rows if row.is_active]
    if not active:
        return BitMap()
    hits = program.matches(facts.columns_of(active, on))
    seqs = np.fromiter((row.seq for row in active), dtype=np.uint32, count=len(active))
    return BitMap(seqs[hits].tolist())


async def _active_rows(session: AsyncSession) -> list[MemberFacts]:
    return list(await session.scalars(select(MemberFacts).where(MemberFacts.is_active.is_(True))))


def bitmap_from(seqs: npt.NDArray[np.uint32]) -> BitMap:
    """A bitmap of these `seq` (through a typed buffer: no Python int per member)."""
    return BitMap(array("I", np.ascontiguousarray(seqs, dtype=np.uint32).tobytes()))


async def evaluate_all(session: AsyncSession, program: expressions.Compiled, on: date) -> Evaluation:
    """Every active member, loaded column-wise: only the facts the expression reads."""
    seqs, columns = await facts.load_columns(session, program.facts, on)
    if not seqs.size:
        return Evaluation(BitMap(), 0)
    return Evaluation(bitmap_from(seqs[program.matches(columns)]), int(seqs.size))


def _store(segment: MemberSegment, bitmap: BitMap, on: date, started: datetime) -> None:
    segment.bitmap = bitmap.serialize()
    segment.member_count = len(bitmap)
    segment.refreshed_at = started - REFRESH_OVERLAP
    segment.evaluated_on = on
    segment.updated_at = started


async def do_refresh(
    session: AsyncSession,
    segment: MemberSegment,
    *,
    full: bool = False,
    on: date | None = None,
    at: datetime | None = None,
) -> Evaluation:
    """Refresh one segment: incrementally when possible, in full when asked, on its first refresh, or on
    a new day for expressions on calendar facts."""
    started = at or utcnow()
    day = on or facts.local_date(started)
    program = expressions.compile_expression(segment.expression)
    needs_full = full or segment.refreshed_at is None or (program.is_time_dependent and segment.evaluated_on != day)
    if needs_full:
        result = await evaluate_all(session, program, day)
        _store(segment, result.bitmap, day, started)
        return result
    changed = list(await session.scalars(select(MemberFacts).where(MemberFacts.updated_at >= segment.refreshed_at)))
    bitmap = bitmap_of(segment)
    bitmap.difference_update(BitMap(row.seq for row in changed))
    bitmap |= evaluate_rows(program, changed, day)
    _store(segment, bitmap, day, started)
    return Evaluation(bitmap, len(changed))


async def do_refresh_all(
    session: AsyncSession, tenant_id: uuid.UUID, *, on: date | None = None, at: datetime | None = None
) -> int:
    """Bring facts up to date, then refresh every saved segment of the brand."""
    await facts.do_sync_facts(session, tenant_id, at=at)
    saved = list(await session.scalars(select(MemberSegment).order_by(MemberSegment.name)))
    for segment in saved:
        await do_refresh(session, segment, on=on, at=at)
    await session.flush()
    return len(saved)


async def get_segment(session: AsyncSession, segment_id: uuid.UUID) -> MemberSegment:
    segment = await session.scalar(select(MemberSegment).where(MemberSegment.id == segment_id))
    if segment is None:
        raise NotFound("No such segment.")
    return segment


async def list_segments(session: AsyncSession) -> list[MemberSegment]:
    return list(await session.scalars(select(MemberSegment).order_by(MemberSegment.name)))


async def _flush_unique(session: AsyncSession, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A segment named {name!r} exists already.") from exc


async def do_create_segment(session: AsyncSession, tenant_id: uuid.UUID, name: str, expression: str) -> MemberSegment:
    """Save a segment and evaluate it in full."""
    program = expressions.compile_expression(expression)
    segment = MemberSegment(name=check_name(name), expression=program.expression, created_at=utcnow())
    session.add(segment)
    await _flush_unique(session, segment.name)
    await facts.do_sync_facts(session, tenant_id)
    await do_refresh(session, segment, full=True)
    await session.flush()
    return segment


async def do_update_segment(
    session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, *, name: str | None, expression: str | None
) -> MemberSegment:
    """Rename a segment or change its expression (then it is evaluated in full again)."""
    segment = await get_segment(session, segment_id)
    if expression is not None:
        segment.expression = expressions.compile_expression(expression).expression
    if name is not None:
        segment.name = check_name(name)
        await _flush_unique(session, segment.name)
    if expression is not None:
        await facts.do_sync_facts(session, tenant_id)
        await do_refresh(session, segment, full=True)
    segment.updated_at = utcnow()
    await session.flush()
    return segment


async def do_delete_segment(session: AsyncSession, segment_id: uuid.UUID) -> None:
    segment = await get_segment(session, segment_id)
    await session.delete(segment)
    await session.flush()


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[dict[str, Any]]


def _sample_entry(member: Member, row: MemberFacts) -> dict[str, Any]:
    """A member as the builder shows them: the masked name only, never the name or a phone."""
    name = (member.profile or {}).get("name") or {}
    return {
        "member_id": str(member.id),
        "name_masked": name.get("masked"),
        "city": row.city,
        "stage": row.stage,
    }


async def preview(session: AsyncSession, expression: str, *, on: date | None = None) -> Preview:
    """How many active members an expression selects now, and a few of them (masked)."""
    program = expressions.compile_expression(expression)
    rows = await _active_rows(session)
    day = on or facts.today()
    bitmap = evaluate_rows(program, rows, day)
    by_seq = {row.seq: row for row in rows}
    chosen = [by_seq[seq] for seq in list(bitmap)[:SAMPLE_SIZE]]
    members = {
        m.id: m for m in await session.scalars(select(Member).where(Member.id.in_([r.member_id for r in chosen])))
    }
    return Preview(len(bitmap), [_sample_entry(members[r.member_id], r) for r in chosen if r.member_id in members])


async def member_ids(session: AsyncSession, segment: MemberSegment) -> AsyncIterator[list[uuid.UUID]]:
    """The segment's member ids, in chunks ordered by `seq`."""
    seqs = list(bitmap_of(segment))
    for start in range(0, len(seqs), EXPORT_CHUNK):
        chunk = seqs[start : start + EXPORT_CHUNK]
        rows = await session.scalars(
            select(MemberFacts.member_id).where(MemberFacts.seq.in_(chunk)).order_by(MemberFacts.seq)
        )
        yield list(rows)
