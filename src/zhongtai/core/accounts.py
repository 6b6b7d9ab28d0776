"""Tenants, operator users and API tokens: the use cases behind the console and `/api/v1`."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit, tenancy
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import new_token, sha256_hex
from zhongtai.core.db import write_after
from zhongtai.core.errors import BadRequest, Conflict, NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from zhongtai.core.models import PLATFORM_TENANT_ID, ApiToken, ConsoleSession, Tenant, User
from zhongtai.core.passwords import hash_password, password_problem
from zhongtai.core.permissions import PERMISSIONS, Role, assignable_roles, permissions_for_role
from zhongtai.core.principals import Principal, PrincipalKind

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
API_TOKEN_PREFIX = "zt"
TOKEN_LAST_USED_RESOLUTION = timedelta(minutes=1)


def check_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Email address is not valid: {exc}", field="email") from exc


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise ValidationFailed(
            f"Unknown role {role!r}; use one of {', '.join(r.value for r in Role)}.", field="role"
        ) from exc


def check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise ValidationFailed(f"Password refused: {problem}", field="password")


# Tenants (platform administration).


async def ensure_platform_tenant(session: AsyncSession) -> Tenant:
    tenancy.scope_all_tenants(session)
    tenant = await session.get(Tenant, PLATFORM_TENANT_ID)
    if tenant is None:
        tenant = Tenant(id=PLATFORM_TENANT_ID, slug="platform", name="Platform", is_platform=True)
        session.add(tenant)
        await session.flush()
    return tenant


async def do_create_tenant(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    owner_email: str,
    owner_password: str,
    owner_name: str | None = None,
    actor: Principal | None = None,
    origin: RequestOrigin | None = None,
) -> tuple[Tenant, User]:
    """Create a brand tenant with its first owner. The session must be scoped to all tenants."""
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise ValidationFailed(
            "The tenant code must be 3–40 characters: lowercase letters, digits and hyphens, starting with a letter.",
            field="slug",
        )
    if not name.strip():
        raise ValidationFailed("Give the brand a name.", field="name")
    email = check_email(owner_email)
    check_password(owner_password)
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise Conflict(f"A tenant with code {slug!r} already exists.", field="slug")
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"An operator with email {email} already exists.", field="owner_email")
    tenant = Tenant(slug=slug, name=name.strip())
    session.add(tenant)
    await session.flush()
    owner = User(
        tenant_id=tenant.id,
        email=email,
        display_name=(owner_name or email.split("@")[0]).strip()[:80],
        password_hash=hash_password(owner_password),
        role=Role.OWNER.value,
    )
    session.add(owner)
    await session.flush()
    if actor is not None:
        await audit.record(
            session,
            actor,
            "tenant.create",
            target_type="tenant",
            target_id=tenant.id,
            data={"slug": slug, "name": tenant.name, "owner": email},
            origin=origin,
        )
    return tenant, owner


async def list_tenants(session: AsyncSession) -> list[tuple[Tenant, int]]:
    user_counts = select(User.tenant_id, func.count().label("users")).group_by(User.tenant_id).subquery()
    rows = await session.execute(
        select(Tenant, func.coalesce(user_counts.c.users, 0))
        .outerjoin(user_counts, user_counts.c.tenant_id == Tenant.id)
        .order_by(Tenant.created_at)
    )
    return [(tenant, int(count)) for tenant, count in rows]


async def do_set_tenant_active(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    is_active: bool,
    actor: Principal,
    origin: RequestOrigin | None,
) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found.")
    if tenant.is_platform and not is_active:
        raise BadRequest("The platform tenant cannot be suspended.")
    tenant.is_active = is_active
    await audit.record(
        session,
        actor,
        "tenant.activate" if is_active else "tenant.suspend",
        target_type="tenant",
        target_id=tenant.id,
        data={"slug": tenant.slug},
        origin=origin,
    )
    return tenant


# Users.


async def list_users(
    session: AsyncSession, *, query: str | None, role: str | None, limit: int, offset: int
) -> tuple[list[User], int]:
    stmt = select(User)
    count = select(func.count()).select_from(User)
    if query:
        like = f"%{query.strip().lower()}%"
        cond = User.email.like(like) | func.lower(User.display_name).like(like)
        stmt, count = stmt.where(cond), count.where(cond)
    if role:
        stmt, count = stmt.where(User.role == check_role(role).value), count.where(User.role == role)
    total = await session.scalar(count)
    rows = await session.scalars(stmt.order_by(User.created_at).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None:
        raise NotFound("Operator user not found.")
    return user


def _check_may_assign(actor: Principal, role: Role) -> None:
    if actor.role is None:  # tokens act with their scopes, never above admin
        if role is Role.OWNER:
            raise PermissionDenied("An API token cannot create or promote owners.")
        return
    if role not in assignable_roles(actor.role):
        raise PermissionDenied(f"A {actor.role} cannot assign the role {role.value}.")


async def do_create_user(
    session: AsyncSession,
    actor: Principal,
    *,
    email: str,
    display_name: str,
    role: str,
    password: str,
    origin: RequestOrigin | None = None,
) -> User:
    checked_role = check_role(role)
    _check_may_assign(actor, checked_role)
    normalized = check_email(email)
    check_password(password)
    if not display_name.strip():
        raise ValidationFailed("Give the user a display name.", field="display_name")
    user = User(
        tenant_id=actor.tenant_id,
        email=normalized,
        display_name=display_name.strip()[:80],
        password_hash=hash_password(password),
        role=checked_role.value,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"An operator with email {normalized} already exists.", field="email") from exc
    await audit.record(
        session,
        actor,
        "user.create",
        target_type="user",
        target_id=user.id,
        data={"email": normalized, "role": checked_role.value},
        origin=origin,
    )
    return user


async def _owners_left(session: AsyncSession, excluding: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.OWNER.value, User.is_active.is_(True), User.id != excluding)
    )
    return int(count or 0)


async def do_update_user(
    session: AsyncSession,
    actor: Principal,
    user_id: uuid.UUID,
    *,
    display_name: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    origin: RequestOrigin | None = None,
) -> User:
    user = await get_user(session, user_id)
    changes: dict[str, object] = {}
    if user.role == Role.OWNER.value and actor.role not in (Role.OWNER.value,):
        raise PermissionDenied("Only an owner can change another owner.")
    if display_name is not None and display_name.strip() and display_name.strip() != user.display_name:
        user.display_name = display_name.strip()[:80]
        changes["display_name"] = user.display_name
    if role is not None and role != user.role:
        new_role = check_role(role)
        _check_may_assign(actor, new_role)
        if user.role == Role.OWNER.value and await _owners_left(session, user.id) == 0:
            raise Conflict("A brand needs at least one active owner; promote another user first.")
        changes["role"] = {"from": user.role, "to": new_role.value}
        user.role = new_role.value
    if is_active is not None and is_active != user.is_active:
        if user.id == actor.id and not is_active:
            raise BadRequest("You cannot disable your own account.")
        if not is_active and user.role == Role.OWNER.value and await _owners_left(session, user.id) == 0:
            raise Conflict("A brand needs at least one active owner; promote another user first.")
        user.is_active = is_active
        changes["is_active"] = is_active
        if not is_active:
            await revoke_user_sessions(session, user.id)
    if password is not None:
        check_password(password)
        user.password_hash = hash_password(password)
        changes["password"] = "changed"
        await revoke_user_sessions(session, user.id)
    if changes:
        await session.flush()
        await audit.record(
            session,
            actor,
            "user.update",
            target_type="user",
            target_id=user.id,
            data={"email": user.email, **changes},
            origin=origin,
        )
    return user


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


# API tokens.


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def check_scopes(actor: Principal, scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(PERMISSIONS))
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {', '.join(unknown)}.", field="scopes", unknown=unknown)
    beyond = sorted(set(scopes) - actor.permissions)
    if beyond:
        raise PermissionDenied(f"A token cannot have scopes its creator lacks: {', '.join(beyond)}.", scopes=beyond)
    if not scopes:
        raise ValidationFailed("Choose at least one scope.", field="scopes")
    return sorted(set(scopes))


async def do_create_token(
    session: AsyncSession,
    actor: Principal,
    *,
    name: str,
    scopes: list[str],
    expires_in_days: int | None = None,
    origin: RequestOrigin | None = None,
) -> IssuedToken:
    if not name.strip():
        raise ValidationFailed("Give the token a name that says what uses it.", field="name")
    checked = check_scopes(actor, scopes)
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise ValidationFailed("A token expires after 1 to 3650 days, or never.", field="expires_in_days")
    creator_id = actor.id if actor.kind is PrincipalKind.OPERATOR else None
    if actor.kind is PrincipalKind.TOKEN:  # a token's token acts for the same operator
        creator_id = await session.scalar(select(ApiToken.created_by_id).where(ApiToken.id == actor.id))
    secret = new_token(API_TOKEN_PREFIX)
    token = ApiToken(
        tenant_id=actor.tenant_id,
        name=name.strip()[:80],
        prefix=secret[:10],
        token_hash=sha256_hex(secret),
        scopes=checked,
        created_by_id=creator_id,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    await session.flush()
    await audit.record(
        session,
        actor,
        "token.create",
        target_type="api_token",
        target_id=token.id,
        data={"name": token.name, "scopes": checked},
        origin=origin,
    )
    return IssuedToken(token, secret)


async def list_tokens(
    session: AsyncSession, *, include_revoked: bool, limit: int, offset: int
) -> tuple[list[ApiToken], int]:
    stmt = select(ApiToken)
    count = select(func.count()).select_from(ApiToken)
    if not include_revoked:
        stmt, count = stmt.where(ApiToken.revoked_at.is_(None)), count.where(ApiToken.revoked_at.is_(None))
    total = await session.scalar(count)
    rows = await session.scalars(stmt.order_by(ApiToken.created_at.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def do_revoke_token(
    session: AsyncSession, actor: Principal, token_id: uuid.UUID, *, origin: RequestOrigin | None = None
) -> ApiToken:
    token = await session.scalar(select(ApiToken).where(ApiToken.id == token_id))
    if token is None:
        raise NotFound("API token not found.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await audit.record(
            session,
            actor,
            "token.revoke",
            target_type="api_token",
            target_id=token.id,
            data={"name": token.name},
            origin=origin,
        )
    return token


async def authenticate_token(session: AsyncSession, secret: str, *, ip: str | None) -> Principal | None:
    """Resolve a bearer token to its principal. The session is unscoped until the tenant is known.

    A token acts for the operator who created it: its permissions are its scopes that the creator's
    current role still grants, and it is suspended (401) while the creator is disabled. Tokens
    created by the platform itself (no creator) keep their scopes. Token, brand and creator are read
    in one statement."""
    tenancy.scope_all_tenants(session)
    row = await session.execute(
        select(ApiToken, Tenant, User.role, User.is_active)
        .join(Tenant, Tenant.id == ApiToken.tenant_id)
        .outerjoin(User, User.id == ApiToken.created_by_id)
        .where(ApiToken.token_hash == sha256_hex(secret))
    )
    found = row.first()
    if found is None:
        return None
    token, tenant, creator_role, creator_active = found
    now = utcnow()
    if token.revoked_at is not None or (token.expires_at and token.expires_at <= now) or not tenant.is_active:
        return None
    if token.created_by_id is not None and not creator_active:
        raise Unauthenticated(
            "This API token is suspended: the operator who created it is disabled. "
            "It works again when they are enabled; or create a new token.",
            reason="creator_disabled",
        )
    if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_RESOLUTION:
        # Recorded at minute resolution so that a busy integration does not write on every request.
        await write_after(
            session,
            update(ApiToken)
            .where(ApiToken.id == token.id)
            .values(last_used_at=now, last_used_ip=ip)
            .execution_options(synchronize_session=False),
        )
    permissions = frozenset(
        scope
        for scope in token.scopes
        if scope in PERMISSIONS and (tenant.is_platform or not PERMISSIONS[scope].platform_only)
    )
    if token.created_by_id is not None:
        permissions &= permissions_for_role(creator_role, is_platform_tenant=tenant.is_platform)
    return Principal(
        kind=PrincipalKind.TOKEN,
        id=token.id,
        tenant_id=token.tenant_id,
        label=f"token:{token.name}",
        permissions=permissions,
        is_platform=tenant.is_platform,
    )


def operator_principal(user: User, tenant: Tenant, session_row: ConsoleSession | None = None) -> Principal:
    return Principal(
        kind=PrincipalKind.OPERATOR,
        id=user.id,
        tenant_id=user.tenant_id,
        label=user.email,
        permissions=permissions_for_role(user.role, is_platform_tenant=tenant.is_platform),
        role=user.role,
        is_platform=tenant.is_platform,
        session_id=session_row.id if session_row else None,
        csrf_token=session_row.csrf_token if session_row else None,
    )
