"""Demo data: one brand tenant with an owner, a platform administrator and an all-scopes API token.

Idempotent: a second run keeps what exists and refreshes the passwords it reports only when the
credentials file is missing.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from sqlalchemy import select

from zhongtai.cli.admin import cli_principal
from zhongtai.core import accounts, migrate, tenancy
from zhongtai.core.models import ApiToken, Tenant, User
from zhongtai.core.passwords import hash_password
from zhongtai.core.permissions import PERMISSIONS
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings

DEMO_SLUG = "demo-baijiu"
DEMO_NAME = "示例酒业 Demo Baijiu"
OWNER_EMAIL = "owner@demo-baijiu.example"
PLATFORM_EMAIL = "admin@platform.example"
TOKEN_NAME = "demo integration (all scopes)"


def _password() -> str:
    return "zt-" + secrets.token_urlsafe(12)


async def _ensure_user(session: Any, *, tenant: Tenant, email: str, role: str, name: str, password: str) -> None:
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        session.add(
            User(
                tenant_id=tenant.id,
                email=email,
                display_name=name,
                password_hash=hash_password(password),
                role=role,
            )
        )
    else:
        user.password_hash = hash_password(password)
        user.is_active = True
    await session.flush()


async def load_demo(settings: Settings) -> dict[str, Any]:
    path = settings.data_dir / "demo-credentials.json"
    await migrate.upgrade_async(settings)
    existing: dict[str, Any] | None = json.loads(path.read_text()) if path.exists() else None
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            platform = await accounts.ensure_platform_tenant(session)
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            if tenant is None:
                tenant = Tenant(slug=DEMO_SLUG, name=DEMO_NAME)
                session.add(tenant)
                await session.flush()
            owner_user = await session.scalar(select(User).where(User.email == OWNER_EMAIL))
            token_ok = existing is not None and await session.scalar(
                select(ApiToken.id).where(
                    ApiToken.tenant_id == tenant.id,
                    ApiToken.revoked_at.is_(None),
                    ApiToken.name == TOKEN_NAME,
                )
            )
            if existing is not None and owner_user is not None and token_ok:
                return existing
            credentials: dict[str, Any] = {
                "base_url": settings.public_url,
                "tenant": {"slug": tenant.slug, "id": str(tenant.id), "name": tenant.name},
                "operator": {"email": OWNER_EMAIL, "password": _password(), "role": "owner"},
                "platform_admin": {"email": PLATFORM_EMAIL, "password": _password(), "role": "owner"},
            }
            await _ensure_user(
                session,
                tenant=tenant,
                email=OWNER_EMAIL,
                role="owner",
                name="示例运营",
                password=credentials["operator"]["password"],
            )
            await _ensure_user(
                session,
                tenant=platform,
                email=PLATFORM_EMAIL,
                role="owner",
                name="Platform admin",
                password=credentials["platform_admin"]["password"],
            )
            tenancy.scope_to_tenant(session, tenant.id)
            actor = cli_principal(tenant)
            issued = await accounts.do_create_token(
                session,
                actor,
                name=TOKEN_NAME,
                scopes=sorted(name for name in PERMISSIONS if name in actor.permissions),
            )
            credentials["api_token"] = {
                "token": issued.secret,
                "scopes": issued.token.scopes,
                "usage": "Authorization: Bearer <token>",
            }
            credentials["consumer_login"] = {
                "url": f"{settings.public_url}/h5/{tenant.slug}/login",
                "sms_inbox": f"{settings.public_url}/h5/{tenant.slug}/dev/sms",
            }
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(credentials, handle, ensure_ascii=False, indent=2)
        return credentials
    finally:
        await runtime.stop()
