"""Console pages for running the platform: audit log, background jobs, consumers, and (for platform
administrators) brand tenants."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from zhongtai.core import accounts, audit, consumers, jobs, tenancy
from zhongtai.core.errors import AppError, NotFound
from zhongtai.core.permissions import AUDIT_READ, CONSUMERS_READ, JOBS_READ, JOBS_WRITE, PLATFORM_TENANTS
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import PER_PAGE, error_field, localize_error, redirect_with_flash, render, tr

router = APIRouter(include_in_schema=False)

AuditReader = Annotated[Principal, require_page(AUDIT_READ)]
JobsReader = Annotated[Principal, require_page(JOBS_READ)]
JobsWriter = Annotated[Principal, require_page(JOBS_WRITE)]
ConsumersReader = Annotated[Principal, require_page(CONSUMERS_READ)]
PlatformAdmin = Annotated[Principal, require_page(PLATFORM_TENANTS)]

Text = Annotated[str, Form(max_length=300)]

JOB_STATUS_LABELS = {
    "pending": "Pending",
    "running": "Running",
    "done": "Done",
    "dead": "Dead",
    "cancelled": "Cancelled",
}

AUDIT_ACTION_LABELS = {
    "auth.login": "Signed in",
    "auth.logout": "Signed out",
    "user.create": "Created a user",
    "user.update": "Changed a user",
    "token.create": "Created an API token",
    "token.revoke": "Revoked an API token",
    "job.retry": "Retried a job",
    "job.cancel": "Cancelled a job",
    "tenant.create": "Created a tenant",
    "tenant.suspend": "Suspended a tenant",
    "tenant.activate": "Activated a tenant",
    "codes.batch.request": "Requested a code batch",
    "authenticity.report.investigating": "Started investigating a counterfeit report",
    "authenticity.report.confirmed": "Confirmed a counterfeit report",
    "authenticity.report.dismissed": "Dismissed a counterfeit report",
    "authenticity.alert.investigating": "Started investigating a clone alert",
    "authenticity.alert.confirmed": "Confirmed a clone alert",
    "authenticity.alert.dismissed": "Dismissed a clone alert",
    "codes.batch.export": "Downloaded a print file",
    "codes.void": "Voided codes",
    "codes.settings.update": "Changed code settings",
    "codes.pin_key.rotate": "Rotated the PIN key",
}

ACTOR_KIND_LABELS = {
    "operator": "Console user",
    "token": "API token",
    "partner": "Channel partner",
    "consumer": "Consumer",
    "system": "System",
}


def _page_number(value: int) -> int:
    return max(1, min(value, 100_000))


def _parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min).astimezone()


# Audit log.


@router.get("/audit")
async def audit_page(
    request: Request,
    session: DbSession,
    _: AuditReader,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    page: int = 1,
) -> Response:
    page = _page_number(page)
    since_day, until_day = _parse_day(since), _parse_day(until)
    flt = audit.AuditFilter(
        action=action.strip()[:60] or None,
        actor=actor.strip()[:254] or None,
        since=_local_midnight(since_day) if since_day else None,
        until=_local_midnight(until_day + timedelta(days=1)) if until_day else None,
    )
    rows, total = await audit.list_events(session, flt, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(
        request,
        "console/audit.html",
        {
            "events": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "filters": {
                "action": action,
                "actor": actor,
                "since": since_day.isoformat() if since_day else "",
                "until": until_day.isoformat() if until_day else "",
            },
            "action_labels": AUDIT_ACTION_LABELS,
            "actor_kinds": ACTOR_KIND_LABELS,
            "action_prefixes": sorted({name.split(".")[0] for name in AUDIT_ACTION_LABELS}),
        },
    )


# Jobs.


async def _jobs_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    status: str,
    page: int,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    status = status if status in JOB_STATUS_LABELS else ""
    page = _page_number(page)
    counts = await jobs.status_counts(session)
    rows, total = await jobs.list_jobs(
        session, status=status or None, topic=None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    context: dict[str, Any] = {
        "jobs": rows,
        "total": total,
        "page": page,
        "per_page": PER_PAGE,
        "status": status,
        "counts": counts,
        "all_count": sum(counts.values()),
        "status_labels": JOB_STATUS_LABELS,
        "can_write": principal.can(JOBS_WRITE),
    }
    if error:
        context.update(flash=error, flash_kind="error")
    return render(request, "console/jobs.html", context, status_code=status_code)


@router.get("/jobs")
async def jobs_page(
    request: Request, session: DbSession, principal: JobsReader, status: str = "", page: int = 1
) -> Response:
    return await _jobs_page(request, session, principal, status=status, page=page)


def _jobs_back(status: str) -> str:
    return f"/console/jobs?status={status}" if status in JOB_STATUS_LABELS else "/console/jobs"


@router.post("/jobs/{job_id}/{verb}")
async def job_action(
    request: Request,
    session: DbSession,
    principal: JobsWriter,
    origin: Origin,
    job_id: int,
    verb: str,
    back_status: Text = "",
) -> Response:
    actions = {"retry": jobs.do_retry, "cancel": jobs.do_cancel}
    if verb not in actions:
        raise NotFound()
    try:
        await actions[verb](session, job_id)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        message = localize_error(request, exc)
        return await _jobs_page(
            request, session, principal, status=back_status, page=1, error=message, status_code=exc.status_code
        )
    await audit.record(session, principal, f"job.{verb}", target_type="job", target_id=str(job_id), origin=origin)
    if verb == "retry":
        done = tr(request, "Job {job_id} will run again.", job_id=job_id)
    else:
        done = tr(request, "Job {job_id} was cancelled.", job_id=job_id)
    return redirect_with_flash(request, _jobs_back(back_status), done)


# Consumers.


@router.get("/consumers")
async def consumers_page(request: Request, session: DbSession, _: ConsumersReader, page: int = 1) -> Response:
    page = _page_number(page)
    rows, total = await consumers.list_consumers(session, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(
        request,
        "console/consumers.html",
        {"consumers": rows, "total": total, "page": page, "per_page": PER_PAGE},
    )


# Platform: brand tenants.


async def _tenants_page(
    request: Request,
    session: DbSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tenancy.scope_all_tenants(session)
    return render(
        request,
        "console/tenants.html",
        {"tenants": await accounts.list_tenants(session), "form": form or {}, "errors": errors or {}},
        status_code=status_code,
    )


@router.get("/platform/tenants")
async def tenants_page(request: Request, session: DbSession, _: PlatformAdmin) -> Response:
    return await _tenants_page(request, session)


@router.post("/platform/tenants")
async def create_tenant(
    request: Request,
    session: DbSession,
    principal: PlatformAdmin,
    origin: Origin,
    slug: Text = "",
    name: Text = "",
    owner_email: Text = "",
    owner_password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    tenancy.scope_all_tenants(session)
    try:
        tenant, _owner = await accounts.do_create_tenant(
            session,
            slug=slug,
            name=name,
            owner_email=owner_email,
            owner_password=owner_password,
            actor=principal,
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()  # drop what the failed use case wrote
        field = error_field(exc)
        typed = {"slug": slug, "name": name, "owner_email": owner_email}
        field = {"password": "owner_password", "email": "owner_email"}.get(field, field)
        errors = {field: localize_error(request, exc)}
        return await _tenants_page(request, session, form=typed, errors=errors, status_code=exc.status_code)
    return redirect_with_flash(
        request, "/console/platform/tenants", tr(request, "Tenant {name} was created.", name=tenant.name)
    )


@router.post("/platform/tenants/{tenant_id}/{verb}")
async def set_tenant_active(
    request: Request,
    session: DbSession,
    principal: PlatformAdmin,
    origin: Origin,
    tenant_id: uuid.UUID,
    verb: str,
) -> Response:
    if verb not in ("suspend", "activate"):
        raise NotFound()
    tenancy.scope_all_tenants(session)
    tenant = await accounts.do_set_tenant_active(
        session, tenant_id, is_active=verb == "activate", actor=principal, origin=origin
    )
    if verb == "activate":
        done = tr(request, "Tenant {name} was activated.", name=tenant.name)
    else:
        done = tr(request, "Tenant {name} was suspended.", name=tenant.name)
    return redirect_with_flash(request, "/console/platform/tenants", done)
