"""Console sign-in: password check with throttling, signed session cookies, CSRF tokens, sign-out."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit, tenancy
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import sha256_hex
from zhongtai.core.db import write_after
from zhongtai.core.errors import RateLimited, Unauthenticated
from zhongtai.core.metrics import LOGIN_FAILURES
from zhongtai.core.models import ConsoleSession, Tenant, User
from zhongtai.core.passwords import hash_password, needs_rehash, verify_password
from zhongtai.core.principals import Principal
from zhongtai.core.ratelimit import RateLimiter

SESSION_COOKIE = "zt_session"
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

# Throttling: an address may try 30 sign-ins per 15 minutes; an account locks for a while after
# 5 failures in 15 minutes (whatever the address), which stops guessing without a permanent lockout.
IP_ATTEMPTS, IP_PERIOD = 30, 15 * 60.0
ACCOUNT_FAILURES, ACCOUNT_PERIOD = 5, 15 * 60.0


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    cookie_value: str
    max_age_seconds: int


def _serializer(secret_key: bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="zt-console-session")


async def do_login(
    session: AsyncSession,
    limiter: RateLimiter,
    secret_key: bytes,
    *,
    email: str,
    password: str,
    origin: RequestOrigin,
    session_hours: int,
) -> SignedIn:
    from zhongtai.core.accounts import operator_principal

    email = email.strip().lower()
    ip_key, account_key = f"login:ip:{origin.ip}", f"login:acct:{email}"
    ip_decision = await limiter.hit(ip_key, limit=IP_ATTEMPTS, period=IP_PERIOD)
    if not ip_decision.allowed:
        raise RateLimited("Too many sign-in attempts from this address.", retry_after=ip_decision.retry_after)
    account_state = await limiter.hit(account_key, limit=ACCOUNT_FAILURES, period=ACCOUNT_PERIOD, cost=0)
    if not account_state.allowed:
        raise RateLimited(
            "This account is temporarily locked after repeated failed sign-ins.",
            retry_after=account_state.retry_after,
        )
    tenancy.scope_all_tenants(session)
    found = (
        await session.execute(select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.email == email))
    ).first()
    user, tenant = found if found else (None, None)
    is_valid = verify_password(user.password_hash if user else None, password)
    if user is None or tenant is None or not is_valid or not user.is_active or not tenant.is_active:
        LOGIN_FAILURES.inc()
        await limiter.hit(account_key, limit=ACCOUNT_FAILURES, period=ACCOUNT_PERIOD)
        raise Unauthenticated("Email or password is wrong, or the account is disabled.")
    await limiter.reset(account_key)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    raw = secrets.token_urlsafe(32)
    row = ConsoleSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        token_hash=sha256_hex(raw),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + timedelta(hours=session_hours),
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:300],
    )
    session.add(row)
    user.last_login_at = utcnow()
    await session.flush()
    principal = operator_principal(user, tenant, row)
    await audit.record(session, principal, "auth.login", target_type="user", target_id=user.id, origin=origin)
    return SignedIn(principal, _serializer(secret_key).dumps(raw), session_hours * 3600)


async def resolve_session(session: AsyncSession, secret_key: bytes, cookie_value: str) -> Principal | None:
    from zhongtai.core.accounts import operator_principal

    try:
        raw = _serializer(secret_key).loads(cookie_value)
    except BadSignature:
        return None
    if not isinstance(raw, str):
        return None
    tenancy.scope_all_tenants(session)
    found = (
        await session.execute(
            select(ConsoleSession, User, Tenant)
            .join(User, User.id == ConsoleSession.user_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(ConsoleSession.token_hash == sha256_hex(raw))
        )
    ).first()
    if found is None:
        return None
    row, user, tenant = found
    now = utcnow()
    if row.revoked_at is not None or row.expires_at <= now or not user.is_active or not tenant.is_active:
        return None
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        await write_after(
            session,
            update(ConsoleSession)
            .where(ConsoleSession.id == row.id)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False),
        )
    return operator_principal(user, tenant, row)


async def do_logout(session: AsyncSession, principal: Principal, origin: RequestOrigin) -> None:
    if principal.session_id is None:
        return
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id == principal.session_id)
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await audit.record(session, principal, "auth.logout", target_type="user", target_id=principal.id, origin=origin)
