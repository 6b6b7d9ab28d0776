"""Loyalty programs, tiers and memberships: configuration, tier evaluation and the benefits read.

A member earns points through `members.points`; each earning enrols them in the brand's active
programs open to every channel and re-evaluates their tiers, so an upgrade applies at once. The
daily job (`members.loyalty_jobs`) applies downgrades: at the end of the tier's period
(`period_end`) or as soon as the member no longer qualifies (`rolling`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed
from zhongtai.core.principals import Principal
from zhongtai.core.sql import insert_ignore
from zhongtai.members import loyalty_rules as lr
from zhongtai.members.loyalty_models import LoyaltyMembership, LoyaltyProgram, LoyaltyTier, PointsLot, PointsRule


@dataclass(frozen=True)
class ProgramDraft:
    code: str
    name: str
    tiers: list[lr.TierDraft]
    channel: str | None = None
    qualify_by: str = "points"
    period_days: int = 365
    downgrade_mode: str = "period_end"
    is_active: bool = True


@dataclass(frozen=True)
class RuleDraft:
    kind: str
    points: int
    streak_bonus: int = 0
    streak_cap: int = 7
    expiry: str = "next_year_end"
    expiry_days: int | None = None
    is_active: bool = True


@dataclass(frozen=True)
class Benefit:
    """What a member's tier in one program gives: read by orders and campaigns."""

    program_code: str
    channel: str | None
    tier_code: str
    discount_bp: int
    birthday_gift: bool
    free_shipping: bool


@dataclass(frozen=True)
class Standing:
    membership: LoyaltyMembership
    program: LoyaltyProgram
    tier: LoyaltyTier | None
    metric: int
    next_tier: LoyaltyTier | None


# ------------------------------------------------------------------------------------- configuration


def _check_program(draft: ProgramDraft) -> None:
    if not draft.code.strip() or len(draft.code) > 40 or not draft.name.strip() or len(draft.name) > 80:
        raise ValidationFailed("A program needs a code (up to 40 characters) and a name (up to 80).", field="code")
    lr.check_choice(draft.qualify_by, lr.QUALIFY_BY, "qualify_by")
    lr.check_choice(draft.downgrade_mode, lr.DOWNGRADE_MODES, "downgrade_mode")
    if not 1 <= draft.period_days <= 3660:
        raise ValidationFailed("A qualifying period is 1 to 3660 days.", field="period_days")
    lr.check_tiers(draft.tiers)


async def get_program(session: AsyncSession, program_id: uuid.UUID) -> LoyaltyProgram:
    program = await session.scalar(select(LoyaltyProgram).where(LoyaltyProgram.id == program_id))
    if program is None:
        raise NotFound("No such loyalty program.")
    return program


async def list_programs(session: AsyncSession) -> list[LoyaltyProgram]:
    return list(await session.scalars(select(LoyaltyProgram).order_by(LoyaltyProgram.code)))


async def tiers_of(session: AsyncSession, program_id: uuid.UUID) -> list[LoyaltyTier]:
    rows = await session.scalars(
        select(LoyaltyTier).where(LoyaltyTier.program_id == program_id).order_by(LoyaltyTier.rank)
    )
    return list(rows)


async def do_save_program(
    session: AsyncSession, actor: Principal, draft: ProgramDraft, program_id: uuid.UUID | None = None
) -> LoyaltyProgram:
    """Create a program, or replace an existing one's settings and tiers (matched by tier code). A tier
    that members hold cannot be removed."""
    _check_program(draft)
    if program_id is None:
        if await session.scalar(select(LoyaltyProgram.id).where(LoyaltyProgram.code == draft.code)):
            raise Conflict(f"A program with code {draft.code!r} exists already.", field="code")
        program = LoyaltyProgram(code=draft.code)
        session.add(program)
    else:
        program = await get_program(session, program_id)
        if program.code != draft.code:
            raise ValidationFailed("A program's code cannot change.", field="code")
    program.name, program.channel, program.qualify_by = draft.name, draft.channel, draft.qualify_by
    program.period_days, program.downgrade_mode, program.is_active = (
        draft.period_days,
        draft.downgrade_mode,
        draft.is_active,
    )
    await session.flush()
    await _save_tiers(session, program, draft.tiers)
    await audit.record(
        session, actor, "members.loyalty_program_saved", target_type="loyalty_program", target_id=program.id
    )
    return program


