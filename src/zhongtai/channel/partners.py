"""Partner accounts: the sign-in of a dealer's staff, a store clerk or a shopping guide.

A partner signs in with phone + password (argon2id, throttled like operators: an account locks for
a while after repeated failures) or phone + a one-time SMS code (the core OTP machinery, keyed
apart from consumers), and gets a `ztp_` bearer token. The partner principal carries only
`channel.partner`; what it may see is limited to its own dealer or store by `PartnerScope`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel import rules
from zhongtai.channel.errors import DuplicatePhone, InvalidFields, PartnerArchived, PartnerNotFound, PartnerSignInFailed
from zhongtai.channel.models import (
    PARTNER_DEALER,
    PARTNER_GUIDE,
    PARTNER_ROLES,
    PARTNER_STORE,
    PartnerAccount,
    PartnerSession,
    Store,
)
from zhongtai.channel.permissions import PARTNER_SELF
from zhongtai.channel.service import PHONE_PURPOSE, get_dealer, get_guide, get_store
from zhongtai.core import audit, tenancy
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import OtpSent, check_phone, do_consume_otp, do_request_otp
from zhongtai.core.crypto import Crypto, mask_phone, new_token, sha256_hex
from zhongtai.core.errors import PermissionDenied, RateLimited
from zhongtai.core.models import Tenant
from zhongtai.core.passwords import hash_password, needs_rehash, password_problem, verify_password
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.ratelimit import RateLimiter
from zhongtai.core.signin import ACCOUNT_FAILURES, ACCOUNT_PERIOD, IP_ATTEMPTS, IP_PERIOD
from zhongtai.core.sms import SmsSender

PARTNER_TOKEN_PREFIX = "ztp"
PARTNER_SESSION_DAYS = 30
# Partners' sign-in codes are keyed apart from consumers' (same number, separate challenges).
PARTNER_PHONE_PURPOSE = "channel.partner.phone"


@dataclass(frozen=True)
class PartnerDraft:
    role: str
    target_id: uuid.UUID
    phone: str
    display_name: str
    password: str | None = None


def _phone_hash(crypto: Crypto, e164: str) -> str:
    return crypto.lookup_hash(e164, purpose=PARTNER_PHONE_PURPOSE)


def check_partner(draft: PartnerDraft) -> tuple[str, str]:
    """(E.164 phone, display name), or `InvalidFields`."""
    checked = rules.Checked()
    if draft.role not in PARTNER_ROLES:
        checked.problems.append(
            rules.Problem(
                "role", "A partner is a dealer, store or guide account; got '{value}'.", {"value": draft.role[:20]}
            )
        )
    rules.check_optional_phone(draft.phone, checked, required=True)
    name = " ".join(draft.display_name.split())
    if not name:
        checked.problems.append(rules.Problem("display_name", "Enter a name."))
    elif len(name) > 80:
        checked.problems.append(rules.Problem("display_name", "At most {limit} characters.", {"limit": 80}))
    if draft.password is not None and (problem := password_problem(draft.password)):
        checked.problems.append(rules.Problem("password", "Password refused: {problem}", {"problem": problem}))
    if checked.problems:
        raise InvalidFields(checked.problems)
    return checked.values["phone"], name


async def do_create_partner(
    session: AsyncSession, actor: Principal, crypto: Crypto, draft: PartnerDraft, *, origin: RequestOrigin | None = None
) -> PartnerAccount:
    e164, name = check_partner(draft)
    account = PartnerAccount(
        role=draft.role,
        display_name=name,
        phone_ciphertext=crypto.pii.encrypt(e164, purpose=PHONE_PURPOSE),
        phone_hash=_phone_hash(crypto, e164),
        phone_masked=mask_phone(e164),
        password_hash=hash_password(draft.password) if draft.password else None,
    )
    if draft.role == PARTNER_DEALER:
        dealer = await get_dealer(session, draft.target_id)
        if dealer.is_archived:
            raise PartnerArchived("dealer")
        account.dealer_id, target = dealer.id, dealer.code
    elif draft.role == PARTNER_STORE:
        store = await get_store(session, draft.target_id)
        if store.is_archived:
            raise PartnerArchived("store")
        account.store_id, target = store.id, store.code
    else:
        guide = await get_guide(session, draft.target_id)
        if guide.is_archived:
            raise PartnerArchived("shopping guide")
        account.guide_id, account.store_id, target = guide.id, guide.store_id, guide.name
    if await session.scalar(select(PartnerAccount.id).where(PartnerAccount.phone_hash == account.phone_hash)):
        raise DuplicatePhone("partner account")
    session.add(account)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise DuplicatePhone("partner account") from exc
    await audit.record(
        session,
        actor,
        "channel.partner.create",
        target_type="partner",
        target_id=account.id,
        data={"role": account.role, "for": target, "phone": account.phone_masked, "password": bool(draft.password)},
        origin=origin,
    )
    return account


async def get_partner(session: AsyncSession, account_id: uuid.UUID) -> PartnerAccount:
    account = await session.get(PartnerAccount, account_id)
    if account is None:
        raise PartnerNotFound()
    return account


async def list_partners(
    session: AsyncSession,
    *,
    dealer_id: uuid.UUID | None = None,
    store_id: uuid.UUID | None = None,
    limit: int,
    offset: int,
) -> tuple[list[PartnerAccount], int]:
    query = select(PartnerAccount)
    count = select(func.count()).select_from(PartnerAccount)
    if dealer_id is not None:
        query, count = (
            query.where(PartnerAccount.dealer_id == dealer_id),
            count.where(PartnerAccount.dealer_id == dealer_id),
        )
    if store_id is not None:
        query, count = (
            query.where(PartnerAccount.store_id == store_id),
            count.where(PartnerAccount.store_id == store_id),
        )
    total = await session.scalar(count)
    rows = await session.scalars(query.order_by(PartnerAccount.created_at).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def do_update_partner(
    session: AsyncSession,
    actor: Principal,
    account_id: uuid.UUID,
    *,
    is_active: bool | None = None,
    password: str | None = None,
    origin: RequestOrigin | None = None,
    keep_session_id: uuid.UUID | None = None,
) -> PartnerAccount:
    account = await get_partner(session, account_id)
    changes: dict[str, object] = {}
    if password is not None:
        if problem := password_problem(password):
            raise InvalidFields([rules.Problem("password", "Password refused: {problem}", {"problem": problem})])
        account.password_hash = hash_password(password)
        changes["password"] = "changed"
    if is_active is not None and is_active != account.is_active:
        account.is_active = is_active
        changes["is_active"] = is_active
    if password is not None or is_active is False:
        await revoke_partner_sessions(session, account.id, keep=keep_session_id)
    if changes:
        await session.flush()
        await audit.record(
            session,
            actor,
            "channel.partner.update",
            target_type="partner",
            target_id=account.id,
            data={"phone": account.phone_masked, **changes},
            origin=origin,
        )
    return account


async def revoke_partner_sessions(
    session: AsyncSession, account_id: uuid.UUID, *, keep: uuid.UUID | None = None
) -> None:
    await session.execute(
        update(PartnerSession)
        .where(
            PartnerSession.account_id == account_id,
            PartnerSession.revoked_at.is_(None),
            PartnerSession.id != (keep or uuid.UUID(int=0)),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


# Sign-in.


@dataclass(frozen=True)
class PartnerSignedIn:
    account: PartnerAccount
    token: str


async def _account_for_phone(session: AsyncSession, crypto: Crypto, e164: str) -> PartnerAccount | None:
    found: PartnerAccount | None = await session.scalar(
        select(PartnerAccount).where(PartnerAccount.phone_hash == _phone_hash(crypto, e164))
    )
    return found


async def _issue_session(session: AsyncSession, account: PartnerAccount) -> str:
    now = utcnow()
    account.last_login_at = now
    token = new_token(PARTNER_TOKEN_PREFIX)
    session.add(
        PartnerSession(
            tenant_id=account.tenant_id,
            account_id=account.id,
            token_hash=sha256_hex(token),
            expires_at=now + timedelta(days=PARTNER_SESSION_DAYS),
        )
    )
    await session.flush()
    return token


class PartnerLocked(RateLimited):
    code = "partner_locked"


async def do_password_sign_in(
    session: AsyncSession,
    *,
    crypto: Crypto,
    limiter: RateLimiter,
    tenant: Tenant,
    phone: str,
    password: str,
    origin: RequestOrigin,
) -> PartnerSignedIn:
    """Password sign-in with the operators' throttling: 30 tries per address per 15 minutes, and the
    account locks for a while after 5 failures in 15 minutes, whatever the address."""
    e164 = check_phone(phone)
    ip_key = f"partner-login:ip:{origin.ip}"
    account_key = f"partner-login:acct:{tenant.id}:{_phone_hash(crypto, e164)}"
    ip_decision = await limiter.hit(ip_key, limit=IP_ATTEMPTS, period=IP_PERIOD)
    if not ip_decision.allowed:
        raise RateLimited("Too many sign-in attempts from this address.", retry_after=ip_decision.retry_after)
    state = await limiter.hit(account_key, limit=ACCOUNT_FAILURES, period=ACCOUNT_PERIOD, cost=0)
    if not state.allowed:
        raise PartnerLocked(
            "This account is temporarily locked after repeated failed sign-ins.", retry_after=state.retry_after
        )
    account = await _account_for_phone(session, crypto, e164)
    is_valid = verify_password(account.password_hash if account else None, password)
    if account is None or not is_valid or not account.is_active:
        await limiter.hit(account_key, limit=ACCOUNT_FAILURES, period=ACCOUNT_PERIOD)
        raise PartnerSignInFailed()
    await limiter.reset(account_key)
    if account.password_hash and needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return PartnerSignedIn(account, await _issue_session(session, account))


async def do_request_partner_otp(
    session: AsyncSession,
    *,
    crypto: Crypto,
    limiter: RateLimiter,
    sms: SmsSender,
    tenant: Tenant,
    phone: str,
    ip: str | None,
    ttl_seconds: int,
) -> OtpSent:
    """Send a code to a partner's number. A number without an active account gets the same answer
    and no message, so that the endpoint does not tell who is a partner."""
    e164 = check_phone(phone)
    account = await _account_for_phone(session, crypto, e164)
    if account is None or not account.is_active:
        decision = await limiter.hit(f"otp:ip:{ip}", limit=20, period=3600.0)
        if not decision.allowed:
            raise RateLimited("Too many codes requested from this network.", retry_after=decision.retry_after)
        return OtpSent(uuid.uuid4(), ttl_seconds, mask_phone(e164))
    return await do_request_otp(
        session,
        crypto=crypto,
        limiter=limiter,
        sms=sms,
        tenant=tenant,
        phone=e164,
        ip=ip,
        ttl_seconds=ttl_seconds,
        phone_purpose=PARTNER_PHONE_PURPOSE,
        challenge_purpose="partner-signin",
    )


async def do_otp_sign_in(session: AsyncSession, *, crypto: Crypto, phone: str, code: str) -> PartnerSignedIn:
    e164 = check_phone(phone)
    await do_consume_otp(session, crypto=crypto, phone_hash=_phone_hash(crypto, e164), code=code)
    account = await _account_for_phone(session, crypto, e164)
    if account is None or not account.is_active:
        raise PartnerSignInFailed()
    return PartnerSignedIn(account, await _issue_session(session, account))


async def do_set_own_password(session: AsyncSession, principal: Principal, password: str) -> None:
    await do_update_partner(session, principal, principal.id, password=password, keep_session_id=principal.session_id)


async def do_sign_out_partner(session: AsyncSession, principal: Principal) -> None:
    await session.execute(
        update(PartnerSession)
        .where(PartnerSession.id == principal.session_id)
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def authenticate_partner(session: AsyncSession, token: str) -> Principal | None:
    tenancy.scope_all_tenants(session)
    found = (
        await session.execute(
            select(PartnerSession, PartnerAccount, Tenant)
            .join(PartnerAccount, PartnerAccount.id == PartnerSession.account_id)
            .join(Tenant, Tenant.id == PartnerAccount.tenant_id)
            .where(PartnerSession.token_hash == sha256_hex(token))
        )
    ).first()
    if found is None:
        return None
    row, account, tenant = found
    if row.revoked_at is not None or row.expires_at <= utcnow() or not account.is_active or not tenant.is_active:
        return None
    return partner_principal(account, session_id=row.id)


def partner_principal(account: PartnerAccount, *, session_id: uuid.UUID | None = None) -> Principal:
    """What a signed-in partner acts as: their account, its role, and only their own scope."""
    return Principal(
        kind=PrincipalKind.PARTNER,
        id=account.id,
        tenant_id=account.tenant_id,
        label=f"{account.display_name} ({account.phone_masked})",
        permissions=frozenset({PARTNER_SELF}),
        role=account.role,
        session_id=session_id,
    )


# What a partner may see.


@dataclass(frozen=True)
class PartnerScope:
    """A dealer account sees its dealer and every store it supplies; a store or guide account sees
    its store (and the dealer supplying it, by name)."""

    account: PartnerAccount
    dealer_id: uuid.UUID
    store_id: uuid.UUID | None

    def may_see_store(self, store: Store) -> bool:
        if self.store_id is not None:
            return store.id == self.store_id
        return store.dealer_id == self.dealer_id


async def partner_scope(session: AsyncSession, principal: Principal) -> PartnerScope:
    if principal.kind is not PrincipalKind.PARTNER:
        raise PermissionDenied("This needs a partner sign-in.")
    account = await get_partner(session, principal.id)
    if account.role == PARTNER_DEALER and account.dealer_id is not None:
        return PartnerScope(account, account.dealer_id, None)
    if account.store_id is None:
        raise PermissionDenied("This partner account is not linked to a store.")
    store = await get_store(session, account.store_id)
    return PartnerScope(account, store.dealer_id, store.id)


__all__ = ["PARTNER_GUIDE", "PartnerDraft", "PartnerScope", "partner_scope"]
