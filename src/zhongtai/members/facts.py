"""Member facts: one row per member with what segments and computed tags look at, kept from touches, the
profile, lifecycle and tags; the numpy columns that expressions run on; and what merges, unmerges and
erasure do to facts, touches and tags (one call each from `oneid` and `privacy`).

Facts are recomputed from their sources (never patched by hand), and `updated_at` moves only when a
value changes, so incremental segment refresh re-evaluates exactly the members that changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.sql import insert_ignore
from zhongtai.members import expressions as ex
from zhongtai.members import segment_models as m
from zhongtai.members.models import Member
from zhongtai.members.rules import age_on
from zhongtai.members.segment_models import (
    MemberFacts,
    MemberLifecycleSettings,
    MemberTag,
    MemberTagAssignment,
    MemberTouch,
)

CHINA = timezone(timedelta(hours=8))
ACTIVE_MEMBER = "active"  # `oneid.ACTIVE`; merged and erased members belong to no segment
PURCHASE, SCAN = "purchase", "scan"
CHUNK = 1000


def local_date(at: datetime) -> date:
    """The day in China Standard Time, in which brands count days."""
    return at.astimezone(CHINA).date()


def today() -> date:
    return local_date(utcnow())


async def settings_of(session: AsyncSession, tenant_id: uuid.UUID) -> MemberLifecycleSettings:
    """The brand's settings row, created with the defaults the first time."""
    await session.execute(
        insert_ignore(session, MemberLifecycleSettings, "tenant_id").values(
            id=new_id(), tenant_id=tenant_id, last_seq=0, updated_at=utcnow()
        )
    )
    row = await session.scalar(select(MemberLifecycleSettings).where(MemberLifecycleSettings.tenant_id == tenant_id))
    assert row is not None
    return row


async def read_settings(session: AsyncSession) -> MemberLifecycleSettings:
    """The brand's settings for reading: its row, or the defaults (not stored) when it has none."""
    row = await session.scalar(select(MemberLifecycleSettings))
    return row or MemberLifecycleSettings(
        new_days=m.DEFAULT_NEW_DAYS,
        at_risk_days=m.DEFAULT_AT_RISK_DAYS,
        dormant_days=m.DEFAULT_DORMANT_DAYS,
        churned_days=m.DEFAULT_CHURNED_DAYS,
        last_seq=0,
        lifecycle_ran_on=None,
    )


async def _next_seqs(session: AsyncSession, tenant_id: uuid.UUID, count: int) -> list[int]:
    """`count` fresh dense sequence numbers, taken with one conditional UPDATE (safe under races)."""
    await settings_of(session, tenant_id)
    last = await session.scalar(
        update(MemberLifecycleSettings)
        .where(MemberLifecycleSettings.tenant_id == tenant_id)
        .values(last_seq=MemberLifecycleSettings.last_seq + count)
        .returning(MemberLifecycleSettings.last_seq)
        .execution_options(synchronize_session=False)
    )
    assert last is not None
    return list(range(last - count + 1, last + 1))


def _profile_values(member: Member) -> dict[str, Any]:
    profile = member.profile or {}
    birthday = (profile.get("birthday") or {}).get("value")
    try:
        birth = date.fromisoformat(birthday) if birthday else None
    except ValueError:
        birth = None
    return {
        "city": (profile.get("city") or {}).get("value"),
        "gender": (profile.get("gender") or {}).get("value"),
        "birth_date": birth,
    }


