"""Consumer accounts: sign-in by phone number and a one-time SMS code.

The phone number is kept encrypted (AES-GCM) with a keyed hash to find it and a masked form for
screens; one-time codes are kept only as keyed hashes and die after five wrong tries or five minutes.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import phonenumbers
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto, constant_time_equals, mask_phone, new_token, sha256_hex
from zhongtai.core.errors import BadRequest, NotFound, RateLimited, Unauthenticated, ValidationFailed
from zhongtai.core.models import Consumer, ConsumerSession, OtpChallenge, Tenant
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.ratelimit import RateLimiter
from zhongtai.core.sms import SmsSender

PHONE_PURPOSE = "consumer.phone"


class WrongOtp(Unauthenticated):
    code = "otp_wrong"
    default_message = "The code is wrong."
    keeps_writes = True  # the counted attempt must survive the failure


class OtpMissing(BadRequest):
    code = "otp_missing"
    default_message = "No valid code for this number; request a new one."


class OtpExhausted(BadRequest):
    code = "otp_exhausted"
    default_message = "Too many wrong codes; request a new one."


OTP_MAX_ATTEMPTS = 5
CONSUMER_TOKEN_PREFIX = "ztc"
CONSUMER_SESSION_DAYS = 30
ERASED = "erased"  # what an erased account's phone columns hold


def check_phone(raw: str, default_region: str = "CN") -> str:
    """Normalize a phone number to E.164, or refuse it with a reason."""
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed("This is not a phone number.", field="phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed("This phone number is not valid; check the digits.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def get_active_tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug, Tenant.is_platform.is_(False)))
    if tenant is None or not tenant.is_active:
        raise NotFound(f"No brand with code {slug!r}.")
    return tenant


@dataclass(frozen=True)
class OtpSent:
    challenge_id: uuid.UUID
    expires_in_seconds: int
    phone_masked: str


async def do_request_otp(
    session: AsyncSession,
    *,
    crypto: Crypto,
    limiter: RateLimiter,
    sms: SmsSender,
    tenant: Tenant,
    phone: str,
    ip: str | None,
    ttl_seconds: int,
    phone_purpose: str = PHONE_PURPOSE,
    challenge_purpose: str = "signin",
) -> OtpSent:
    """Send a sign-in code. `phone_purpose` keys the number's lookup hash, so that consumers and
    other principals signing in with the same number (channel partners) never share a challenge."""
    e164 = check_phone(phone)
    phone_hash = crypto.lookup_hash(e164, purpose=phone_purpose)
    for key, limit, period, message in (
        (f"otp:phone:{phone_hash}", 1, 60.0, "A code was just sent to this number; wait a minute."),
        (f"otp:phone-day:{phone_hash}", 10, 86400.0, "Too many codes for this number today."),
        (f"otp:ip:{ip}", 20, 3600.0, "Too many codes requested from this network."),
    ):
        decision = await limiter.hit(key, limit=limit, period=period)
        if not decision.allowed:
            raise RateLimited(message, retry_after=decision.retry_after)
    code = f"{secrets.randbelow(1_000_000):06d}"
    challenge = OtpChallenge(
        tenant_id=tenant.id,
        phone_hash=phone_hash,
        code_hash="",
        purpose=challenge_purpose,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    session.add(challenge)
    await session.flush()
    challenge.code_hash = crypto.sign(code, purpose=f"otp:{challenge.id}")
    await sms.send(
        session,
        tenant_id=tenant.id,
        phone_e164=e164,
        text=f"【{tenant.name}】验证码 {code}，{ttl_seconds // 60} 分钟内有效。请勿告诉他人。",
    )
    return OtpSent(challenge.id, ttl_seconds, mask_phone(e164))


@dataclass(frozen=True)
class ConsumerSignedIn:
    consumer: Consumer
    token: str
    is_new: bool


async def do_consume_otp(session: AsyncSession, *, crypto: Crypto, phone_hash: str, code: str) -> None:
    """Check a sign-in code for the number with this lookup hash and use it up; raises `OtpMissing`,
    `OtpExhausted` or `WrongOtp` (which keeps the counted attempt)."""
    now = utcnow()
    challenge = await session.scalar(
        select(OtpChallenge)
        .where(
            OtpChallenge.phone_hash == phone_hash,
            OtpChallenge.consumed_at.is_(None),
            OtpChallenge.expires_at > now,
        )
        .order_by(OtpChallenge.created_at.desc())
        .limit(1)
    )
    if challenge is None:
        raise OtpMissing()
    # Count the attempt with a conditional update so that parallel guesses cannot exceed the cap.
    counted = await session.execute(
        update(OtpChallenge)
        .where(OtpChallenge.id == challenge.id, OtpChallenge.attempts < OTP_MAX_ATTEMPTS)
        .values(attempts=OtpChallenge.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]
        raise OtpExhausted()
    expected = crypto.sign(code.strip(), purpose=f"otp:{challenge.id}")
    if not constant_time_equals(expected, challenge.code_hash):
        raise WrongOtp(attempts_left=OTP_MAX_ATTEMPTS - challenge.attempts - 1)
    consumed = await session.execute(
        update(OtpChallenge)
        .where(OtpChallenge.id == challenge.id, OtpChallenge.consumed_at.is_(None))
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise OtpMissing()  # a parallel request used this code first


async def do_verify_otp(
    session: AsyncSession, *, crypto: Crypto, tenant: Tenant, phone: str, code: str
) -> ConsumerSignedIn:
    e164 = check_phone(phone)
    phone_hash = crypto.lookup_hash(e164, purpose=PHONE_PURPOSE)
    now = utcnow()
    await do_consume_otp(session, crypto=crypto, phone_hash=phone_hash, code=code)
    consumer = await session.scalar(select(Consumer).where(Consumer.phone_hash == phone_hash))
    is_new = consumer is None
    if consumer is None:
        consumer = Consumer(
            tenant_id=tenant.id,
            phone_ciphertext=crypto.pii.encrypt(e164, purpose=PHONE_PURPOSE),
            phone_hash=phone_hash,
            phone_masked=mask_phone(e164),
        )
        session.add(consumer)
    consumer.last_login_at = now
    await session.flush()
    token = new_token(CONSUMER_TOKEN_PREFIX)
    session.add(
        ConsumerSession(
            tenant_id=tenant.id,
            consumer_id=consumer.id,
            token_hash=sha256_hex(token),
            expires_at=now + timedelta(days=CONSUMER_SESSION_DAYS),
        )
    )
    await session.flush()
    return ConsumerSignedIn(consumer, token, is_new)


async def authenticate_consumer(session: AsyncSession, token: str) -> Principal | None:
    from zhongtai.core import tenancy

    tenancy.scope_all_tenants(session)
    found = (
        await session.execute(
            select(ConsumerSession, Consumer)
            .join(Consumer, Consumer.id == ConsumerSession.consumer_id)
            .where(ConsumerSession.token_hash == sha256_hex(token))
        )
    ).first()
    if found is None:
        return None
    row, consumer = found
    if row.revoked_at is not None or row.expires_at <= utcnow() or not consumer.is_active:
        return None
    return Principal(
        kind=PrincipalKind.CONSUMER,
        id=consumer.id,
        tenant_id=consumer.tenant_id,
        label=consumer.phone_masked,
        session_id=row.id,
    )


async def do_sign_out_consumer(session: AsyncSession, principal: Principal) -> None:
    await session.execute(
        update(ConsumerSession)
        .where(ConsumerSession.id == principal.session_id)
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def list_consumers(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[Consumer], int]:
    total = await session.scalar(select(func.count()).select_from(Consumer))
    rows = await session.scalars(select(Consumer).order_by(Consumer.created_at.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


def is_erased(consumer: Consumer) -> bool:
    return consumer.phone_masked == ERASED


async def do_erase_consumer_phone(session: AsyncSession, consumer_id: uuid.UUID) -> bool:
    """Erase the account's phone number on request of its owner: the ciphertext, the keyed hash and the
    masked form are replaced by a marker (the hash by one unique to the account), the number's sign-in
    codes are deleted, the account is closed and signed out everywhere. Orders, entries and rewards keep
    the account's id. Answers whether anything was erased (False when it was already)."""
    consumer = await session.scalar(
        select(Consumer).where(Consumer.id == consumer_id).with_for_update().execution_options(populate_existing=True)
    )
    if consumer is None:
        raise NotFound("No such consumer account.")
    if is_erased(consumer):
        return False
    await session.execute(
        delete(OtpChallenge)
        .where(OtpChallenge.tenant_id == consumer.tenant_id, OtpChallenge.phone_hash == consumer.phone_hash)
        .execution_options(synchronize_session=False)
    )
    consumer.phone_ciphertext = ERASED
    consumer.phone_hash = f"{ERASED}:{consumer.id.hex}"
    consumer.phone_masked = ERASED
    consumer.is_active = False
    await session.execute(
        update(ConsumerSession)
        .where(ConsumerSession.consumer_id == consumer.id, ConsumerSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return True
