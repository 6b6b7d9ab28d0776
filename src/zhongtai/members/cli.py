"""`zhongtai members …`: the members' daily runs on demand — `points-daily` (expire lapsed points, apply
due downgrades for one brand) and `lifecycle` (run a brand's lifecycle now, or schedule today's run for
every active brand: what a daily cron calls). Running either twice changes nothing the second time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from zhongtai.core import tenancy
from zhongtai.core.cli_support import tenant_by_slug
from zhongtai.core.models import PLATFORM_TENANT_ID, Tenant
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.members import earning, facts, lifecycle


async def points_daily(settings: Settings, *, tenant_slug: str) -> dict[str, Any]:
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await tenant_by_slug(session, tenant_slug)
            tenancy.scope_to_tenant(session, tenant.id)
            expired, memberships = await earning.do_daily(session)
        return {"tenant": tenant.slug, "points_expired": expired, "members_reevaluated": memberships}
    finally:
        await runtime.stop()


async def run_lifecycle(settings: Settings, *, tenant_slug: str | None) -> dict[str, Any]:
    runtime = Runtime(settings)
    day = facts.today()
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            if tenant_slug is not None:
                tenant = await tenant_by_slug(session, tenant_slug)
                tenancy.scope_to_tenant(session, tenant.id)
                done = await lifecycle.do_run_lifecycle(session, tenant.id, on=day)
                return {"tenant": tenant.slug, "on": day, "members": done.members, "transitions": done.transitions}
            brands = list(
                await session.scalars(
                    select(Tenant)
                    .where(Tenant.is_active.is_(True), Tenant.id != PLATFORM_TENANT_ID)
                    .order_by(Tenant.slug)
                )
            )
            for brand in brands:
                await lifecycle.enqueue_daily(session, brand.id, day)
            return {"on": day, "scheduled": [b.slug for b in brands]}
    finally:
        await runtime.stop()