async def _touch_values(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    is_purchase = MemberTouch.kind == PURCHASE
    rows = await session.execute(
        select(
            MemberTouch.member_id,
            func.sum(case((MemberTouch.kind == SCAN, 1), else_=0)),
            func.sum(case((is_purchase, 1), else_=0)),
            func.sum(case((is_purchase, MemberTouch.amount_fen), else_=0)),
            func.min(MemberTouch.at),
            func.max(MemberTouch.at),
            func.max(case((is_purchase, MemberTouch.at), else_=None)),
        )
        .where(MemberTouch.member_id.in_(ids))
        .group_by(MemberTouch.member_id)
    )
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for member_id, scans, purchases, spend, first, last, last_purchase in rows:
        found[member_id] = {
            "scans": int(scans or 0),
            "purchases": int(purchases or 0),
            "spend_fen": int(spend or 0),
            "first_touch_at": first,
            "last_touch_at": last,
            "last_purchase_at": last_purchase,
            "channels": [],
        }
    channels = await session.execute(
        select(MemberTouch.member_id, MemberTouch.channel)
        .where(MemberTouch.member_id.in_(ids), MemberTouch.channel.is_not(None))
        .distinct()
    )
    for member_id, channel in channels:
        found[member_id]["channels"].append(channel)
    for values in found.values():
        values["channels"].sort()
    return found


_NO_TOUCHES: dict[str, Any] = {
    "scans": 0,
    "purchases": 0,
    "spend_fen": 0,
    "first_touch_at": None,
    "last_touch_at": None,
    "last_purchase_at": None,
    "channels": [],
}


async def _manual_tags(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    found: dict[uuid.UUID, set[str]] = {}
    for start in range(0, len(ids), CHUNK):  # bound the statement's parameters on both tiers
        rows = await session.execute(
            select(MemberTagAssignment.member_id, MemberTag.name)
            .join(MemberTag, MemberTag.id == MemberTagAssignment.tag_id)
            .where(MemberTagAssignment.member_id.in_(ids[start : start + CHUNK]))
        )
        for member_id, name in rows:
            found.setdefault(member_id, set()).add(name)
    return found


async def computed_tags(session: AsyncSession) -> list[tuple[str, ex.Compiled]]:
    rows = await session.execute(
        select(MemberTag.name, MemberTag.expression).where(MemberTag.kind == "computed").order_by(MemberTag.name)
    )
    return [(name, ex.compile_expression(expression, allow_tags=False)) for name, expression in rows if expression]


def _assign(row: MemberFacts, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _normalised(value: Any) -> Any:
    # SQLite returns naive datetimes from aggregates; facts keep aware UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def _locked_rows(
    session: AsyncSession, tenant_id: uuid.UUID, members: dict[uuid.UUID, Member], at: datetime
) -> list[MemberFacts]:
    """The members' facts rows, created if missing, locked in member order.

    The lock makes concurrent refreshes of one member take turns, so each aggregates the touches the
    other committed (no lost count). A row two transactions create at once is inserted once; the
    loser's `seq` stays unused, which a bitmap does not mind."""
    ids = sorted(members)
    known = set(await session.scalars(select(MemberFacts.member_id).where(MemberFacts.member_id.in_(ids))))
    missing = [i for i in ids if i not in known]
    if missing:
        seqs = await _next_seqs(session, tenant_id, len(missing))
        await session.execute(
            insert_ignore(session, MemberFacts, "tenant_id", "member_id").values(
                [_new_row(tenant_id, members[i], seq, at) for i, seq in zip(missing, seqs, strict=True)]
            )
        )
    rows = await session.scalars(
        select(MemberFacts)
        .where(MemberFacts.member_id.in_(ids))
        .order_by(MemberFacts.member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows)


def _new_row(tenant_id: uuid.UUID, member: Member, seq: int, at: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "member_id": member.id,
        "seq": seq,
        "is_active": True,
        "stage": "new",
        "stage_since": local_date(member.created_at),
        "scans": 0,
        "purchases": 0,
        "spend_fen": 0,
        "channels": [],
        "tags": [],
        "joined_at": member.created_at,
        "updated_at": at,
    }


async def do_refresh_facts(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: Iterable[uuid.UUID], *, at: datetime | None = None
) -> list[MemberFacts]:
    """Recompute the facts of these members from their sources (creating missing rows with a fresh
    `seq`) and stamp `updated_at` on the rows whose values changed. Rows come back in member order."""
    now = at or utcnow()
    wanted = sorted(set(member_ids))
    members = {m.id: m for m in await session.scalars(select(Member).where(Member.id.in_(wanted)))} if wanted else {}
    if not members:
        return []
    rows = await _locked_rows(session, tenant_id, members, now)
    ids = [row.member_id for row in rows]
    touches = await _touch_values(session, ids)
    manual = await _manual_tags(session, ids)
    for row in rows:
        member = members[row.member_id]
        is_active = member.status == ACTIVE_MEMBER
        values = {
            "is_active": is_active,
            "member_updated_at": member.updated_at,
            **_profile_values(member),
            **{k: _normalised(v) for k, v in touches.get(row.member_id, _NO_TOUCHES).items()},
        }
        if _assign(row, values):
            row.updated_at = now
    await _refresh_tags(session, rows, manual, now)
    await session.flush()
    return rows


async def do_refresh_tags(session: AsyncSession, rows: list[MemberFacts], *, at: datetime | None = None) -> None:
    """Recompute the tags of these members (after a computed tag or other facts changed)."""
    manual = await _manual_tags(session, [row.member_id for row in rows]) if rows else {}
    await _refresh_tags(session, rows, manual, at or utcnow())
    await session.flush()


async def _refresh_tags(
    session: AsyncSession, rows: list[MemberFacts], manual: dict[uuid.UUID, set[str]], now: datetime
) -> None:
    """Tags = manual ∪ computed (computed tags look at the other facts, never at tags)."""
    programs = await computed_tags(session)
    hits: dict[uuid.UUID, set[str]] = {}
    if programs and rows:
        columns = columns_of(rows, today())
        for name, program in programs:
            for row, hit in zip(rows, program.matches(columns), strict=True):
                if hit:
                    hits.setdefault(row.member_id, set()).add(name)
    for row in rows:
        tags = sorted(manual.get(row.member_id, set()) | hits.get(row.member_id, set())) if row.is_active else []
        if list(row.tags or []) != tags:
            row.tags = tags
            row.updated_at = now


async def do_sync_facts(session: AsyncSession, tenant_id: uuid.UUID, *, at: datetime | None = None) -> int:
    """Refresh the facts of members that have none yet or whose record changed since (profile, status):
    what a segment refresh and the daily job do first. Returns how many members were looked at."""
    stale = await session.scalars(
        select(Member.id)
        .outerjoin(MemberFacts, MemberFacts.member_id == Member.id)
        .where(
            (MemberFacts.id.is_(None))
            | (MemberFacts.member_updated_at.is_(None))
            | (MemberFacts.member_updated_at != Member.updated_at)
        )
    )
    ids = list(stale)
    for start in range(0, len(ids), CHUNK):
        await do_refresh_facts(session, tenant_id, ids[start : start + CHUNK], at=at)
    return len(ids)


# --- columns for expressions ----------------------------------------------------------------------


def _days_since(at: datetime | None, on: date) -> int | None:
    return None if at is None else (on - local_date(_normalised(at))).days


def fact_values(row: MemberFacts, on: date) -> dict[str, Any]:
    """A member's facts as expressions see them on a day; missing values are left out."""
    values: dict[str, Any] = {
        "city": row.city,
        "gender": row.gender,
        "birthday_month": row.birth_date.month if row.birth_date else None,
        "age": age_on(row.birth_date, on) if row.birth_date else None,
        "stage": row.stage,
        "recency_score": row.recency_score,
        "frequency_score": row.frequency_score,
        "monetary_score": row.monetary_score,
        "scans": row.scans,
        "purchases": row.purchases,
        "spend_fen": row.spend_fen,
        "days_since_touch": _days_since(row.last_touch_at, on),
        "channels": list(row.channels or []),
        "tags": list(row.tags or []),
    }
    return {k: v for k, v in values.items() if v is not None}


def columns_of(rows: Sequence[MemberFacts], on: date) -> ex.Columns:
    """numpy columns of these members' facts, in the order of `rows`."""
    size = len(rows)
    records = [fact_values(row, on) for row in rows]
    values: dict[str, Any] = {}
    present: dict[str, Any] = {}
    lists: dict[str, dict[str, Any]] = {}
    for name, fact in ex.FACTS.items():
        if fact.type is ex.FactType.STRING_LIST:
            by_value: dict[str, Any] = {}
            for index, record in enumerate(records):
                for item in record[name]:
                    by_value.setdefault(item, np.zeros(size, dtype=np.bool_))[index] = True
            lists[name] = by_value
            continue
        raw = [record.get(name) for record in records]
        present[name] = np.fromiter((v is not None for v in raw), dtype=np.bool_, count=size)
        if fact.type is ex.FactType.INT:
            values[name] = np.fromiter((0 if v is None else v for v in raw), dtype=np.int64, count=size)
        else:
            values[name] = np.array(raw, dtype=object) if size else np.zeros(0, dtype=object)
    return ex.Columns(size, values, present, lists)


# --- column-wise loading ---------------------------------------------------------------------------

LOAD_CHUNK = 200_000
# The `member_facts` columns each fact is computed from.
_SOURCES: dict[str, str] = {
    "city": "city",
    "gender": "gender",
    "birthday_month": "birth_date",
    "age": "birth_date",
    "stage": "stage",
    "recency_score": "recency_score",
    "frequency_score": "frequency_score",
    "monetary_score": "monetary_score",
    "scans": "scans",
    "purchases": "purchases",
    "spend_fen": "spend_fen",
    "days_since_touch": "last_touch_at",
    "channels": "channels",
    "tags": "tags",
}


async def load_columns(
    session: AsyncSession, names: Iterable[str], on: date, *, chunk: int = LOAD_CHUNK
) -> tuple[np.ndarray[Any, np.dtype[np.uint32]], ex.Columns]:
    """The active members' `seq` and the columns of the facts `names`, read as plain column tuples in
    chunks of `seq` (no ORM objects: a full refresh over millions of members stays in C-level arrays).
    String facts come dictionary-encoded; values are those `fact_values` gives."""
    wanted = sorted(set(names))
    sources = sorted({_SOURCES[name] for name in wanted})
    read: dict[str, list[Any]] = {source: [] for source in sources}
    seqs: list[int] = []
    last = -1
    tenant_id = tenancy.current_scope(session)
    if not isinstance(tenant_id, uuid.UUID):
        raise tenancy.UnscopedTenantQuery("facts are loaded for one brand")
    # Core execution with the brand's filter written out: no ORM bookkeeping per row.
    connection = await session.connection()
    while True:
        rows = (
            await connection.execute(
                select(MemberFacts.seq, *(getattr(MemberFacts, source) for source in sources))
                .where(MemberFacts.tenant_id == tenant_id, MemberFacts.is_active.is_(True), MemberFacts.seq > last)
                .order_by(MemberFacts.seq)
                .limit(chunk)
            )
        ).all()
        if not rows:
            break
        for position, values in enumerate(zip(*rows, strict=True)):
            if position == 0:
                seqs.extend(values)
            else:
                read[sources[position - 1]].extend(values)
        last = int(rows[-1][0])
        if len(rows) < chunk:
            break
    return np.array(seqs, dtype=np.uint32), _columns_from(wanted, read, len(seqs), on)


def _columns_from(wanted: list[str], read: dict[str, list[Any]], size: int, on: date) -> ex.Columns:
    columns = ex.Columns(size, {}, {}, {})
    for name in wanted:
        fact, raw = ex.FACTS[name], read[_SOURCES[name]]
        if fact.type is ex.FactType.STRING_LIST:
            by_value: dict[str, Any] = {}
            for index, items in enumerate(raw):
                for item in items or []:
                    by_value.setdefault(item, np.zeros(size, dtype=np.bool_))[index] = True
            columns.lists[name] = by_value
            continue
        if name == "birthday_month":
            raw = [None if d is None else d.month for d in raw]
        elif name == "age":
            raw = [None if d is None else age_on(d, on) for d in raw]
        elif name == "days_since_touch":
            raw = [_days_since(at, on) for at in raw]
        if fact.type is ex.FactType.STRING:
            vocabulary: dict[str, int] = {}
            codes = np.fromiter(
                (-1 if v is None else vocabulary.setdefault(v, len(vocabulary)) for v in raw),
                dtype=np.int32,
                count=size,
            )
            columns.values[name], columns.present[name] = codes, codes >= 0
            columns.vocabularies[name] = vocabulary
            continue
        columns.present[name] = np.fromiter((v is not None for v in raw), dtype=np.bool_, count=size)
        columns.values[name] = np.fromiter((0 if v is None else v for v in raw), dtype=np.int64, count=size)
    return columns


# --- merges, unmerges and erasure -----------------------------------------------------------------


async def on_merged(session: AsyncSession, survivor: Member, merged: Member) -> None:
    """The merged member's touches and manual tags follow the survivor; both members' facts are
    recomputed (the merged one leaves every segment)."""
    await session.execute(
        update(MemberTouch)
        .where(MemberTouch.member_id == merged.id)
        .values(member_id=survivor.id)
        .execution_options(synchronize_session=False)
    )
    tags = list(
        await session.scalars(select(MemberTagAssignment.tag_id).where(MemberTagAssignment.member_id == merged.id))
    )
    for tag_id in tags:
        await session.execute(
            insert_ignore(session, MemberTagAssignment, "tenant_id", "tag_id", "member_id").values(
                id=new_id(),
                tenant_id=survivor.tenant_id,
                tag_id=tag_id,
                member_id=survivor.id,
                assigned_at=utcnow(),
            )
        )
    await session.execute(
        delete(MemberTagAssignment)
        .where(MemberTagAssignment.member_id == merged.id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await do_refresh_facts(session, survivor.tenant_id, [survivor.id, merged.id])


async def on_unmerged(session: AsyncSession, survivor: Member, merged: Member) -> None:
    """Touches recorded for the merged member go back to it; manual tags stay where they are now."""
    await session.execute(
        update(MemberTouch)
        .where(MemberTouch.member_id == survivor.id, MemberTouch.origin_member_id == merged.id)
        .values(member_id=merged.id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await do_refresh_facts(session, survivor.tenant_id, [survivor.id, merged.id])


async def on_erased(session: AsyncSession, members: Sequence[Member]) -> None:
    """Erased members leave every segment, lose their manual tags, and their personal facts (city,
    gender, birth date) are cleared: facts are recomputed from the emptied profile."""
    if not members:
        return
    ids = [m.id for m in members]
    await session.execute(
        delete(MemberTagAssignment)
        .where(MemberTagAssignment.member_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await do_refresh_facts(session, members[0].tenant_id, ids)
