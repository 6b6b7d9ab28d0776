"""What the command-line tools of every domain share, below both the `zhongtai` command (`zhongtai.cli`)
and the domains' own command modules (e.g. `zhongtai.ledger.cli`): who the person at the server's shell
acts as, and finding a brand by its code."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.errors import NotFound
from zhongtai.core.models import Tenant
from zhongtai.core.permissions import Role, permissions_for_role
from zhongtai.core.principals import Principal, PrincipalKind


def cli_principal(tenant: Tenant, *, role: Role | None = None) -> Principal:
    """The person at the server's shell acts as the tenant's owner; the audit log names the CLI."""
    return Principal(
        kind=PrincipalKind.SYSTEM,
        id=uuid.UUID(int=0),
        tenant_id=tenant.id,
        label="cli",
        permissions=permissions_for_role(Role.OWNER, is_platform_tenant=tenant.is_platform),
        role=role.value if role else None,
        is_platform=tenant.is_platform,
    )


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    """The tenant with this code; `NotFound` when there is none."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"No tenant with code {slug!r}.")
    return tenant
