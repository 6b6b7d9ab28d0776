"""Consent per member and purpose: granted or withdrawn, with its source, time and the text version the
member saw. Rows are append-only; the latest row of a member and purpose is the current state.

`require_consent` is what messaging and campaigns call before any use of a member's data: no consent
recorded means no consent.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import NotFound, ValidationFailed
from zhongtai.core.principals import Principal
from zhongtai.members.errors import ConsentMissing
from zhongtai.members.models import Member, MemberConsent


class Purpose(StrEnum):
    MARKETING_MESSAGES = "marketing_messages"
    PROFILING = "profiling"
    SHARE_WITH_CHANNEL = "share_with_channel"  # with the member's dealer, store or guide


PURPOSE_LABELS = {
    Purpose.MARKETING_MESSAGES: "marketing messages",
    Purpose.PROFILING: "profiling",
    Purpose.SHARE_WITH_CHANNEL: "sharing with the member's dealer, store or guide",
}

SOURCES = ("h5", "console", "import")
ERASURE_SOURCE = "erasure"  # the withdrawals written when a member is erased
TEXT_VERSION_MAX = 40


def check_purpose(raw: str) -> Purpose:
    try:
        return Purpose(raw)
    except ValueError:
        known = ", ".join(p.value for p in Purpose)
        raise ValidationFailed(f"Unknown consent purpose {raw!r}; use one of: {known}.", field="purpose") from None


def check_source(raw: str) -> str:
    if raw not in SOURCES:
        raise ValidationFailed(f"Unknown consent source {raw!r}; use one of: {', '.join(SOURCES)}.", field="source")
    return raw


def check_text_version(raw: str) -> str:
    version = (raw or "").strip()
    if not version or len(version) > TEXT_VERSION_MAX:
        raise ValidationFailed(
            f"Give the version of the consent text the member saw (1 to {TEXT_VERSION_MAX} characters).",
            field="text_version",
        )
    return version


async def history(session: AsyncSession, member_id: uuid.UUID, purpose: Purpose | None = None) -> list[MemberConsent]:
    """Every decision of the member, oldest first (per purpose when one is given)."""
    query = select(MemberConsent).where(MemberConsent.member_id == member_id)
    if purpose is not None:
        query = query.where(MemberConsent.purpose == purpose.value)
    rows = await session.scalars(query.order_by(MemberConsent.recorded_at, MemberConsent.id))
    return list(rows)


async def latest(session: AsyncSession, member_id: uuid.UUID, purpose: Purpose) -> MemberConsent | None:
    return await session.scalar(
        select(MemberConsent)
        .where(MemberConsent.member_id == member_id, MemberConsent.purpose == purpose.value)
        .order_by(MemberConsent.recorded_at.desc(), MemberConsent.id.desc())
        .limit(1)
    )


async def current(session: AsyncSession, member_id: uuid.UUID) -> dict[Purpose, MemberConsent | None]:
    """The latest decision per purpose (None: never asked, which counts as no consent)."""
    state: dict[Purpose, MemberConsent | None] = dict.fromkeys(Purpose)
    for row in await history(session, member_id):
        state[Purpose(row.purpose)] = row
    return state


async def has_consent(session: AsyncSession, member_id: uuid.UUID, purpose: str) -> bool:
    """Whether the member's latest decision for `purpose` is a grant (no decision recorded: no)."""
    wanted = check_purpose(purpose)
    status = await session.scalar(select(Member.status).where(Member.id == member_id))
    if status is None or status == "erased":
        return False
    row = await latest(session, member_id, wanted)
    return row is not None and row.granted


async def require_consent(session: AsyncSession, member_id: uuid.UUID, purpose: str) -> None:
    """Refuse (403 `consent_missing`) unless the member consents to `purpose`. Call before any use."""
    wanted = check_purpose(purpose)
    if not await has_consent(session, member_id, wanted.value):
        raise ConsentMissing(
            f"The member has not consented to {PURPOSE_LABELS[wanted]}; do not use their data for it.",
            member_id=str(member_id),
            purpose=wanted.value,
        )


async def append(
    session: AsyncSession,
    member: Member,
    purpose: Purpose,
    *,
    granted: bool,
    source: str,
    text_version: str,
    actor_kind: str,
) -> MemberConsent:
    """Write one decision, strictly after the member's previous one so the order is never ambiguous."""
    previous = await latest(session, member.id, purpose)
    at = utcnow()
    if previous is not None and at <= previous.recorded_at:
        at = previous.recorded_at + timedelta(microseconds=1)
    row = MemberConsent(
        tenant_id=member.tenant_id,
        member_id=member.id,
        purpose=purpose.value,
        granted=granted,
        source=source,
        text_version=text_version,
        actor_kind=actor_kind,
        recorded_at=at,
    )
    session.add(row)
    await session.flush()
    return row


async def do_set_consent(
    session: AsyncSession,
    actor: Principal,
    member_id: uuid.UUID,
    purpose: str,
    *,
    granted: bool,
    source: str,
    text_version: str,
) -> MemberConsent:
    """Record a grant or a withdrawal. The same decision on the same text again adds nothing."""
    wanted = check_purpose(purpose)
    source = check_source(source)
    version = check_text_version(text_version)
    member = await session.scalar(
        select(Member).where(Member.id == member_id).with_for_update().execution_options(populate_existing=True)
    )
    if member is None:
        raise NotFound("No such member.")
    if member.status != "active":
        raise ValidationFailed(
            "This member was merged into another or erased; record consent on the active member.",
            field="member_id",
            status=member.status,
            merged_into_id=str(member.merged_into_id) if member.merged_into_id else None,
        )
    previous = await latest(session, member.id, wanted)
    if previous is not None and previous.granted == granted and previous.text_version == version:
        return previous
    row = await append(
        session, member, wanted, granted=granted, source=source, text_version=version, actor_kind=str(actor.kind)
    )
    await audit.record(
        session,
        actor,
        "members.consent_granted" if granted else "members.consent_withdrawn",
        target_type="member",
        target_id=member.id,
        data={"purpose": wanted.value, "source": source, "text_version": version},
    )
    return row
