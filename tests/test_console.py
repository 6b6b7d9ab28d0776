"""Operator console pages: each page's happy path, its refusals, and the exact writes it makes."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.factories import (
    PASSWORD,
    Brand,
    bearer,
    console_login,
    make_brand,
    make_platform_admin,
    make_user,
)
from zhongtai.core import jobs
from zhongtai.core.models import ApiToken, AuditEvent, OutboxJob, SandboxMessage, Tenant, User
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}
TEST_TOPIC = "test.console.noop"


@jobs.job_handler(TEST_TOPIC)
async def _noop(_ctx: jobs.JobContext) -> None:
    return None


async def _owner_client(client: httpx.AsyncClient, runtime: Runtime) -> tuple[Brand, str]:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, brand.owner.email)
    return brand, csrf


async def _audit(runtime: Runtime, tenant_id: uuid.UUID, action: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows)


async def _user(runtime: Runtime, tenant_id: uuid.UUID, email: str) -> User | None:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        found: User | None = await session.scalar(select(User).where(User.email == email))
        return found


def _rows(html: str) -> int:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return body.count("<tr")


# Users.


async def test_users_page_lists_filters_and_pages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, _ = await _owner_client(client, runtime)
    viewer = await make_user(runtime, brand, "viewer", email=f"viewer@{brand.tenant.slug}.example")
    for n in range(20):
        await make_user(runtime, brand, "operator", email=f"op{n:02d}@{brand.tenant.slug}.example")

    first = await client.get("/console/users", headers=HTML)
    assert first.status_code == 200
    assert _rows(first.text) == 20
    assert "1–20 of 22" in first.text
    second = await client.get("/console/users?page=2", headers=HTML)
    assert _rows(second.text) == 2
    assert "21–22 of 22" in second.text

    viewers = await client.get("/console/users?role=viewer", headers=HTML)
    assert _rows(viewers.text) == 1
    assert viewer.email in viewers.text
    searched = await client.get("/console/users", params={"q": "OP07"}, headers=HTML)
    assert _rows(searched.text) == 1
    assert f"op07@{brand.tenant.slug}.example" in searched.text


async def test_create_user_redirects_with_flash_and_audits(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    email = f"new.guide@{brand.tenant.slug}.example"
    form = {"csrf_token": csrf, "email": email, "display_name": "New Op", "role": "operator", "password": PASSWORD}
    response = await client.post("/console/users", data=form, headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/users"

    user = await _user(runtime, brand.id, email)
    assert user is not None
    assert (user.display_name, user.role, user.is_active) == ("New Op", "operator", True)
    events = await _audit(runtime, brand.id, "user.create")
    assert [(e.actor_label, e.target_id, e.data) for e in events] == [
        (brand.owner.email, str(user.id), {"email": email, "role": "operator"})
    ]
    assert events[0].ip == "10.1.2.3"

    listing = await client.get("/console/users", headers=HTML)
    assert f"User {email} was created." in listing.text
    again = await client.get("/console/users", headers=HTML)
    assert "was created." not in again.text, "a flash message shows once"


@pytest.mark.parametrize(
    ("field", "value", "status", "message"),
    [
        ("email", "not-an-email", 422, "Email address is not valid"),
        ("password", "short", 422, "Password refused: Use at least 10 characters."),
        ("display_name", "   ", 422, "Give the user a display name."),
        ("role", "superuser", 422, "Unknown role"),
    ],
)
async def test_create_user_errors_rerender_the_form(
    client: httpx.AsyncClient, runtime: Runtime, field: str, value: str, status: int, message: str
) -> None:
    brand, csrf = await _owner_client(client, runtime)
    form = {
        "csrf_token": csrf,
        "email": f"typed@{brand.tenant.slug}.example",
        "display_name": "Typed Name",
        "role": "operator",
        "password": PASSWORD,
    }
    form[field] = value
    response = await client.post("/console/users", data=form, headers=HTML)
    assert response.status_code == status
    assert message in response.text
    assert re.search(r'class="field invalid">', response.text)
    if field != "display_name":
        assert 'value="Typed Name"' in response.text, "what was typed is kept"
    if field != "email":
        assert f'value="typed@{brand.tenant.slug}.example"' in response.text
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(User).where(User.email == f"typed@{brand.tenant.slug}.example")) is None


async def test_duplicate_email_is_409_and_translated(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    form = {
        "csrf_token": csrf,
        "email": brand.owner.email,
        "display_name": "Twin",
        "role": "viewer",
        "password": PASSWORD,
    }
    response = await client.post("/console/users", data=form, headers=HTML)
    assert response.status_code == 409
    assert f"An operator with email {brand.owner.email} already exists." in response.text
    client.cookies.set("zt_lang", "zh-CN")
    response = await client.post("/console/users", data=form, headers=HTML)
    assert response.status_code == 409
    assert f"邮箱 {brand.owner.email} 已有操作员使用。" in response.text
    assert len(await _audit(runtime, brand.id, "user.create")) == 0


async def test_admin_cannot_create_owner(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin = await make_user(runtime, brand, "admin")
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, admin.email)
    form_page = await client.get("/console/users/new", headers=HTML)
    assert 'value="admin"' in form_page.text
    assert 'value="owner"' not in form_page.text, "only assignable roles are offered"
    form = {
        "csrf_token": csrf,
        "email": "boss@x.example",
        "display_name": "Boss",
        "role": "owner",
        "password": PASSWORD,
    }
    response = await client.post("/console/users", data=form, headers=HTML)
    assert response.status_code == 403
    assert "A admin cannot assign the role owner." in response.text
    assert await _user(runtime, brand.id, "boss@x.example") is None


async def test_edit_user_changes_role_status_and_password(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    target = await make_user(runtime, brand, "operator")
    page = await client.get(f"/console/users/{target.id}", headers=HTML)
    assert page.status_code == 200
    assert target.email in page.text

    form = {
        "csrf_token": csrf,
        "display_name": "Renamed",
        "role": "auditor",
        "is_active": "0",
        "password": "another good password",
    }
    response = await client.post(f"/console/users/{target.id}", data=form, headers=HTML)
    assert response.status_code == 303
    changed = await _user(runtime, brand.id, target.email)
    assert changed is not None
    assert (changed.display_name, changed.role, changed.is_active) == ("Renamed", "auditor", False)
    assert changed.password_hash != target.password_hash
    [event] = await _audit(runtime, brand.id, "user.update")
    assert event.data == {
        "email": target.email,
        "display_name": "Renamed",
        "role": {"from": "operator", "to": "auditor"},
        "is_active": False,
        "password": "changed",
    }


async def test_cannot_disable_yourself(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    form = {"csrf_token": csrf, "display_name": "Me", "role": "owner", "is_active": "0", "password": ""}
    response = await client.post(f"/console/users/{brand.owner.id}", data=form, headers=HTML)
    assert response.status_code == 400
    assert "You cannot disable your own account." in response.text
    me = await _user(runtime, brand.id, brand.owner.email)
    assert me is not None
    assert me.is_active is True
    assert me.display_name == brand.owner.display_name, "nothing of the failed change is kept"


async def test_viewer_is_refused_users_and_tokens(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, viewer.email)
    home = await client.get("/console", headers=HTML)
    assert 'href="/console/users"' not in home.text
    assert 'href="/console/tokens"' not in home.text
    for path in ("/console/users", "/console/users/new", "/console/tokens", "/console/tokens/new", "/console/audit"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text
    form = {"csrf_token": csrf, "email": "x@x.example", "display_name": "X", "role": "viewer", "password": PASSWORD}
    assert (await client.post("/console/users", data=form, headers=HTML)).status_code == 403


async def test_signed_out_visitor_is_sent_to_login(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.get("/console/users?role=viewer", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/users%3Frole%3Dviewer"


async def test_post_without_csrf_token_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    form = {"email": "nocsrf@x.example", "display_name": "X", "role": "viewer", "password": PASSWORD}
    response = await client.post("/console/users", data=form, headers=HTML)
    assert response.status_code == 403
    assert "csrf_failed" in response.text
    wrong = await client.post("/console/users", data={**form, "csrf_token": csrf[::-1]}, headers=HTML)
    assert wrong.status_code == 403
    assert await _user(runtime, brand.id, "nocsrf@x.example") is None
    # htmx requests carry the token as a header instead of a form field.
    via_header = await client.post("/console/users", data=form, headers={**HTML, "x-csrf-token": csrf})
    assert via_header.status_code == 303


# API tokens.


async def test_token_secret_is_shown_once_and_works(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    form_page = await client.get("/console/tokens/new", headers=HTML)
    assert 'value="platform.tenants"' not in form_page.text, "only scopes the operator has"
    assert 'value="users.read"' in form_page.text

    data = {"csrf_token": csrf, "name": "ERP sync", "scopes": ["users.read", "audit.read"], "expires_in_days": "90"}
    created = await client.post("/console/tokens", data=data, headers=HTML)
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    match = re.search(r'value="(zt_[^"]+)" id="token-secret"', created.text)
    assert match, created.text
    token = match.group(1)

    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["kind"] == "token"
    assert me.json()["permissions"] == ["audit.read", "users.read"]

    listing = await client.get("/console/tokens", headers=HTML)
    assert "ERP sync" in listing.text
    assert token not in listing.text, "the secret is never shown again"
    assert token[:10] in listing.text, "the prefix identifies it"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.name == "ERP sync"))
    assert row is not None
    assert row.scopes == ["audit.read", "users.read"]
    assert row.expires_at is not None
    assert row.created_by_id == brand.owner.id
    [event] = await _audit(runtime, brand.id, "token.create")
    assert event.data == {"name": "ERP sync", "scopes": ["audit.read", "users.read"]}


async def test_token_form_errors(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin = await make_user(runtime, brand, "admin")
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, admin.email)
    no_scopes = await client.post("/console/tokens", data={"csrf_token": csrf, "name": "Line 3"}, headers=HTML)
    assert no_scopes.status_code == 422
    assert "Choose at least one scope." in no_scopes.text
    assert 'value="Line 3"' in no_scopes.text
    beyond = await client.post(
        "/console/tokens", data={"csrf_token": csrf, "name": "Line 3", "scopes": ["tenant.write"]}, headers=HTML
    )
    assert beyond.status_code == 403
    assert "A token cannot have scopes its creator lacks: tenant.write." in beyond.text
    unnamed = await client.post("/console/tokens", data={"csrf_token": csrf, "scopes": ["users.read"]}, headers=HTML)
    assert unnamed.status_code == 422
    assert "Give the token a name" in unnamed.text
    assert re.search(r'value="users.read" checked', unnamed.text), "checked scopes stay checked"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert list(await session.scalars(select(ApiToken))) == []


async def test_revoke_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    data = {"csrf_token": csrf, "name": "Printer", "scopes": ["users.read"]}
    created = await client.post("/console/tokens", data=data, headers=HTML)
    match = re.search(r'value="(zt_[^"]+)" id="token-secret"', created.text)
    assert match
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.name == "Printer"))
    assert row is not None
    listing = await client.get("/console/tokens", headers=HTML)
    assert f'action="/console/tokens/{row.id}/revoke"' in listing.text
    assert "data-confirm=" in listing.text

    response = await client.post(f"/console/tokens/{row.id}/revoke", data={"csrf_token": csrf}, headers=HTML)
    assert response.status_code == 303
    assert (await client.get("/api/v1/me", headers=bearer(match.group(1)))).status_code == 401
    listing = await client.get("/console/tokens", headers=HTML)
    assert "Token Printer was revoked." in listing.text
    assert "Revoked" in listing.text
    active_only = await client.get("/console/tokens?revoked=0", headers=HTML)
    assert "Printer" not in active_only.text
    [event] = await _audit(runtime, brand.id, "token.revoke")
    assert event.target_id == str(row.id)


# Audit log.


async def test_audit_log_filters(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    form = {"csrf_token": csrf, "email": "a1@x.example", "display_name": "A1", "role": "viewer", "password": PASSWORD}
    assert (await client.post("/console/users", data=form, headers=HTML)).status_code == 303

    page = await client.get("/console/audit", headers=HTML)
    assert page.status_code == 200
    assert _rows(page.text) == 2
    assert "auth.login" in page.text
    assert "user.create" in page.text
    assert "10.1.2.3" in page.text
    assert "<dt>email</dt><dd>a1@x.example</dd>" in page.text

    users_only = await client.get("/console/audit?action=user.", headers=HTML)
    assert _rows(users_only.text) == 1
    assert "auth.login</code>" not in users_only.text
    nobody = await client.get("/console/audit", params={"actor": "someone-else"}, headers=HTML)
    assert _rows(nobody.text) == 0
    mine = await client.get("/console/audit", params={"actor": brand.owner.email}, headers=HTML)
    assert _rows(mine.text) == 2
    future = await client.get("/console/audit?since=2999-01-01", headers=HTML)
    assert _rows(future.text) == 0
    past = await client.get("/console/audit?until=2000-01-01", headers=HTML)
    assert _rows(past.text) == 0
    window = await client.get("/console/audit?since=2000-01-01&until=2999-12-31", headers=HTML)
    assert _rows(window.text) == 2


# Jobs.


async def _make_jobs(runtime: Runtime, brand: Brand) -> dict[str, int]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for key in ("dead", "pending", "done"):
            await jobs.enqueue(session, TEST_TOPIC, {"key": key}, dedupe_key=key)
    ids: dict[str, int] = {}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for job in await session.scalars(select(OutboxJob)):
            ids[job.payload["key"]] = job.id
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == ids["dead"])
            .values(status="dead", attempts=8, last_error="RuntimeError: printer offline")
        )
        await session.execute(update(OutboxJob).where(OutboxJob.id == ids["done"]).values(status="done"))
    return ids


async def _job(runtime: Runtime, brand: Brand, job_id: int) -> OutboxJob:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await jobs.get_job(session, job_id)


async def test_jobs_page_counts_and_retry_dead_job(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    ids = await _make_jobs(runtime, brand)

    page = await client.get("/console/jobs", headers=HTML)
    assert page.status_code == 200
    assert _rows(page.text) == 3
    assert "RuntimeError: printer offline" in page.text
    assert re.search(r'Dead <span class="count">1</span>', page.text)
    dead_tab = await client.get("/console/jobs?status=dead", headers=HTML)
    assert _rows(dead_tab.text) == 1
    assert f'action="/console/jobs/{ids["dead"]}/retry"' in dead_tab.text

    response = await client.post(
        f"/console/jobs/{ids['dead']}/retry", data={"csrf_token": csrf, "back_status": "dead"}, headers=HTML
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/jobs?status=dead"
    job = await _job(runtime, brand, ids["dead"])
    assert (job.status, job.attempts) == ("pending", 0)
    [event] = await _audit(runtime, brand.id, "job.retry")
    assert (event.target_type, event.target_id) == ("job", str(ids["dead"]))
    assert "will run again" in (await client.get("/console/jobs?status=dead", headers=HTML)).text


async def test_jobs_refusals_and_cancel(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    ids = await _make_jobs(runtime, brand)
    done = await client.post(f"/console/jobs/{ids['done']}/retry", data={"csrf_token": csrf}, headers=HTML)
    assert done.status_code == 400
    assert f"Only dead or cancelled jobs can be retried; job {ids['done']} is done." in done.text
    assert await _audit(runtime, brand.id, "job.retry") == []

    cancelled = await client.post(f"/console/jobs/{ids['pending']}/cancel", data={"csrf_token": csrf}, headers=HTML)
    assert cancelled.status_code == 303
    assert (await _job(runtime, brand, ids["pending"])).status == "cancelled"
    assert len(await _audit(runtime, brand.id, "job.cancel")) == 1
    assert (await client.post("/console/jobs/999999/retry", data={"csrf_token": csrf}, headers=HTML)).status_code == 404

    operator = await make_user(runtime, brand, "operator")
    client.cookies.clear()
    client.cookies.set("zt_lang", "en")
    op_csrf = await console_login(client, operator.email)
    page = await client.get("/console/jobs", headers=HTML)
    assert page.status_code == 200, "operators may look at jobs"
    assert "/retry" not in page.text, "but get no buttons"
    refused = await client.post(f"/console/jobs/{ids['dead']}/retry", data={"csrf_token": op_csrf}, headers=HTML)
    assert refused.status_code == 403
    assert (await _job(runtime, brand, ids["dead"])).status == "dead"


# Consumers.


async def test_consumers_page_shows_masked_phones_only(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, _ = await _owner_client(client, runtime)
    phone = "13812345678"
    sent = await client.post(f"/api/v1/public/{brand.tenant.slug}/otp", json={"phone": phone})
    assert sent.status_code == 202
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        message = await session.scalar(select(SandboxMessage))
    assert message is not None
    code = re.search(r"验证码 (\d{6})", message.body)
    assert code, message.body
    signed = await client.post(
        f"/api/v1/public/{brand.tenant.slug}/sessions", json={"phone": phone, "code": code.group(1)}
    )
    assert signed.status_code == 201

    page = await client.get("/console/consumers", headers=HTML)
    assert page.status_code == 200
    assert "138****5678" in page.text
    assert phone not in page.text
    assert _rows(page.text) == 1


# Platform tenants.


async def test_platform_admin_manages_tenants(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await make_user(runtime, brand, "viewer")
    root = await make_platform_admin(runtime)
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, root.email)

    page = await client.get("/console/platform/tenants", headers=HTML)
    assert page.status_code == 200
    assert brand.tenant.name in page.text
    assert re.search(rf"<code>{brand.tenant.slug}</code></td>\s*<td class=\"num\">2</td>", page.text)

    form: dict[str, Any] = {
        "csrf_token": csrf,
        "slug": "acme-tea",
        "name": "Acme Tea",
        "owner_email": "boss@acme-tea.example",
        "owner_password": PASSWORD,
    }
    created = await client.post("/console/platform/tenants", data=form, headers=HTML)
    assert created.status_code == 303
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == "acme-tea"))
        assert tenant is not None
        owner = await session.scalar(select(User).where(User.email == "boss@acme-tea.example"))
        assert owner is not None
        assert (owner.tenant_id, owner.role) == (tenant.id, "owner")
    [event] = await _audit(runtime, root.tenant_id, "tenant.create")
    assert event.data == {"slug": "acme-tea", "name": "Acme Tea", "owner": "boss@acme-tea.example"}

    duplicate = await client.post("/console/platform/tenants", data=form, headers=HTML)
    assert duplicate.status_code == 409
    assert "A tenant with code &#39;acme-tea&#39; already exists." in duplicate.text
    assert 'value="Acme Tea"' in duplicate.text
    weak = await client.post(
        "/console/platform/tenants", data={**form, "slug": "acme-two", "owner_password": "x"}, headers=HTML
    )
    assert weak.status_code == 422
    assert "Password refused" in weak.text

    suspended = await client.post(
        f"/console/platform/tenants/{tenant.id}/suspend", data={"csrf_token": csrf}, headers=HTML
    )
    assert suspended.status_code == 303
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        assert (await session.get(Tenant, tenant.id)).is_active is False  # type: ignore[union-attr]
    assert len(await _audit(runtime, root.tenant_id, "tenant.suspend")) == 1
    activated = await client.post(
        f"/console/platform/tenants/{tenant.id}/activate", data={"csrf_token": csrf}, headers=HTML
    )
    assert activated.status_code == 303
    assert len(await _audit(runtime, root.tenant_id, "tenant.activate")) == 1


async def test_brand_owner_is_refused_platform_tenants(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _owner_client(client, runtime)
    home = await client.get("/console", headers=HTML)
    assert "/console/platform/tenants" not in home.text
    assert (await client.get("/console/platform/tenants", headers=HTML)).status_code == 403
    form = {"csrf_token": csrf, "slug": "sneaky", "name": "S", "owner_email": "s@s.example", "owner_password": PASSWORD}
    assert (await client.post("/console/platform/tenants", data=form, headers=HTML)).status_code == 403
    refused = await client.post(
        f"/console/platform/tenants/{brand.id}/suspend", data={"csrf_token": csrf}, headers=HTML
    )
    assert refused.status_code == 403
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        assert await session.scalar(select(Tenant).where(Tenant.slug == "sneaky")) is None
        assert (await session.get(Tenant, brand.id)).is_active is True  # type: ignore[union-attr]


# Language.


async def test_language_switch_changes_the_page(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await console_login(client, brand.owner.email)
    chinese = await client.get("/console/users", headers=HTML)
    assert '<html lang="zh-CN">' in chinese.text
    assert "<span>用户</span>" in chinese.text
    switched = await client.get("/console/lang/en?next=/console/users%3Fq%3Downer", headers=HTML)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/console/users?q=owner"
    english = await client.get("/console/users", headers=HTML)
    assert "<span>Users</span>" in english.text
    assert (await client.get("/console/lang/xx?next=https://evil.example", headers=HTML)).headers[
        "location"
    ] == "/console"