async def _save_tiers(session: AsyncSession, program: LoyaltyProgram, drafts: list[lr.TierDraft]) -> None:
    existing = {t.code: t for t in await tiers_of(session, program.id)}
    wanted = {d.code for d in drafts}
    dropped = [t.id for code, t in existing.items() if code not in wanted]
    if dropped:
        held = await session.scalar(
            select(func.count()).select_from(LoyaltyMembership).where(LoyaltyMembership.tier_id.in_(dropped))
        )
        if held:
            raise Conflict("Members hold a tier this change removes; keep it or move them first.", field="tiers")
        await session.execute(delete(LoyaltyTier).where(LoyaltyTier.id.in_(dropped)))
    for index, tier in enumerate(existing.values()):  # ranks out of the way first: (program, rank) is unique
        tier.rank = -1 - index
    await session.flush()
    for rank, draft in enumerate(drafts, start=1):
        tier = existing.get(draft.code) or LoyaltyTier(program_id=program.id, code=draft.code)
        tier.name, tier.rank, tier.threshold = draft.name, rank, draft.threshold
        tier.discount_bp, tier.birthday_gift, tier.free_shipping = (
            draft.discount_bp,
            draft.birthday_gift,
            draft.free_shipping,
        )
        session.add(tier)
    await session.flush()


async def list_rules(session: AsyncSession) -> list[PointsRule]:
    return list(await session.scalars(select(PointsRule).order_by(PointsRule.kind)))


async def active_rule(session: AsyncSession, kind: str) -> PointsRule | None:
    return await session.scalar(select(PointsRule).where(PointsRule.kind == kind, PointsRule.is_active.is_(True)))


def _check_rule(draft: RuleDraft) -> None:
    lr.check_choice(draft.kind, lr.EARNING_KINDS, "kind")
    lr.check_choice(draft.expiry, lr.EXPIRY_POLICIES, "expiry")
    if not 0 <= draft.points <= lr.MAX_POINTS or not 0 <= draft.streak_bonus <= lr.MAX_POINTS:
        raise ValidationFailed(f"Points of a rule are 0 to {lr.MAX_POINTS}.", field="points")
    if not 1 <= draft.streak_cap <= 366:
        raise ValidationFailed("A streak cap is 1 to 366 days.", field="streak_cap")
    if draft.expiry == "days" and not (draft.expiry_days and 1 <= draft.expiry_days <= 3660):
        raise ValidationFailed("With expiry 'days', give expiry_days from 1 to 3660.", field="expiry_days")


async def do_set_rules(session: AsyncSession, actor: Principal, drafts: list[RuleDraft]) -> list[PointsRule]:
    """Create or replace the earning rules given (one per kind); rules not given stay as they are."""
    if len({d.kind for d in drafts}) != len(drafts):
        raise ValidationFailed("Give each kind of earning once.", field="rules")
    for draft in drafts:
        _check_rule(draft)
        row = await session.scalar(select(PointsRule).where(PointsRule.kind == draft.kind))
        row = row or PointsRule(kind=draft.kind)
        row.points, row.streak_bonus, row.streak_cap = draft.points, draft.streak_bonus, draft.streak_cap
        row.expiry, row.expiry_days, row.is_active = draft.expiry, draft.expiry_days, draft.is_active
        row.updated_at = utcnow()
        session.add(row)
    await session.flush()
    await audit.record(session, actor, "members.points_rules_saved", data={"kinds": sorted(d.kind for d in drafts)})
    return await list_rules(session)


# ------------------------------------------------------------------------------------------ memberships


