"""Loyalty REST API: staff configure programs, tiers and earning rules and see a member's points;
a consumer sees their own points and memberships, signs in daily and redeems points."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import NotFound
from zhongtai.core.permissions import MANAGERS, register_permission
from zhongtai.core.principals import Principal
from zhongtai.core.web import CurrentConsumer, DbSession, RuntimeDep, require
from zhongtai.ledger import service as ledger
from zhongtai.members import earning, loyalty, oneid, points, privacy
from zhongtai.members import loyalty_rules as lr
from zhongtai.members.loyalty_models import LoyaltyProgram, PointsLot, PointsRule
from zhongtai.members.permissions import MEMBERS_READ

MEMBERS_LOYALTY = register_permission(
    "members.loyalty", "Configure loyalty programs, tiers and points rules; enrol members", MANAGERS
)

router = APIRouter(prefix="/api/v1", tags=["loyalty"])
LoyaltyAdmin = Annotated[Principal, Depends(require(MEMBERS_LOYALTY))]
MembersReader = Annotated[Principal, Depends(require(MEMBERS_READ))]


class TierIn(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=80)
    threshold: int = Field(ge=0)
    discount_bp: int = Field(0, ge=0, le=10_000)
    birthday_gift: bool = False
    free_shipping: bool = False


class ProgramIn(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=80)
    channel: str | None = Field(None, max_length=40)
    qualify_by: str = "points"
    period_days: int = Field(365, ge=1, le=3660)
    downgrade_mode: str = "period_end"
    is_active: bool = True
    tiers: list[TierIn] = Field(min_length=1, max_length=20)

    def draft(self) -> loyalty.ProgramDraft:
        tiers = [lr.TierDraft(**t.model_dump()) for t in self.tiers]
        return loyalty.ProgramDraft(**self.model_dump(exclude={"tiers"}), tiers=tiers)


class TierOut(TierIn):
    id: uuid.UUID
    rank: int


class ProgramOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    channel: str | None
    qualify_by: str
    period_days: int
    downgrade_mode: str
    is_active: bool
    tiers: list[TierOut]


class RuleIn(BaseModel):
    kind: str
    points: int = Field(ge=0, le=lr.MAX_POINTS)
    streak_bonus: int = Field(0, ge=0, le=lr.MAX_POINTS)
    streak_cap: int = Field(7, ge=1, le=366)
    expiry: str = "next_year_end"
    expiry_days: int | None = Field(None, ge=1, le=3660)
    is_active: bool = True


class RulesIn(BaseModel):
    rules: list[RuleIn] = Field(min_length=1, max_length=len(lr.EARNING_KINDS))


class RuleOut(RuleIn):
    @classmethod
    def of(cls, row: PointsRule) -> RuleOut:
        return cls(
            kind=row.kind,
            points=row.points,
            streak_bonus=row.streak_bonus,
            streak_cap=row.streak_cap,
            expiry=row.expiry,
            expiry_days=row.expiry_days,
            is_active=row.is_active,
        )


class LotOut(BaseModel):
    id: uuid.UUID
    rule: str
    source: str
    amount: int
    remaining: int
    earned_at: datetime
    expires_at: datetime
    expired_amount: int
    reversed_amount: int
    shortfall: int

    @classmethod
    def of(cls, row: PointsLot) -> LotOut:
        return cls.model_validate(row, from_attributes=True)


class MovementOut(BaseModel):
    kind: str
    amount: int
    posted_at: datetime


class ExpiryOut(BaseModel):
    expires_at: datetime
    points: int


class PointsOut(BaseModel):
    member_id: uuid.UUID
    balance: int
    history: list[MovementOut]
    expiring: list[ExpiryOut]
    lots: list[LotOut] | None = None


class MembershipOut(BaseModel):
    program_code: str
    program_name: str
    channel: str | None
    qualify_by: str
    tier_code: str | None
    tier_name: str | None
    tier_since: datetime
    period_ends_at: datetime | None
    discount_bp: int
    birthday_gift: bool
    free_shipping: bool
    progress: int
    next_tier_code: str | None
    next_tier_name: str | None
    next_tier_needs: int | None


class EnrolIn(BaseModel):
    program_id: uuid.UUID


class RedeemIn(BaseModel):
    points: int = Field(ge=1, le=points.MAX_REDEMPTION)
    idempotency_key: str = Field(min_length=1, max_length=80)
    reference: str = Field("", max_length=120)


class RedeemOut(BaseModel):
    entry_id: uuid.UUID
    points: int
    balance: int
    is_new: bool


class SignInOut(BaseModel):
    streak: int
    earned: int
    is_new: bool
    balance: int


async def _program_out(session: AsyncSession, program: LoyaltyProgram) -> ProgramOut:
    tiers = [
        TierOut(
            id=t.id,
            rank=t.rank,
            code=t.code,
            name=t.name,
            threshold=t.threshold,
            discount_bp=t.discount_bp,
            birthday_gift=t.birthday_gift,
            free_shipping=t.free_shipping,
        )
        for t in await loyalty.tiers_of(session, program.id)
    ]
    return ProgramOut(
        id=program.id,
        code=program.code,
        name=program.name,
        channel=program.channel,
        qualify_by=program.qualify_by,
        period_days=program.period_days,
        downgrade_mode=program.downgrade_mode,
        is_active=program.is_active,
        tiers=tiers,
    )


async def _points_out(session: AsyncSession, member_id: uuid.UUID, *, with_lots: bool) -> PointsOut:
    lots = await points.lots_of(session, member_id)
    account = await ledger.account_by_key(session, points.member_account_key(member_id))
    history: list[MovementOut] = []
    if account is not None:
        lines, _ = await ledger.account_lines(session, account.id, limit=50)
        history = [MovementOut(kind=entry.kind, amount=line.amount, posted_at=entry.posted_at) for line, entry in lines]
    return PointsOut(
        member_id=member_id,
        balance=await points.balance_of(session, member_id),
        history=history,
        expiring=[ExpiryOut(expires_at=at, points=n) for at, n in points.expiry_schedule(lots)],
        lots=[LotOut.of(lot) for lot in lots] if with_lots else None,
    )


async def _memberships_out(session: AsyncSession, member_id: uuid.UUID) -> list[MembershipOut]:
    result = []
    for s in await loyalty.standings(session, member_id):
        tier, upper = s.tier, s.next_tier
        result.append(
            MembershipOut(
                program_code=s.program.code,
                program_name=s.program.name,
                channel=s.program.channel,
                qualify_by=s.program.qualify_by,
                tier_code=tier.code if tier else None,
                tier_name=tier.name if tier else None,
                tier_since=s.membership.tier_since,
                period_ends_at=s.membership.period_ends_at,
                discount_bp=tier.discount_bp if tier else 0,
                birthday_gift=bool(tier and tier.birthday_gift),
                free_shipping=bool(tier and tier.free_shipping),
                progress=s.metric,
                next_tier_code=upper.code if upper else None,
                next_tier_name=upper.name if upper else None,
                next_tier_needs=max(upper.threshold - s.metric, 0) if upper else None,
            )
        )
    return result


# --- staff -------------------------------------------------------------------------------------------


@router.get("/loyalty/programs", response_model=list[ProgramOut])
async def list_programs(session: DbSession, _: MembersReader) -> list[ProgramOut]:
    return [await _program_out(session, p) for p in await loyalty.list_programs(session)]


@router.post("/loyalty/programs", response_model=ProgramOut, status_code=201)
async def create_program(body: ProgramIn, session: DbSession, principal: LoyaltyAdmin) -> ProgramOut:
    return await _program_out(session, await loyalty.do_save_program(session, principal, body.draft()))


@router.put("/loyalty/programs/{program_id}", response_model=ProgramOut)
async def update_program(
    program_id: uuid.UUID, body: ProgramIn, session: DbSession, principal: LoyaltyAdmin
) -> ProgramOut:
    """Replace a program's settings and tiers (tiers matched by code; a held tier cannot go)."""
    program = await loyalty.do_save_program(session, principal, body.draft(), program_id)
    return await _program_out(session, program)


