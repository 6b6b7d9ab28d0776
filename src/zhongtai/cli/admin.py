"""Administration commands that run on their own unit of work (no HTTP)."""

from __future__ import annotations

from typing import Any

from zhongtai.core import accounts, tenancy
from zhongtai.core.cli_support import cli_principal, tenant_by_slug
from zhongtai.core.models import User
from zhongtai.core.permissions import PERMISSIONS, Role
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.domains import load_all


async def create_tenant(
    settings: Settings, *, slug: str, name: str, owner_email: str, owner_password: str
) -> dict[str, Any]:
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            platform = await accounts.ensure_platform_tenant(session)
            tenant, owner = await accounts.do_create_tenant(
                session,
                slug=slug,
                name=name,
                owner_email=owner_email,
                owner_password=owner_password,
                actor=cli_principal(platform),
            )
            return {"tenant_id": tenant.id, "slug": tenant.slug, "owner": owner.email}
    finally:
        await runtime.stop()


async def create_user(
    settings: Settings, *, tenant_slug: str, email: str, role: str, name: str | None, password: str
) -> dict[str, Any]:
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await tenant_by_slug(session, tenant_slug)
            tenancy.scope_to_tenant(session, tenant.id)
            actor = cli_principal(tenant, role=Role.OWNER)
            user: User = await accounts.do_create_user(
                session,
                actor,
                email=email,
                display_name=name or email.split("@", maxsplit=1)[0],
                role=role,
                password=password,
            )
            return {"user_id": user.id, "email": user.email, "role": user.role, "tenant": tenant.slug}
    finally:
        await runtime.stop()


async def create_token(settings: Settings, *, tenant_slug: str, name: str, scopes: list[str] | None) -> dict[str, Any]:
    load_all()  # every module's permissions, for the default of all scopes
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await tenant_by_slug(session, tenant_slug)
            tenancy.scope_to_tenant(session, tenant.id)
            actor = cli_principal(tenant)
            chosen = scopes or sorted(p for p in PERMISSIONS if p in actor.permissions)
            issued = await accounts.do_create_token(session, actor, name=name, scopes=chosen)
            return {
                "token": issued.secret,
                "id": issued.token.id,
                "scopes": issued.token.scopes,
                "tenant": tenant.slug,
            }
    finally:
        await runtime.stop()
