"""What earns points: a consumer's first verified open of a bottle, a paid order, the daily sign-in,
a completed profile, a review — and the daily job that expires points and applies downgrades.

Events arrive in the producer's transaction (a scan, a payment); they only enqueue a job
(`members.points.earn`, deduplicated on rule and source), so a scan or a payment never fails or
waits because of points. The job resolves the consumer to their member — creating the member from
the consumer account when the brand has none yet, as a consumer who scans is a person of the brand —
and earns once per (rule, source).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes.events import ItemEvent
from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.settings import Settings
from zhongtai.members import loyalty, points, privacy
from zhongtai.members import loyalty_rules as lr
from zhongtai.members.loyalty_models import LoyaltyMembership, LoyaltyProgram, PointsRule, PointsSignIn
from zhongtai.members.models import Member

EARN_TOPIC = "members.points.earn"
EARN_BATCH = 500  # earnings one earn job takes at once (its own and pending siblings of the brand)
DAILY_TOPIC = "members.points.daily"
PROFILE_FIELDS = ("name", "birthday", "gender", "city")


@dataclass(frozen=True)
class PurchasePaid:
    """A paid order as members sees it (`domains.wire()` adapts sales' `OrderPaid` to this)."""

    tenant_id: uuid.UUID
    order_id: uuid.UUID
    consumer_id: uuid.UUID
    amount_fen: int


@dataclass(frozen=True)
class SignedIn:
    day_streak: int
    earned: int
    is_new: bool


def _actor(tenant_id: uuid.UUID) -> Principal:
    return Principal(
        kind=PrincipalKind.SYSTEM, id=uuid.UUID(int=0), tenant_id=tenant_id, label="points", permissions=frozenset()
    )


async def _enqueue_earn(session: AsyncSession, tenant_id: uuid.UUID, payload: dict[str, Any]) -> None:
    key = f"points:{payload['kind']}:{payload['source']}"
    await jobs.enqueue(session, EARN_TOPIC, payload, tenant_id=tenant_id, dedupe_key=key)


async def on_item_event(session: AsyncSession, event: ItemEvent) -> bool:
    """Subscriber of `ItemEvent`: a consumer's first verified open of a bottle earns once per bottle."""
    if event.kind != "consumer_open" or event.consumer_id is None:
        return False
    payload = {"kind": "scan", "source": f"code:{event.code_id}", "consumer_id": str(event.consumer_id)}
    await _enqueue_earn(session, event.tenant_id, payload | {"at": event.occurred_at.isoformat()})
    return True


async def on_purchase_paid(session: AsyncSession, event: PurchasePaid) -> bool:
    """A paid order earns points per whole yuan, once per order."""
    payload = {
        "kind": "purchase",
        "source": f"order:{event.order_id}",
        "consumer_id": str(event.consumer_id),
        "amount_fen": event.amount_fen,
        "at": utcnow().isoformat(),
    }
    await _enqueue_earn(session, event.tenant_id, payload)
    return True


async def do_reverse_purchase(session: AsyncSession, order_id: uuid.UUID) -> None:
    """A refunded order takes back what it earned (see `points.do_reverse_earning`)."""
    await points.do_reverse_earning(session, rule="purchase", source=f"order:{order_id}")


async def do_earn_for_consumer(
    session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, payload: dict[str, Any]
) -> points.Earned | None:
    """Earn what the payload describes for the consumer's member (created when missing)."""
    kind = str(payload["kind"])
    rule = await loyalty.active_rule(session, kind)
    if rule is None:
        return None
    consumer_id = uuid.UUID(str(payload["consumer_id"]))
    member = await privacy.ensure_member_for_consumer(session, _actor(tenant_id), crypto, consumer_id)
    amount_fen = int(str(payload.get("amount_fen", 0)))
    earned = lr.purchase_points(rule.points, amount_fen) if kind == "purchase" else rule.points
    at = datetime.fromisoformat(str(payload["at"])) if payload.get("at") else None
    return await points.do_earn(
        session, member.id, rule, source=str(payload["source"]), points=earned, qualifying_fen=amount_fen, at=at
    )


async def do_earn_for_consumers(
    session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, payloads: list[dict[str, Any]]
) -> list[points.Earned | None]:
    """`do_earn_for_consumer` for many payloads with one `points.do_earn_many` (one ledger batch)."""
    rules: dict[str, PointsRule | None] = {}
    requests: list[points.EarnRequest] = []
    for payload in payloads:
        kind = str(payload["kind"])
        if kind not in rules:
            rules[kind] = await loyalty.active_rule(session, kind)
        rule = rules[kind]
        if rule is None:
            continue
        consumer_id = uuid.UUID(str(payload["consumer_id"]))
        member = await privacy.ensure_member_for_consumer(session, _actor(tenant_id), crypto, consumer_id)
        requests.append(_request(member.id, rule, payload))
    return await points.do_earn_many(session, requests)


def _request(member_id: uuid.UUID, rule: PointsRule, payload: dict[str, Any]) -> points.EarnRequest:
    amount_fen = int(str(payload.get("amount_fen", 0)))
    earned = lr.purchase_points(rule.points, amount_fen) if rule.kind == "purchase" else rule.points
    at = datetime.fromisoformat(str(payload["at"])) if payload.get("at") else None
    return points.EarnRequest(member_id, rule, str(payload["source"]), earned, amount_fen, at)


@jobs.job_handler(EARN_TOPIC)
async def earn_job(ctx: jobs.JobContext) -> None:
    """Earn this job's payload and up to `EARN_BATCH - 1` other pending earnings of the brand in one
    batch. If the batch fails (a member merged meanwhile, say), its savepoint is undone, the other
    jobs stay pending, and this job earns its own payload alone."""
    settings = ctx.database.settings if ctx.database is not None else Settings()
    crypto = Crypto(settings.secrets)
    try:
        async with ctx.session.begin_nested():
            siblings = await jobs.take_siblings(ctx, EARN_BATCH - 1)
            await do_earn_for_consumers(ctx.session, crypto, ctx.tenant_id, [ctx.payload, *siblings])
            return
    except AppError:
        pass
    await do_earn_for_consumer(ctx.session, crypto, ctx.tenant_id, ctx.payload)


async def do_sign_in(session: AsyncSession, member_id: uuid.UUID, at: datetime | None = None) -> SignedIn:
    """The member's sign-in of the day (China calendar): once a day, with the streak's points."""
    now = at or utcnow()
    today = lr.china_day(now)
    await points.lock_member(session, member_id)
    done = await session.scalar(
        select(PointsSignIn).where(PointsSignIn.member_id == member_id, PointsSignIn.day == today)
    )
    if done is not None:
        lot = await points.lot_by_source(session, "sign_in", f"sign-in:{member_id}:{today}")
        return SignedIn(done.streak, lot.amount if lot else 0, False)
    last = await session.scalar(
        select(PointsSignIn).where(PointsSignIn.member_id == member_id).order_by(PointsSignIn.day.desc()).limit(1)
    )
    streak = lr.next_streak(last.day if last else None, last.streak if last else 0, today)
    session.add(PointsSignIn(member_id=member_id, day=today, streak=streak, signed_at=now))
    await session.flush()
    rule = await loyalty.active_rule(session, "sign_in")
    if rule is None:
        return SignedIn(streak, 0, True)
    amount = lr.sign_in_points(rule.points, rule.streak_bonus, rule.streak_cap, streak)
    earned = await points.do_earn(
        session, member_id, rule, source=f"sign-in:{member_id}:{today}", points=amount, at=now
    )
    return SignedIn(streak, earned.lot.amount if earned else 0, True)


async def do_earn_profile_completion(session: AsyncSession, member: Member) -> points.Earned | None:
    """Once per member, when their profile holds a name, birthday, gender and city."""
    rule = await loyalty.active_rule(session, "profile")
    if rule is None or not all(member.profile.get(name) for name in PROFILE_FIELDS):
        return None
    return await points.do_earn(session, member.id, rule, source=f"profile:{member.id}", points=rule.points)


async def do_earn_review(session: AsyncSession, member_id: uuid.UUID, review_ref: str) -> points.Earned | None:
    """A review (named by the caller's own reference, e.g. "order:{id}") earns once."""
    rule = await loyalty.active_rule(session, "review")
    if rule is None:
        return None
    return await points.do_earn(session, member_id, rule, source=f"review:{review_ref}"[:120], points=rule.points)


# ------------------------------------------------------------------------------------------ daily job


async def schedule_daily(session: AsyncSession, tenant_id: uuid.UUID, at: datetime | None = None) -> None:
    """Enqueue the brand's daily run for the next China day (once per day: deduplicated)."""
    now = at or utcnow()
    day = lr.china_day(now)
    start = datetime(day.year, day.month, day.day, tzinfo=lr.CHINA) + timedelta(days=1, minutes=5)
    await jobs.enqueue(
        session,
        DAILY_TOPIC,
        {"day": str(day + timedelta(days=1))},
        tenant_id=tenant_id,
        dedupe_key=f"points-daily:{day + timedelta(days=1)}",
        delay_seconds=max((start - now).total_seconds(), 0),
    )


async def do_daily(session: AsyncSession, at: datetime | None = None) -> tuple[int, int]:
    """Expire lapsed points and re-evaluate tiers whose period ended (or that roll): (points expired,
    memberships looked at). Idempotent."""
    now = at or utcnow()
    expired = 0
    while batch := await points.do_expire_due(session, now):
        expired += batch
    due = await session.scalars(
        select(LoyaltyMembership.member_id)
        .join(LoyaltyProgram, LoyaltyProgram.id == LoyaltyMembership.program_id)
        .where((LoyaltyMembership.period_ends_at <= now) | (LoyaltyProgram.downgrade_mode == "rolling"))
        .distinct()
    )
    members = sorted(set(due))
    for member_id in members:
        await points.lock_member(session, member_id)
        await loyalty.do_refresh_tiers(session, member_id, now)
    return expired, len(members)


@jobs.job_handler(DAILY_TOPIC)
async def daily_job(ctx: jobs.JobContext) -> None:
    await do_daily(ctx.session)
    await schedule_daily(ctx.session, ctx.tenant_id)
