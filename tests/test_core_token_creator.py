"""An API token acts for its creator, on both tiers: it never holds more than the creator's current
role grants, it is suspended while the creator is disabled, and platform-made tokens keep their scopes."""

from __future__ import annotations

import uuid

import httpx

from tests.factories import PASSWORD, Brand, bearer, make_brand, make_token, make_user, system_actor
from zhongtai.core import accounts
from zhongtai.core.models import User
from zhongtai.core.runtime import Runtime

SCOPES = ["users.read", "users.write", "jobs.read", "tokens.write"]


async def admin_token(runtime: Runtime, brand: Brand) -> tuple[User, str]:
    admin = await make_user(runtime, brand, "admin")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actor = accounts.operator_principal(admin, brand.tenant)
        issued = await accounts.do_create_token(session, actor, name="integration", scopes=SCOPES)
    return admin, issued.secret


async def change_user(runtime: Runtime, brand: Brand, user: User, **changes: object) -> None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await accounts.do_update_user(session, system_actor(brand.id), user.id, **changes)  # type: ignore[arg-type]


async def create_viewer(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/api/v1/users",
        json={
            "email": f"viewer-{uuid.uuid4().hex[:6]}@example.com",
            "display_name": "Viewer",
            "role": "viewer",
            "password": PASSWORD,
        },
        headers=bearer(token),
    )


async def test_a_demoted_creator_narrows_the_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin, token = await admin_token(runtime, brand)
    assert (await create_viewer(client, token)).status_code == 201
    await change_user(runtime, brand, admin, role="operator")
    refused = await create_viewer(client, token)
    assert refused.status_code == 403, refused.text
    assert refused.json()["data"]["permission"] == "users.write"
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert (await client.get("/api/v1/jobs", headers=bearer(token))).status_code == 200  # operators read jobs
    await change_user(runtime, brand, admin, role="admin")
    assert (await create_viewer(client, token)).status_code == 201


async def test_a_disabled_creator_suspends_the_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin, token = await admin_token(runtime, brand)
    await change_user(runtime, brand, admin, is_active=False)
    for response in (await create_viewer(client, token), await client.get("/api/v1/users", headers=bearer(token))):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthenticated"
        assert "disabled" in response.json()["detail"]
    await change_user(runtime, brand, admin, is_active=True)
    assert (await create_viewer(client, token)).status_code == 201
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 200


async def test_a_token_made_by_a_token_acts_for_the_same_operator(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin, token = await admin_token(runtime, brand)
    made = await client.post("/api/v1/tokens", json={"name": "child", "scopes": ["users.write"]}, headers=bearer(token))
    assert made.status_code == 201, made.text
    child = made.json()["token"]
    assert (await create_viewer(client, child)).status_code == 201
    await change_user(runtime, brand, admin, is_active=False)
    assert (await create_viewer(client, child)).status_code == 401


async def test_platform_made_tokens_keep_their_scopes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand, scopes=SCOPES)
    assert (await create_viewer(client, token)).status_code == 201
