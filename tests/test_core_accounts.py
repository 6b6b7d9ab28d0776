"""Operator accounts, API tokens and console sign-in (core/accounts.py, core/signin.py, core/web.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import (
    PASSWORD,
    Brand,
    bearer,
    console_login,
    make_brand,
    make_token,
    make_user,
)
from zhongtai.app import create_app
from zhongtai.core import clock, signin, tenancy
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.errors import RateLimited, Unauthenticated
from zhongtai.core.models import ApiToken, AuditEvent, ConsoleSession, User
from zhongtai.core.ratelimit import InProcessRateLimiter
from zhongtai.core.runtime import Runtime
from zhongtai.core.web import DbSession, MaybePrincipal

HTML = {"accept": "text/html"}


@asynccontextmanager
async def browser(runtime: Runtime, ip: str = "10.1.2.3") -> AsyncIterator[httpx.AsyncClient]:
    """A separate cookie jar: one person's browser."""
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=(ip, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _user_body(email: str, role: str = "operator", password: str = PASSWORD) -> dict[str, Any]:
    return {"email": email, "display_name": "Someone", "role": role, "password": password}


async def _count(runtime: Runtime, brand: Brand, model: Any, *conditions: Any) -> int:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


# Roles.


async def test_admin_assigns_every_role_but_owner(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin = await make_user(runtime, brand, "admin")
    owner_count = await _count(runtime, brand, User, User.role == "owner")
    async with browser(runtime) as http:
        csrf = await console_login(http, admin.email)
        headers = {"x-csrf-token": csrf}
        refused = await http.post("/api/v1/users", json=_user_body("boss@x.example", "owner"), headers=headers)
        assert refused.status_code == 403
        assert refused.json() == {
            "error": "permission_denied",
            "detail": "A admin cannot assign the role owner.",
            "data": {},
        }
        made = await http.post("/api/v1/users", json=_user_body("second-admin@x.example", "admin"), headers=headers)
        assert made.status_code == 201, made.text
        assert made.json()["role"] == "admin"
        promote = await http.patch(f"/api/v1/users/{made.json()['id']}", json={"role": "owner"}, headers=headers)
        assert promote.status_code == 403
        touch_owner = await http.patch(
            f"/api/v1/users/{brand.owner.id}", json={"display_name": "renamed"}, headers=headers
        )
        assert (touch_owner.status_code, touch_owner.json()["detail"]) == (
            403,
            "Only an owner can change another owner.",
        )
    assert await _count(runtime, brand, User, User.role == "owner") == owner_count == 1


async def test_token_never_creates_or_promotes_owners(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand, ["users.read", "users.write"])
    refused = await client.post("/api/v1/users", json=_user_body("t@x.example", "owner"), headers=bearer(token))
    assert (refused.status_code, refused.json()["detail"]) == (403, "An API token cannot create or promote owners.")
    made = await client.post("/api/v1/users", json=_user_body("t@x.example", "admin"), headers=bearer(token))
    assert made.status_code == 201
    promote = await client.patch(f"/api/v1/users/{made.json()['id']}", json={"role": "owner"}, headers=bearer(token))
    assert promote.status_code == 403
    disable_owner = await client.patch(
        f"/api/v1/users/{brand.owner.id}", json={"is_active": False}, headers=bearer(token)
    )
    assert disable_owner.status_code == 403
    assert await _count(runtime, brand, User, User.role == "owner", User.is_active.is_(True)) == 1


async def test_last_owner_stays_and_nobody_disables_themselves(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with browser(runtime) as http:
        csrf = await console_login(http, brand.owner.email)
        headers = {"x-csrf-token": csrf}
        me = f"/api/v1/users/{brand.owner.id}"
        demote = await http.patch(me, json={"role": "admin"}, headers=headers)
        assert demote.status_code == 409
        assert demote.json() == {
            "error": "conflict",
            "detail": "A brand needs at least one active owner; promote another user first.",
            "data": {},
        }
        disable = await http.patch(me, json={"is_active": False}, headers=headers)
        assert (disable.status_code, disable.json()["detail"]) == (400, "You cannot disable your own account.")
        second = await http.post("/api/v1/users", json=_user_body("co-owner@x.example", "owner"), headers=headers)
        assert second.status_code == 201
        second_id = second.json()["id"]
        # With a second active owner the first may step down; then the second is the last one.
        assert (await http.patch(me, json={"role": "admin"}, headers=headers)).status_code == 200
    async with browser(runtime) as other:
        csrf = await console_login(other, "co-owner@x.example")
        headers = {"x-csrf-token": csrf}
        last = await other.patch(f"/api/v1/users/{second_id}", json={"role": "viewer"}, headers=headers)
        assert last.status_code == 409
        disable_self = await other.patch(f"/api/v1/users/{second_id}", json={"is_active": False}, headers=headers)
        assert disable_self.status_code == 400
    assert await _count(runtime, brand, User, User.role == "owner", User.is_active.is_(True)) == 1


async def test_disabled_owner_does_not_count_as_the_remaining_owner(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    other_owner = await make_user(runtime, brand, "owner")
    async with browser(runtime) as http:
        csrf = await console_login(http, brand.owner.email)
        headers = {"x-csrf-token": csrf}
        off = await http.patch(f"/api/v1/users/{other_owner.id}", json={"is_active": False}, headers=headers)
        assert (off.status_code, off.json()["is_active"]) == (200, False)
        demote = await http.patch(f"/api/v1/users/{brand.owner.id}", json={"role": "admin"}, headers=headers)
        assert demote.status_code == 409


# Users: emails and passwords.


async def test_duplicate_email_is_a_clear_conflict(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand, other = await make_brand(runtime), await make_brand(runtime)
    token = await make_token(runtime, brand)
    first = await client.post("/api/v1/users", json=_user_body("Sam@Example.com"), headers=bearer(token))
    assert (first.status_code, first.json()["email"]) == (201, "sam@example.com")
    for email in ("sam@example.com", "SAM@example.COM", " sam@example.com "):
        again = await client.post("/api/v1/users", json=_user_body(email), headers=bearer(token))
        assert again.status_code == 409
        assert again.json() == {
            "error": "conflict",
            "detail": "An operator with email sam@example.com already exists.",
            "data": {"field": "email"},
        }
    # Emails are the login, so they are unique across brands too.
    elsewhere = await client.post(
        "/api/v1/users", json=_user_body("sam@example.com"), headers=bearer(await make_token(runtime, other))
    )
    assert elsewhere.status_code == 409
    assert await _count(runtime, brand, User, User.email == "sam@example.com") == 1
    assert await _count(runtime, other, User) == 1
    assert await _count(runtime, brand, AuditEvent, AuditEvent.action == "user.create") == 1
    assert await _count(runtime, other, AuditEvent, AuditEvent.action == "user.create") == 0


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short1!", "Use at least 10 characters."),
        ("aaaaaaaaaaaa", "Use a less repetitive password."),
        ("Password123", "This password is too common."),
    ],
)
async def test_weak_password_is_refused(
    runtime: Runtime, client: httpx.AsyncClient, password: str, problem: str
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    response = await client.post(
        "/api/v1/users", json=_user_body("weak@x.example", password=password), headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_error",
        "detail": f"Password refused: {problem}",
        "data": {"field": "password"},
    }
    changed = await client.patch(f"/api/v1/users/{brand.owner.id}", json={"password": password}, headers=bearer(token))
    assert changed.status_code in (403, 422)  # a token may not touch an owner at all
    assert await _count(runtime, brand, User) == 1


# API tokens.


async def test_token_scopes_cannot_exceed_the_creator(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin = await make_user(runtime, brand, "admin")
    async with browser(runtime) as http:
        headers = {"x-csrf-token": await console_login(http, admin.email)}
        beyond = await http.post(
            "/api/v1/tokens", json={"name": "erp", "scopes": ["users.read", "tenant.write"]}, headers=headers
        )
        assert beyond.status_code == 403
        assert beyond.json() == {
            "error": "permission_denied",
            "detail": "A token cannot have scopes its creator lacks: tenant.write.",
            "data": {"scopes": ["tenant.write"]},
        }
        unknown = await http.post("/api/v1/tokens", json={"name": "erp", "scopes": ["root"]}, headers=headers)
        assert (unknown.status_code, unknown.json()["data"]) == (422, {"field": "scopes", "unknown": ["root"]})
        empty = await http.post("/api/v1/tokens", json={"name": "erp", "scopes": []}, headers=headers)
        assert empty.status_code == 422
        made = await http.post(
            "/api/v1/tokens", json={"name": "erp", "scopes": ["tokens.write", "users.read"]}, headers=headers
        )
        assert made.status_code == 201
        secret = made.json()["token"]
    # A token creating tokens is bound by its own scopes.
    async with browser(runtime) as http:
        nested = await http.post(
            "/api/v1/tokens", json={"name": "n", "scopes": ["users.write"]}, headers=bearer(secret)
        )
        assert nested.status_code == 403
        ok = await http.post("/api/v1/tokens", json={"name": "n", "scopes": ["users.read"]}, headers=bearer(secret))
        assert (ok.status_code, ok.json()["scopes"]) == (201, ["users.read"])
    assert await _count(runtime, brand, ApiToken) == 2


async def test_revoked_and_expired_tokens_are_refused(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    admin_token = await make_token(runtime, brand)
    revocable = await client.post(
        "/api/v1/tokens", json={"name": "pos", "scopes": ["users.read"]}, headers=bearer(admin_token)
    )
    expiring = await client.post(
        "/api/v1/tokens",
        json={"name": "wms", "scopes": ["users.read"], "expires_in_days": 1},
        headers=bearer(admin_token),
    )
    for created in (revocable, expiring):
        assert (await client.get("/api/v1/users", headers=bearer(created.json()["token"]))).status_code == 200
    revoked = await client.delete(f"/api/v1/tokens/{revocable.json()['id']}", headers=bearer(admin_token))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get("/api/v1/users", headers=bearer(revocable.json()["token"]))
    assert refused.status_code == 401
    assert refused.json() == {
        "error": "unauthenticated",
        "detail": "The bearer token is unknown, revoked or expired.",
        "data": {},
    }
    clock.advance(86_400 - 5)
    assert (await client.get("/api/v1/users", headers=bearer(expiring.json()["token"]))).status_code == 200
    clock.advance(10)
    assert (await client.get("/api/v1/users", headers=bearer(expiring.json()["token"]))).status_code == 401
    assert (await client.get("/api/v1/users", headers=bearer("zt_not-a-real-token"))).status_code == 401
    assert (await client.get("/api/v1/users", headers=bearer(admin_token))).status_code == 200


async def test_last_used_is_recorded_at_minute_resolution(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand, ["tokens.read"])

    async def last_used() -> tuple[Any, Any]:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            row = await session.scalar(select(ApiToken))
            assert row is not None
            return row.last_used_at, row.last_used_ip

    assert await last_used() == (None, None)
    before = clock.utcnow()
    assert (await client.get("/api/v1/tokens", headers=bearer(token))).status_code == 200
    first_at, ip = await last_used()
    assert ip == "10.1.2.3"
    assert before <= first_at <= clock.utcnow()
    clock.advance(30)
    await client.get("/api/v1/tokens", headers=bearer(token))
    assert (await last_used())[0] == first_at
    clock.advance(31)
    listed = await client.get("/api/v1/tokens", headers=bearer(token))
    second_at, _ = await last_used()
    assert second_at > first_at
    assert listed.json()["items"][0]["last_used_ip"] == "10.1.2.3"


# Console sign-in.


async def _login_form(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await http.get("/console/login", headers=HTML)
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    return await http.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf, "next": "/console"},
        headers=HTML,
    )


async def test_five_failures_lock_the_account_and_success_resets(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    locked_user = await make_user(runtime, brand, "operator")
    async with browser(runtime) as http:
        # Four failures, a success, four failures: the success cleared the count.
        for _ in range(2):
            for _ in range(4):
                assert (await _login_form(http, brand.owner.email, "wrong password!")).status_code == 401
            assert (await _login_form(http, brand.owner.email, PASSWORD)).status_code == 303
            http.cookies.delete(signin.SESSION_COOKIE)
        for _ in range(5):
            assert (await _login_form(http, locked_user.email, "wrong password!")).status_code == 401
        locked = await _login_form(http, locked_user.email, PASSWORD)
        assert locked.status_code == 429
        assert signin.SESSION_COOKIE not in locked.cookies
    # The lock follows the account, whatever the address, and says how long it lasts.
    origin = RequestOrigin(ip="192.0.2.77")
    with pytest.raises(RateLimited) as caught:
        async with runtime.db.unit_of_work() as session:
            await signin.do_login(
                session,
                runtime.limiter,
                runtime.crypto.secret_key,
                email=locked_user.email.upper(),
                password=PASSWORD,
                origin=origin,
                session_hours=1,
            )
    interval = signin.ACCOUNT_PERIOD / signin.ACCOUNT_FAILURES
    assert interval - 30 <= caught.value.retry_after <= interval
    assert caught.value.to_dict()["data"] == {"retry_after_seconds": caught.value.retry_after}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        sessions = await session.scalar(
            select(func.count()).select_from(ConsoleSession).where(ConsoleSession.user_id == locked_user.id)
        )
    assert sessions == 0


async def test_address_is_throttled_across_accounts(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    origin = RequestOrigin(ip="198.51.100.9")
    # A stopped clock: 30 argon2 checks on a busy machine may take long enough to free a slot.
    limiter = InProcessRateLimiter(clock=lambda: 5_000.0)

    async def attempt(email: str) -> None:
        async with runtime.db.unit_of_work() as session:
            await signin.do_login(
                session,
                limiter,
                runtime.crypto.secret_key,
                email=email,
                password="not the password",
                origin=origin,
                session_hours=1,
            )

    for index in range(signin.IP_ATTEMPTS):
        with pytest.raises(Unauthenticated):
            await attempt(f"nobody{index}@x.example")
    with pytest.raises(RateLimited):
        await attempt(brand.owner.email)


async def test_session_cookie_flags(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with browser(runtime) as http:
        response = await _login_form(http, brand.owner.email, PASSWORD)
        assert response.status_code == 303
        [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith(signin.SESSION_COOKIE + "=")]
        attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
        assert "httponly" in attributes
        assert attributes["samesite"].strip().lower() == "samesite=lax"
        assert attributes["path"].strip() == "Path=/"
        assert attributes["max-age"].strip() == f"Max-Age={runtime.settings.session_hours * 3600}"
        assert "secure" not in attributes  # ZT_ENV=test; production sets Secure
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = list(await session.scalars(select(ConsoleSession)))
        events = list(await session.scalars(select(AuditEvent.action)))
    assert len(rows) == 1
    assert rows[0].ip == "10.1.2.3"
    assert rows[0].token_hash not in cookie  # only a hash is stored
    assert events == ["auth.login"]


async def test_cookie_calls_need_the_csrf_header(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with browser(runtime) as http:
        csrf = await console_login(http, brand.owner.email)
        body = {"name": "erp", "scopes": ["users.read"]}
        assert (await http.get("/api/v1/me")).status_code == 200  # safe methods need no token
        missing = await http.post("/api/v1/tokens", json=body)
        assert missing.status_code == 403
        assert missing.json()["error"] == "csrf_failed"
        wrong = await http.post("/api/v1/tokens", json=body, headers={"x-csrf-token": csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        patch = await http.patch(f"/api/v1/users/{brand.owner.id}", json={"display_name": "Evil"})
        assert patch.status_code == 403
        revoke = await http.delete(f"/api/v1/tokens/{brand.owner.id}")
        assert revoke.status_code == 403
        assert await _count(runtime, brand, ApiToken) == 0
        made = await http.post(
            "/api/v1/tokens", json={**body, "scopes": ["tokens.write", "users.read"]}, headers={"x-csrf-token": csrf}
        )
        assert made.status_code == 201
    # A bearer token is not ambient authority, so it needs no CSRF token.
    async with browser(runtime) as http:
        other = await http.post("/api/v1/tokens", json=body, headers=bearer(made.json()["token"]))
        assert other.status_code == 201
    assert await _count(runtime, brand, ApiToken) == 2


async def test_logout_revokes_the_session(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with browser(runtime) as http:
        csrf = await console_login(http, brand.owner.email)
        cookie = http.cookies[signin.SESSION_COOKIE]
        assert (await http.get("/api/v1/me")).json()["label"] == brand.owner.email
        out = await http.post("/console/logout", data={"csrf_token": csrf}, headers=HTML)
        assert out.status_code == 303
    async with browser(runtime) as replay:
        replay.cookies.set(signin.SESSION_COOKIE, cookie)
        assert (await replay.get("/api/v1/me")).status_code == 401
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(ConsoleSession))
        actions = list(await session.scalars(select(AuditEvent.action).order_by(AuditEvent.created_at)))
    assert row is not None
    assert row.revoked_at is not None
    assert actions == ["auth.login", "auth.logout"]


async def test_disabling_a_user_ends_their_sessions(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    operator = await make_user(runtime, brand, "admin")
    async with browser(runtime) as theirs, browser(runtime) as their_phone, browser(runtime) as mine:
        await console_login(theirs, operator.email)
        await console_login(their_phone, operator.email)
        assert (await theirs.get("/api/v1/me")).status_code == 200
        csrf = await console_login(mine, brand.owner.email)
        off = await mine.patch(
            f"/api/v1/users/{operator.id}", json={"is_active": False}, headers={"x-csrf-token": csrf}
        )
        assert off.status_code == 200
        assert (await theirs.get("/api/v1/me")).status_code == 401
        assert (await their_phone.get("/api/v1/me")).status_code == 401
        # Turning the account back on does not bring old sessions back.
        on = await mine.patch(f"/api/v1/users/{operator.id}", json={"is_active": True}, headers={"x-csrf-token": csrf})
        assert on.status_code == 200
        assert (await theirs.get("/api/v1/me")).status_code == 401
        assert (await _login_form(theirs, operator.email, PASSWORD)).status_code == 303
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = list(await session.scalars(select(ConsoleSession).where(ConsoleSession.user_id == operator.id)))
    assert sorted(r.revoked_at is None for r in rows) == [False, False, True]


async def test_a_dead_session_cookie_leaves_the_session_unscoped(runtime: Runtime) -> None:
    """A cookie that no longer signs anyone in must not leave the request with all-tenant access."""
    brand = await make_brand(runtime)
    app = create_app(runtime=runtime)
    seen: list[object] = []

    @app.get("/_test/scope")
    async def scope(session: DbSession, principal: MaybePrincipal) -> dict[str, str]:
        seen.append(tenancy.current_scope(session))
        return {"principal": principal.label if principal else "-"}

    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        csrf = await console_login(http, brand.owner.email)
        cookie = http.cookies[signin.SESSION_COOKIE]
        assert (await http.get("/_test/scope")).json() == {"principal": brand.owner.email}
        await http.post("/console/logout", data={"csrf_token": csrf}, headers=HTML)
        http.cookies.set(signin.SESSION_COOKIE, cookie)
        assert (await http.get("/_test/scope")).json() == {"principal": "-"}
        http.cookies.set(signin.SESSION_COOKIE, "garbage")
        assert (await http.get("/_test/scope")).json() == {"principal": "-"}
    assert seen == [brand.id, None, None]
