"""Consumer H5 pages: sign-in by phone and one-time code; the development SMS inbox."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from zhongtai.console.rendering import render
from zhongtai.core import consumers, tenancy
from zhongtai.core.errors import NotFound
from zhongtai.core.models import SandboxMessage
from zhongtai.core.web import DbSession, RuntimeDep

router = APIRouter(prefix="/h5", include_in_schema=False)


@router.get("/{tenant_slug}/login")
async def consumer_login_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(request, "h5/login.html", {"tenant": tenant})


@router.get("/{tenant_slug}/dev/sms")
async def sandbox_inbox(request: Request, tenant_slug: str, session: DbSession, runtime: RuntimeDep) -> Response:
    """What the sandbox SMS sender would have sent — only in development."""
    if runtime.settings.env != "development":
        raise NotFound()
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    messages = await session.scalars(select(SandboxMessage).order_by(SandboxMessage.created_at.desc()).limit(50))
    return render(request, "h5/dev_sms.html", {"tenant": tenant, "messages": list(messages)})
