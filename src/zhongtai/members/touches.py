"""Touches: every contact with a member — a purchase, a verified scan, a guide's call, a message, an app
visit — recorded once per (kind, reference), with the member's facts and stage brought up to date.

Producers tell members about a consumer (a verified scan, a paid order). Finding the consumer's
member needs the installation's lookup key, which an in-transaction subscriber does not hold, so the
subscriber writes a `members.touch` job in the producer's transaction (deduplicated on kind and
reference) and the job records the touch. A consumer who is not a member yet is skipped: the platform
does not create a person's record because they scanned a bottle; the touch counts once they join.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes.events import ItemEvent
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import NotFound, ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.core.jobs import JobContext, enqueue, job_handler
from zhongtai.core.settings import Settings
from zhongtai.core.sql import insert_ignore
from zhongtai.members import facts, lifecycle, oneid, privacy
from zhongtai.members.segment_models import MemberFacts, MemberTouch

TOUCH_TOPIC = "members.touch"
TOUCH_KINDS = ("purchase", "scan", "guide_call", "message", "app_visit")
REVIVED = frozenset({lifecycle.AT_RISK, lifecycle.DORMANT, lifecycle.CHURNED})


@dataclass(frozen=True)
class ConsumerTouch:
    """A touch of a consumer account, as producers report it (see `zhongtai.domains.wire`)."""

    tenant_id: uuid.UUID
    consumer_id: uuid.UUID
    kind: str
    ref: str
    at: datetime
    channel: str | None = None
    amount_fen: int = 0


def check_touch(kind: str, ref: str, amount_fen: int) -> None:
    if kind not in TOUCH_KINDS:
        raise ValidationFailed(f"Unknown touch kind {kind!r}; use one of {', '.join(TOUCH_KINDS)}.", field="kind")
    if not ref or len(ref) > 120:
        raise ValidationFailed("A touch needs a reference of 1 to 120 characters.", field="ref")
    if amount_fen < 0:
        raise ValidationFailed("An amount is never negative.", field="amount_fen")


async def record_touch(
    session: AsyncSession,
    member_id: uuid.UUID,
    kind: str,
    at: datetime,
    ref: str,
    *,
    channel: str | None = None,
    amount_fen: int = 0,
) -> bool:
    """Record a touch once per (kind, ref); returns whether it is new. A new touch updates the member's
    facts, and a member at risk, dormant or churned is active or won back at once."""
    check_touch(kind, ref, amount_fen)
    member = await oneid.get_member(session, member_id)
    inserted = await session.execute(
        insert_ignore(session, MemberTouch, "tenant_id", "kind", "ref")
        .values(
            id=new_id(),
            tenant_id=member.tenant_id,
            member_id=member.id,
            origin_member_id=member.id,
            kind=kind,
            ref=ref,
            channel=channel,
            amount_fen=amount_fen,
            at=at,
        )
        .returning(MemberTouch.id)
    )
    if inserted.scalar() is None:
        return False
    now = utcnow()
    (row,) = await facts.do_refresh_facts(session, member.tenant_id, [member.id], at=now)
    if row.stage in REVIVED:
        settings = await facts.settings_of(session, member.tenant_id)
        lifecycle.apply_stage(session, row, lifecycle.Thresholds.of(settings), facts.today(), now)
        await session.flush()
    return True


async def touches_of(session: AsyncSession, member_id: uuid.UUID, limit: int = 100) -> list[MemberTouch]:
    rows = await session.scalars(
        select(MemberTouch).where(MemberTouch.member_id == member_id).order_by(MemberTouch.at.desc()).limit(limit)
    )
    return list(rows)


async def touch_by_ref(session: AsyncSession, kind: str, ref: str) -> MemberTouch:
    touch = await session.scalar(select(MemberTouch).where(MemberTouch.kind == kind, MemberTouch.ref == ref))
    if touch is None:
        raise NotFound("No such touch.")
    return touch


async def facts_of(session: AsyncSession, member_id: uuid.UUID) -> MemberFacts | None:
    return await session.scalar(select(MemberFacts).where(MemberFacts.member_id == member_id))


# --- subscribers ---------------------------------------------------------------------------------


async def on_consumer_touch(session: AsyncSession, touch: ConsumerTouch) -> None:
    """Subscriber side: schedule the touch in the producer's transaction (once per kind and ref)."""
    await enqueue(
        session,
        TOUCH_TOPIC,
        {
            "consumer_id": str(touch.consumer_id),
            "kind": touch.kind,
            "ref": touch.ref,
            "at": touch.at.isoformat(),
            "channel": touch.channel,
            "amount_fen": touch.amount_fen,
        },
        tenant_id=touch.tenant_id,
        dedupe_key=f"{TOUCH_TOPIC}:{touch.kind}:{touch.ref}"[:200],
    )


async def on_item_event(session: AsyncSession, event: ItemEvent) -> None:
    """Subscriber of `codes.events.ItemEvent`: a consumer's verified opening of a bottle is a scan touch."""
    if event.kind != "consumer_open" or event.consumer_id is None:
        return
    touch = ConsumerTouch(
        tenant_id=event.tenant_id,
        consumer_id=event.consumer_id,
        kind="scan",
        ref=f"{event.source_ref}:{event.code_id}"[:120],
        at=event.occurred_at,
        channel="scan",
    )
    await on_consumer_touch(session, touch)


@job_handler(TOUCH_TOPIC)
async def touch_job(ctx: JobContext) -> None:
    """Record a consumer's touch on their member (skipped while the consumer is not a member)."""
    settings = ctx.database.settings if ctx.database is not None else Settings()
    payload = ctx.payload
    member = await privacy.member_for_consumer(ctx.session, Crypto(settings.secrets), uuid.UUID(payload["consumer_id"]))
    if member is None or member.status != facts.ACTIVE_MEMBER:
        return
    await record_touch(
        ctx.session,
        member.id,
        payload["kind"],
        datetime.fromisoformat(payload["at"]),
        payload["ref"],
        channel=payload.get("channel"),
        amount_fen=int(payload.get("amount_fen") or 0),
    )