@router.get("/loyalty/points-rules", response_model=list[RuleOut])
async def list_rules(session: DbSession, _: MembersReader) -> list[RuleOut]:
    return [RuleOut.of(r) for r in await loyalty.list_rules(session)]


@router.put("/loyalty/points-rules", response_model=list[RuleOut])
async def set_rules(body: RulesIn, session: DbSession, principal: LoyaltyAdmin) -> list[RuleOut]:
    """Create or replace earning rules, one per kind; the daily expiry run is scheduled with them."""
    drafts = [loyalty.RuleDraft(**r.model_dump()) for r in body.rules]
    rows = await loyalty.do_set_rules(session, principal, drafts)
    await earning.schedule_daily(session, principal.tenant_id)
    return [RuleOut.of(r) for r in rows]


@router.get("/members/{member_id:uuid}/points", response_model=PointsOut)
async def member_points(member_id: uuid.UUID, session: DbSession, _: MembersReader) -> PointsOut:
    member = await oneid.get_member(session, member_id)
    return await _points_out(session, member.id, with_lots=True)


@router.get("/members/{member_id:uuid}/memberships", response_model=list[MembershipOut])
async def member_memberships(member_id: uuid.UUID, session: DbSession, _: MembersReader) -> list[MembershipOut]:
    member = await oneid.get_member(session, member_id)
    return await _memberships_out(session, member.id)


