"""Tags: manual tags that staff assign and remove (every change logged), and computed tags — a CEL
expression over member facts, kept on each member's facts when the facts change and by the daily job."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.core.principals import Principal
from zhongtai.core.sql import insert_ignore
from zhongtai.members import expressions, facts, oneid
from zhongtai.members.segment_models import MemberFacts, MemberTag, MemberTagAssignment, MemberTagLog

MANUAL, COMPUTED = "manual", "computed"
NAME = re.compile(r"^[\w\-.:]{1,40}$")


def check_tag(name: str, kind: str, expression: str | None) -> str | None:
    """The tag's expression, compiled to check it (computed tags cannot look at tags)."""
    if not NAME.match(name or ""):
        raise ValidationFailed("A tag name has 1 to 40 letters, digits, '_', '-', '.' or ':'.", field="name")
    if kind == MANUAL:
        if expression:
            raise ValidationFailed("A manual tag has no expression.", field="expression")
        return None
    if kind != COMPUTED:
        raise ValidationFailed("A tag is 'manual' or 'computed'.", field="kind")
    return expressions.compile_expression(expression or "", allow_tags=False).expression


async def list_tags(session: AsyncSession) -> list[MemberTag]:
    return list(await session.scalars(select(MemberTag).order_by(MemberTag.name)))


async def get_tag(session: AsyncSession, name: str) -> MemberTag:
    tag = await session.scalar(select(MemberTag).where(MemberTag.name == name))
    if tag is None:
        raise NotFound(f"No tag named {name!r}.")
    return tag


async def do_create_tag(session: AsyncSession, name: str, kind: str, expression: str | None) -> MemberTag:
    """Create a tag; a computed one is applied to every member at once."""
    checked = check_tag(name, kind, expression)
    tag = MemberTag(name=name, kind=kind, expression=checked, created_at=utcnow())
    try:
        async with session.begin_nested():
            session.add(tag)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A tag named {name!r} exists already.") from exc
    if kind == COMPUTED:
        rows = list(await session.scalars(select(MemberFacts).where(MemberFacts.is_active.is_(True))))
        await facts.do_refresh_tags(session, rows)
    return tag


async def _log(session: AsyncSession, actor: Principal, tag: MemberTag, member_id: uuid.UUID, action: str) -> None:
    session.add(
        MemberTagLog(tag_id=tag.id, member_id=member_id, action=action, actor_label=actor.label[:254], at=utcnow())
    )


async def _manual(session: AsyncSession, name: str) -> MemberTag:
    tag = await get_tag(session, name)
    if tag.kind != MANUAL:
        raise ValidationFailed(f"{name!r} is computed from facts; it cannot be assigned by hand.", field="tag")
    return tag


async def do_assign(session: AsyncSession, actor: Principal, name: str, member_id: uuid.UUID) -> bool:
    """Put a manual tag on an active member; returns whether it was new (logged only then)."""
    tag = await _manual(session, name)
    member = await oneid.get_member(session, member_id)
    if member.status != oneid.ACTIVE:
        raise ValidationFailed("Only active members are tagged.", field="member_id")
    inserted = await session.execute(
        insert_ignore(session, MemberTagAssignment, "tenant_id", "tag_id", "member_id")
        .values(id=new_id(), tenant_id=member.tenant_id, tag_id=tag.id, member_id=member.id, assigned_at=utcnow())
        .returning(MemberTagAssignment.id)
    )
    if inserted.scalar() is None:
        return False
    await _log(session, actor, tag, member.id, "assign")
    await facts.do_refresh_facts(session, member.tenant_id, [member.id])
    return True


async def do_unassign(session: AsyncSession, actor: Principal, name: str, member_id: uuid.UUID) -> bool:
    """Remove a manual tag; returns whether the member had it (logged only then)."""
    tag = await _manual(session, name)
    member = await oneid.get_member(session, member_id)
    removed = await session.execute(
        delete(MemberTagAssignment)
        .where(MemberTagAssignment.tag_id == tag.id, MemberTagAssignment.member_id == member.id)
        .execution_options(synchronize_session=False)
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        return False
    await _log(session, actor, tag, member.id, "unassign")
    await facts.do_refresh_facts(session, member.tenant_id, [member.id])
    return True


async def log_of(session: AsyncSession, member_id: uuid.UUID) -> list[tuple[MemberTagLog, str]]:
    rows = await session.execute(
        select(MemberTagLog, MemberTag.name)
        .join(MemberTag, MemberTag.id == MemberTagLog.tag_id)
        .where(MemberTagLog.member_id == member_id)
        .order_by(MemberTagLog.at, MemberTagLog.id)
    )
    return [(log, name) for log, name in rows]
