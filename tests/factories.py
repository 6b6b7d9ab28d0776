"""Small typed factories and HTTP helpers shared by tests."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from zhongtai.app import create_app
from zhongtai.core import accounts, tenancy
from zhongtai.core.models import PLATFORM_TENANT_ID, Tenant, User
from zhongtai.core.permissions import PERMISSIONS, Role, permissions_for_role
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.runtime import Runtime

PASSWORD = "correct horse battery"


@dataclass
class Brand:
    tenant: Tenant
    owner: User
    password: str = PASSWORD

    @property
    def id(self) -> uuid.UUID:
        return self.tenant.id


def system_actor(tenant_id: uuid.UUID, *, is_platform: bool = False) -> Principal:
    return Principal(
        kind=PrincipalKind.SYSTEM,
        id=uuid.UUID(int=0),
        tenant_id=tenant_id,
        label="test",
        permissions=permissions_for_role(Role.OWNER, is_platform_tenant=is_platform),
        role=Role.OWNER.value,
        is_platform=is_platform,
    )


async def make_brand(runtime: Runtime, slug: str | None = None) -> Brand:
    slug = slug or f"brand-{uuid.uuid4().hex[:8]}"
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        tenant, owner = await accounts.do_create_tenant(
            session,
            slug=slug,
            name=f"Brand {slug}",
            owner_email=f"owner@{slug}.example",
            owner_password=PASSWORD,
        )
    return Brand(tenant, owner)


async def make_user(runtime: Runtime, brand: Brand, role: str, email: str | None = None) -> User:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await accounts.do_create_user(
            session,
            system_actor(brand.id),
            email=email or f"{role}-{uuid.uuid4().hex[:6]}@{brand.tenant.slug}.example",
            display_name=role.title(),
            role=role,
            password=PASSWORD,
        )


async def make_platform_admin(runtime: Runtime) -> User:
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        await accounts.ensure_platform_tenant(session)
        tenancy.scope_to_tenant(session, PLATFORM_TENANT_ID)
        return await accounts.do_create_user(
            session,
            system_actor(PLATFORM_TENANT_ID, is_platform=True),
            email=f"root-{uuid.uuid4().hex[:6]}@platform.example",
            display_name="Root",
            role="owner",
            password=PASSWORD,
        )


async def make_token(runtime: Runtime, brand: Brand, scopes: list[str] | None = None) -> str:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actor = system_actor(brand.id)
        chosen = scopes if scopes is not None else sorted(p for p in PERMISSIONS if p in actor.permissions)
        issued = await accounts.do_create_token(session, actor, name="test token", scopes=chosen)
    return issued.secret


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


async def console_login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the console form; returns the session's CSRF token."""
    page = await http.get("/console/login", headers={"accept": "text/html"})
    login_csrf = CSRF_INPUT.search(page.text)
    assert login_csrf, page.text
    response = await http.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": login_csrf.group(1), "next": "/console"},
        headers={"accept": "text/html"},
    )
    assert response.status_code == 303, response.text
    home = await http.get("/console", headers={"accept": "text/html"})
    assert home.status_code == 200
    token = CSRF_INPUT.search(home.text)
    assert token, "signed-in pages carry the CSRF token"
    return token.group(1)