async def memberships_of(session: AsyncSession, member_id: uuid.UUID) -> list[LoyaltyMembership]:
    rows = await session.scalars(
        select(LoyaltyMembership)
        .where(LoyaltyMembership.member_id == member_id)
        .order_by(LoyaltyMembership.joined_at, LoyaltyMembership.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def do_enroll(session: AsyncSession, member_id: uuid.UUID, program: LoyaltyProgram, at: datetime) -> None:
    """Put the member in the program (no tier yet); enrolling again does nothing."""
    await session.execute(
        insert_ignore(session, LoyaltyMembership, "tenant_id", "program_id", "member_id").values(
            id=uuid.uuid4(),
            tenant_id=program.tenant_id,
            program_id=program.id,
            member_id=member_id,
            tier_id=None,
            tier_since=at,
            period_ends_at=None,
            joined_at=at,
        )
    )


async def do_auto_enroll(session: AsyncSession, member_id: uuid.UUID, at: datetime) -> None:
    """Enrol the member in every active program open to all channels."""
    await do_auto_enroll_many(session, [member_id], at)


async def do_auto_enroll_many(session: AsyncSession, member_ids: Sequence[uuid.UUID], at: datetime) -> None:
    """Enrol the members in every active program open to all channels: one read of the programs and
    one insert for all members (enrolling again does nothing)."""
    programs = list(
        await session.scalars(
            select(LoyaltyProgram).where(LoyaltyProgram.is_active.is_(True), LoyaltyProgram.channel.is_(None))
        )
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": program.tenant_id,
            "program_id": program.id,
            "member_id": member_id,
            "tier_id": None,
            "tier_since": at,
            "period_ends_at": None,
            "joined_at": at,
        }
        for program in programs
        for member_id in member_ids
    ]
    if rows:
        await session.execute(insert_ignore(session, LoyaltyMembership, "tenant_id", "program_id", "member_id"), rows)


async def qualifying_metric(session: AsyncSession, member_id: uuid.UUID, program: LoyaltyProgram, at: datetime) -> int:
    """Points earned (less what refunds took back), or fen paid (refunded orders left out), over the
    program's period up to `at`."""
    since = at - timedelta(days=program.period_days)
    window = (PointsLot.member_id == member_id, PointsLot.earned_at > since, PointsLot.earned_at <= at)
    if program.qualify_by == "spend":
        query = select(func.sum(PointsLot.qualifying_fen)).where(*window, PointsLot.reversed_at.is_(None))
    else:
        query = select(func.sum(PointsLot.amount - PointsLot.reversed_amount)).where(*window)
    return int(await session.scalar(query) or 0)


async def qualifying_metrics(
    session: AsyncSession, member_ids: Sequence[uuid.UUID], program: LoyaltyProgram, at: datetime
) -> dict[uuid.UUID, int]:
    """`qualifying_metric` of many members with one grouped query."""
    since = at - timedelta(days=program.period_days)
    window = (PointsLot.member_id.in_(member_ids), PointsLot.earned_at > since, PointsLot.earned_at <= at)
    if program.qualify_by == "spend":
        total = func.sum(PointsLot.qualifying_fen)
        query = select(PointsLot.member_id, total).where(*window, PointsLot.reversed_at.is_(None))
    else:
        query = select(PointsLot.member_id, func.sum(PointsLot.amount - PointsLot.reversed_amount)).where(*window)
    rows = await session.execute(query.group_by(PointsLot.member_id))
    return {row[0]: int(row[1] or 0) for row in rows.all()}


def _decide(
    membership: LoyaltyMembership, program: LoyaltyProgram, current: int, qualified: int, at: datetime
) -> int | None:
    """The rank the membership moves to now, or None to stay: up at once; down when the mode allows."""
    if qualified > current:
        return qualified
    if qualified == current:
        ended = membership.period_ends_at is not None and at >= membership.period_ends_at
        return qualified if ended and qualified else None
    if program.downgrade_mode == "rolling":
        return qualified
    if membership.period_ends_at is None or at >= membership.period_ends_at:
        return qualified
    return None


async def do_refresh_tiers(session: AsyncSession, member_id: uuid.UUID, at: datetime | None = None) -> None:
    """Re-evaluate the member's tier in each of their programs (caller holds the member's lock)."""
    await do_refresh_tiers_many(session, [member_id], at)


async def do_refresh_tiers_many(
    session: AsyncSession, member_ids: Sequence[uuid.UUID], at: datetime | None = None
) -> None:
    """Re-evaluate the tiers of many members (caller holds their locks): the memberships, programs and
    tiers are read once for all of them and the metric with one grouped query per program, so a batch
    of earnings costs a few statements, not a few per member. Members in no program cost one query."""
    now = at or utcnow()
    memberships = list(
        await session.scalars(
            select(LoyaltyMembership)
            .where(LoyaltyMembership.member_id.in_(member_ids))
            .execution_options(populate_existing=True)
        )
    )
    if not memberships:
        return
    program_ids = {m.program_id for m in memberships}
    programs = {
        p.id: p for p in await session.scalars(select(LoyaltyProgram).where(LoyaltyProgram.id.in_(program_ids)))
    }
    tiers: dict[uuid.UUID, list[LoyaltyTier]] = defaultdict(list)
    for tier in await session.scalars(
        select(LoyaltyTier).where(LoyaltyTier.program_id.in_(program_ids)).order_by(LoyaltyTier.rank)
    ):
        tiers[tier.program_id].append(tier)
    metrics = {pid: await qualifying_metrics(session, member_ids, program, now) for pid, program in programs.items()}
    for membership in memberships:
        program = programs[membership.program_id]
        metric = metrics[program.id].get(membership.member_id, 0)
        _apply_tier(membership, program, tiers[program.id], metric, now)
    await session.flush()


def _apply_tier(
    membership: LoyaltyMembership, program: LoyaltyProgram, tiers: list[LoyaltyTier], metric: int, now: datetime
) -> None:
    rank_of = {t.id: t.rank for t in tiers}
    current = rank_of.get(membership.tier_id, 0) if membership.tier_id else 0
    qualified = lr.qualified_rank([(t.rank, t.threshold) for t in tiers], metric) or 0
    new_rank = _decide(membership, program, current, qualified, now)
    if new_rank is None:
        return
    tier = next((t for t in tiers if t.rank == new_rank), None)
    if new_rank != current:
        membership.tier_id, membership.tier_since = (tier.id if tier else None), now
    membership.period_ends_at = now + timedelta(days=program.period_days) if tier else None


async def standings(session: AsyncSession, member_id: uuid.UUID, at: datetime | None = None) -> list[Standing]:
    """The member's memberships with their tier, the qualifying metric and the next tier up."""
    now = at or utcnow()
    result: list[Standing] = []
    for membership in await memberships_of(session, member_id):
        program = await get_program(session, membership.program_id)
        tiers = await tiers_of(session, program.id)
        tier = next((t for t in tiers if t.id == membership.tier_id), None)
        rank = tier.rank if tier else 0
        upper = next((t for t in tiers if t.rank > rank), None)
        metric = await qualifying_metric(session, member_id, program, now)
        result.append(Standing(membership, program, tier, metric, upper))
    return result


async def benefits_for_member(session: AsyncSession, member_id: uuid.UUID) -> list[Benefit]:
    """The benefits of the member's current tiers, one per program where they hold a tier."""
    rows = await session.execute(
        select(LoyaltyProgram, LoyaltyTier)
        .join(LoyaltyMembership, LoyaltyMembership.program_id == LoyaltyProgram.id)
        .join(LoyaltyTier, LoyaltyTier.id == LoyaltyMembership.tier_id)
        .where(LoyaltyMembership.member_id == member_id, LoyaltyProgram.is_active.is_(True))
        .order_by(LoyaltyProgram.code)
    )
    return [Benefit(p.code, p.channel, t.code, t.discount_bp, t.birthday_gift, t.free_shipping) for p, t in rows.all()]
