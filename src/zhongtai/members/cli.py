"""`zhongtai members points-daily`: expire lapsed points and apply due downgrades now, for one brand
(the same run as the daily job; running it twice changes nothing the second time)."""

from __future__ import annotations

from typing import Any

from zhongtai.core import tenancy
from zhongtai.core.cli_support import tenant_by_slug
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.members import earning


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
