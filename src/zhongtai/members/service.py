"""Real-name verification use cases: `do_verify_identity`, eligibility checks, the masked list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import RateLimited
from zhongtai.core.ratelimit import RateLimiter
from zhongtai.members import rules
from zhongtai.members.errors import AlreadyVerified, IdentityInUse, IdentityMismatch, NotVerified, UnderAge
from zhongtai.members.models import MemberIdentity
from zhongtai.members.verifier import IdentityVerifier

ID_PURPOSE = "member.resident_id"
NAME_PURPOSE = "member.name"
ATTEMPTS_PER_DAY = 5


@dataclass(frozen=True)
class Verified:
    identity: MemberIdentity
    is_new: bool


def today() -> date:
    # Ages count in China Standard Time: a birthday starts at local midnight.
    from datetime import timedelta, timezone

    return utcnow().astimezone(timezone(timedelta(hours=8))).date()


async def _check_attempts(limiter: RateLimiter, consumer_id: uuid.UUID) -> None:
    decision = await limiter.hit(f"members:verify:{consumer_id}", limit=ATTEMPTS_PER_DAY, period=86400.0)
    if not decision.allowed:
        raise RateLimited("Too many verification attempts today; try again tomorrow.", retry_after=decision.retry_after)


async def do_verify_identity(
    session: AsyncSession,
    *,
    crypto: Crypto,
    limiter: RateLimiter,
    verifier: IdentityVerifier,
    tenant_id: uuid.UUID,
    consumer_id: uuid.UUID,
    name: str,
    id_number: str,
) -> Verified:
    """Check the number and the name, ask the authority, and bind the identity to the account.

    Submitting the same identity again is a no-op that answers the existing record."""
    await _check_attempts(limiter, consumer_id)
    clean_name = rules.check_name(name)
    resident = rules.check_resident_id(id_number, today=today())
    id_hash = crypto.lookup_hash(resident.number, purpose=ID_PURPOSE)
    existing = await session.scalar(select(MemberIdentity).where(MemberIdentity.consumer_id == consumer_id))
    if existing is not None:
        if existing.id_hash == id_hash:
            return Verified(existing, False)
        raise AlreadyVerified()
    if await session.scalar(select(MemberIdentity.id).where(MemberIdentity.id_hash == id_hash)) is not None:
        raise IdentityInUse()
    answer = await verifier.check(name=clean_name, id_number=resident.number)
    if not answer.is_match:
        raise IdentityMismatch()
    row = MemberIdentity(
        tenant_id=tenant_id,
        consumer_id=consumer_id,
        id_ciphertext=crypto.pii.encrypt(resident.number, purpose=ID_PURPOSE),
        id_hash=id_hash,
        id_masked=rules.mask_id_number(resident.number),
        name_ciphertext=crypto.pii.encrypt(clean_name, purpose=NAME_PURPOSE),
        name_masked=rules.mask_name(clean_name),
        birth_date=resident.birth_date,
        region_code=resident.region_code,
        verifier=verifier.name,
        verifier_reference=answer.reference,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        # A parallel request won the race; the unique constraints say which rule it broke.
        mine = await session.scalar(select(MemberIdentity).where(MemberIdentity.consumer_id == consumer_id))
        if mine is not None and mine.id_hash == id_hash:
            return Verified(mine, False)
        raise AlreadyVerified() if mine is not None else IdentityInUse() from None
    return Verified(row, True)


async def identity_of(session: AsyncSession, consumer_id: uuid.UUID) -> MemberIdentity | None:
    return await session.scalar(select(MemberIdentity).where(MemberIdentity.consumer_id == consumer_id))


async def check_eligible(
    session: AsyncSession, consumer_id: uuid.UUID, *, minimum_age: int = rules.ALCOHOL_MINIMUM_AGE
) -> MemberIdentity:
    """The consumer's verified identity, if they are verified and at least `minimum_age` today."""
    identity = await identity_of(session, consumer_id)
    if identity is None:
        raise NotVerified()
    if rules.age_on(identity.birth_date, today()) < minimum_age:
        message = None if minimum_age == rules.ALCOHOL_MINIMUM_AGE else f"You must be {minimum_age} or older."
        raise UnderAge(message, minimum_age=minimum_age)
    return identity


async def list_identities(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[MemberIdentity], int]:
    total = await session.scalar(select(func.count()).select_from(MemberIdentity))
    rows = await session.scalars(
        select(MemberIdentity)
        .order_by(MemberIdentity.verified_at.desc(), MemberIdentity.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)
