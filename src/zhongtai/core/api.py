"""Core REST API under `/api/v1`: the caller, users, tokens, audit log, jobs, consumers, tenants."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import AwareDatetime

from zhongtai.core import accounts, audit, consumers, jobs, tenancy
from zhongtai.core.models import Consumer
from zhongtai.core.permissions import (
    AUDIT_READ,
    CONSUMERS_READ,
    JOBS_READ,
    JOBS_WRITE,
    PERMISSIONS,
    PLATFORM_TENANTS,
    TOKENS_READ,
    TOKENS_WRITE,
    USERS_READ,
    USERS_WRITE,
)
from zhongtai.core.principals import Principal
from zhongtai.core.schemas import (
    AuditEventOut,
    ConsumerOut,
    ConsumerSessionOut,
    JobOut,
    MeOut,
    OtpRequest,
    OtpSentOut,
    OtpVerify,
    Paged,
    PermissionOut,
    TenantCreate,
    TenantCreated,
    TenantOut,
    TenantWithUsers,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from zhongtai.core.web import (
    CurrentConsumer,
    CurrentPrincipal,
    DbSession,
    Origin,
    PageDep,
    RuntimeDep,
    rate_limit,
    require,
)

router = APIRouter(prefix="/api/v1")


# Query text goes into SQL parameters; PostgreSQL cannot take NUL in text.
NO_NUL = r"^[^\x00]*$"

# Job ids are 64-bit; a larger number is a 404 question the database cannot even be asked.
JobId = Annotated[int, Path(ge=1, le=2**63 - 1)]

UsersReader = Annotated[Principal, Depends(require(USERS_READ))]
UsersWriter = Annotated[Principal, Depends(require(USERS_WRITE))]
TokensReader = Annotated[Principal, Depends(require(TOKENS_READ))]
TokensWriter = Annotated[Principal, Depends(require(TOKENS_WRITE))]
AuditReader = Annotated[Principal, Depends(require(AUDIT_READ))]
JobsReader = Annotated[Principal, Depends(require(JOBS_READ))]
JobsWriter = Annotated[Principal, Depends(require(JOBS_WRITE))]
ConsumersReader = Annotated[Principal, Depends(require(CONSUMERS_READ))]
PlatformAdmin = Annotated[Principal, Depends(require(PLATFORM_TENANTS))]


@router.get("/me", response_model=MeOut, tags=["auth"])
async def me(principal: CurrentPrincipal) -> MeOut:
    return MeOut(
        kind=principal.kind.value,
        id=principal.id,
        tenant_id=principal.tenant_id,
        label=principal.label,
        role=principal.role,
        permissions=sorted(principal.permissions),
        is_platform=principal.is_platform,
    )


@router.get("/permissions", response_model=list[PermissionOut], tags=["auth"])
async def list_permissions(_: CurrentPrincipal) -> list[PermissionOut]:
    return [
        PermissionOut(name=p.name, description=p.description, roles=sorted(r.value for r in p.roles))
        for p in PERMISSIONS.values()
    ]


# Users.


@router.get("/users", response_model=Paged[UserOut], tags=["users"])
async def list_users(
    session: DbSession,
    _: UsersReader,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL, description="part of email or name")] = None,
    role: Annotated[str | None, Query(max_length=20)] = None,
) -> Paged[UserOut]:
    rows, total = await accounts.list_users(session, query=q, role=role, limit=page.per_page, offset=page.offset)
    return Paged(items=[UserOut.model_validate(r) for r in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
async def create_user(body: UserCreate, session: DbSession, actor: UsersWriter, origin: Origin) -> UserOut:
    user = await accounts.do_create_user(
        session,
        actor,
        email=body.email,
        display_name=body.display_name,
        role=body.role,
        password=body.password,
        origin=origin,
    )
    return UserOut.model_validate(user)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
async def get_user(user_id: uuid.UUID, session: DbSession, _: UsersReader) -> UserOut:
    return UserOut.model_validate(await accounts.get_user(session, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: DbSession, actor: UsersWriter, origin: Origin
) -> UserOut:
    user = await accounts.do_update_user(
        session,
        actor,
        user_id,
        display_name=body.display_name,
        role=body.role,
        is_active=body.is_active,
        password=body.password,
        origin=origin,
    )
    return UserOut.model_validate(user)


# API tokens.


@router.get("/tokens", response_model=Paged[TokenOut], tags=["tokens"])
async def list_tokens(
    session: DbSession, _: TokensReader, page: PageDep, include_revoked: bool = False
) -> Paged[TokenOut]:
    rows, total = await accounts.list_tokens(
        session, include_revoked=include_revoked, limit=page.per_page, offset=page.offset
    )
    return Paged(items=[TokenOut.model_validate(r) for r in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"])
async def create_token(body: TokenCreate, session: DbSession, actor: TokensWriter, origin: Origin) -> TokenCreated:
    issued = await accounts.do_create_token(
        session,
        actor,
        name=body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        origin=origin,
    )
    return TokenCreated(**TokenOut.model_validate(issued.token).model_dump(), token=issued.secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"])
async def revoke_token(token_id: uuid.UUID, session: DbSession, actor: TokensWriter, origin: Origin) -> TokenOut:
    return TokenOut.model_validate(await accounts.do_revoke_token(session, actor, token_id, origin=origin))


# Audit log.


@router.get("/audit-events", response_model=Paged[AuditEventOut], tags=["audit"])
async def list_audit_events(
    session: DbSession,
    _: AuditReader,
    page: PageDep,
    action: Annotated[str | None, Query(max_length=60, pattern=NO_NUL)] = None,
    actor: Annotated[str | None, Query(max_length=254, pattern=NO_NUL)] = None,
    target_id: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    since: Annotated[AwareDatetime | None, Query(description="ISO 8601 with a time zone")] = None,
    until: Annotated[AwareDatetime | None, Query(description="ISO 8601 with a time zone")] = None,
) -> Paged[AuditEventOut]:
    flt = audit.AuditFilter(action=action, actor=actor, target_id=target_id, since=since, until=until)
    rows, total = await audit.list_events(session, flt, limit=page.per_page, offset=page.offset)
    return Paged(
        items=[AuditEventOut.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        per_page=page.per_page,
    )


# Jobs.


@router.get("/jobs", response_model=Paged[JobOut], tags=["jobs"])
async def list_jobs(
    session: DbSession,
    _: JobsReader,
    page: PageDep,
    status: Annotated[str | None, Query(max_length=12)] = None,
    topic: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
) -> Paged[JobOut]:
    rows, total = await jobs.list_jobs(session, status=status, topic=topic, limit=page.per_page, offset=page.offset)
    return Paged(items=[JobOut.model_validate(r) for r in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/jobs/{job_id}/retry", response_model=JobOut, tags=["jobs"])
async def retry_job(job_id: JobId, session: DbSession, actor: JobsWriter, origin: Origin) -> JobOut:
    job = await jobs.do_retry(session, job_id)
    await audit.record(session, actor, "job.retry", target_type="job", target_id=str(job_id), origin=origin)
    return JobOut.model_validate(job)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
async def cancel_job(job_id: JobId, session: DbSession, actor: JobsWriter, origin: Origin) -> JobOut:
    job = await jobs.do_cancel(session, job_id)
    await audit.record(session, actor, "job.cancel", target_type="job", target_id=str(job_id), origin=origin)
    return JobOut.model_validate(job)


# Consumers (staff view, masked).


@router.get("/consumers", response_model=Paged[ConsumerOut], tags=["consumers"])
async def list_consumers(session: DbSession, _: ConsumersReader, page: PageDep) -> Paged[ConsumerOut]:
    rows, total = await consumers.list_consumers(session, limit=page.per_page, offset=page.offset)
    return Paged(
        items=[ConsumerOut.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        per_page=page.per_page,
    )


# Consumer sign-in (public, per brand) and the signed-in consumer.


# Anyone may call the public sign-in endpoints: 30 calls a minute per network address on top of the
# per-number limits inside the service.
PublicSignInLimit = Depends(rate_limit("public-signin", limit=30, period=60.0))


@router.post(
    "/public/{tenant_slug}/otp",
    response_model=OtpSentOut,
    status_code=202,
    tags=["consumer"],
    dependencies=[PublicSignInLimit],
)
async def request_otp(
    tenant_slug: str, body: OtpRequest, session: DbSession, runtime: RuntimeDep, origin: Origin
) -> OtpSentOut:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    sent = await consumers.do_request_otp(
        session,
        crypto=runtime.crypto,
        limiter=runtime.limiter,
        sms=runtime.sms,
        tenant=tenant,
        phone=body.phone,
        ip=origin.ip,
        ttl_seconds=runtime.settings.otp_ttl_seconds,
    )
    return OtpSentOut(
        challenge_id=sent.challenge_id,
        expires_in_seconds=sent.expires_in_seconds,
        phone_masked=sent.phone_masked,
    )


@router.post(
    "/public/{tenant_slug}/sessions",
    response_model=ConsumerSessionOut,
    status_code=201,
    tags=["consumer"],
    dependencies=[PublicSignInLimit],
)
async def consumer_sign_in(
    tenant_slug: str, body: OtpVerify, session: DbSession, runtime: RuntimeDep
) -> ConsumerSessionOut:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    signed = await consumers.do_verify_otp(
        session, crypto=runtime.crypto, tenant=tenant, phone=body.phone, code=body.code
    )
    return ConsumerSessionOut(
        token=signed.token, consumer=ConsumerOut.model_validate(signed.consumer), is_new=signed.is_new
    )


@router.get("/consumer/me", response_model=ConsumerOut, tags=["consumer"])
async def consumer_me(principal: CurrentConsumer, session: DbSession) -> ConsumerOut:
    consumer = await session.get(Consumer, principal.id)
    return ConsumerOut.model_validate(consumer)


@router.delete("/consumer/session", status_code=204, tags=["consumer"])
async def consumer_sign_out(principal: CurrentConsumer, session: DbSession) -> Response:
    await consumers.do_sign_out_consumer(session, principal)
    return Response(status_code=204)


# Platform administration: brand tenants.


@router.get("/platform/tenants", response_model=list[TenantWithUsers], tags=["platform"])
async def list_tenants(session: DbSession, _: PlatformAdmin) -> list[TenantWithUsers]:
    tenancy.scope_all_tenants(session)
    return [
        TenantWithUsers(**TenantOut.model_validate(t).model_dump(), users=n)
        for t, n in await accounts.list_tenants(session)
    ]


@router.post("/platform/tenants", response_model=TenantCreated, status_code=201, tags=["platform"])
async def create_tenant(body: TenantCreate, session: DbSession, actor: PlatformAdmin, origin: Origin) -> TenantCreated:
    tenancy.scope_all_tenants(session)
    tenant, owner = await accounts.do_create_tenant(
        session,
        slug=body.slug,
        name=body.name,
        owner_email=body.owner_email,
        owner_password=body.owner_password,
        owner_name=body.owner_name,
        actor=actor,
        origin=origin,
    )
    return TenantCreated(tenant=TenantOut.model_validate(tenant), owner=UserOut.model_validate(owner))


@router.post("/platform/tenants/{tenant_id}/suspend", response_model=TenantOut, tags=["platform"])
async def suspend_tenant(tenant_id: uuid.UUID, session: DbSession, actor: PlatformAdmin, origin: Origin) -> TenantOut:
    tenancy.scope_all_tenants(session)
    return TenantOut.model_validate(
        await accounts.do_set_tenant_active(session, tenant_id, is_active=False, actor=actor, origin=origin)
    )


@router.post("/platform/tenants/{tenant_id}/activate", response_model=TenantOut, tags=["platform"])
async def activate_tenant(tenant_id: uuid.UUID, session: DbSession, actor: PlatformAdmin, origin: Origin) -> TenantOut:
    tenancy.scope_all_tenants(session)
    return TenantOut.model_validate(
        await accounts.do_set_tenant_active(session, tenant_id, is_active=True, actor=actor, origin=origin)
    )