@router.post("/members/{member_id:uuid}/memberships", response_model=list[MembershipOut], status_code=201)
async def enrol_member(member_id: uuid.UUID, body: EnrolIn, session: DbSession, _: LoyaltyAdmin) -> list[MembershipOut]:
    """Enrol a member in a program (a channel's own program, say); tiers are evaluated at once."""
    member = await oneid.get_member(session, member_id)
    program = await loyalty.get_program(session, body.program_id)
    await points.lock_member(session, member.id)
    await loyalty.do_enroll(session, member.id, program, utcnow())
    await loyalty.do_refresh_tiers(session, member.id)
    return await _memberships_out(session, member.id)


# --- the consumer ------------------------------------------------------------------------------------


async def _my_member(session: AsyncSession, crypto: Crypto, principal: Principal) -> uuid.UUID:
    member = await privacy.member_for_consumer(session, crypto, principal.id)
    if member is None:
        raise NotFound("The brand keeps no member record for this account yet; sign in daily or scan to join.")
    return member.id


@router.get("/consumer/members/me/points", response_model=PointsOut)
async def my_points(principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> PointsOut:
    """The signed-in member's balance, latest movements and when their points expire."""
    return await _points_out(session, await _my_member(session, runtime.crypto, principal), with_lots=False)


@router.get("/consumer/members/me/memberships", response_model=list[MembershipOut])
async def my_memberships(principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> list[MembershipOut]:
    """The member's tier and benefits in each program, and how far the next tier is."""
    return await _memberships_out(session, await _my_member(session, runtime.crypto, principal))


@router.post("/consumer/members/me/sign-in", response_model=SignInOut)
async def sign_in(principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> SignInOut:
    """Today's sign-in (once per China day) with the streak's points; a complete profile earns too."""
    member = await privacy.ensure_member_for_consumer(session, principal, runtime.crypto, principal.id)
    signed = await earning.do_sign_in(session, member.id)
    await earning.do_earn_profile_completion(session, member)
    balance = await points.balance_of(session, member.id)
    return SignInOut(streak=signed.day_streak, earned=signed.earned, is_new=signed.is_new, balance=balance)


@router.post("/consumer/members/me/points/redemptions", response_model=RedeemOut)
async def redeem(body: RedeemIn, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> RedeemOut:
    """Spend points (earliest-expiring first). The same idempotency key again answers the first
    redemption; more than the balance is refused with 409."""
    member_id = await _my_member(session, runtime.crypto, principal)
    done = await points.do_redeem(
        session, member_id, points=body.points, idempotency_key=body.idempotency_key, reference=body.reference
    )
    return RedeemOut(entry_id=done.entry_id, points=done.points, balance=done.balance, is_new=done.is_new)
