"""Bad requests to the core API are 4xx in the common error shape — never a 500 (app.py, core/api.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, Brand, bearer, make_brand, make_token
from zhongtai.core.models import ApiToken, User
from zhongtai.core.runtime import Runtime

VALID_USER = {"email": "x@x.example", "display_name": "X", "role": "viewer", "password": PASSWORD}


def _assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "data"}, body
    assert body["error"] == error
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["data"], dict)
    return body


@pytest.fixture
async def brand(runtime: Runtime) -> Brand:
    return await make_brand(runtime)


@pytest.fixture
async def auth(runtime: Runtime, brand: Brand) -> dict[str, str]:
    return bearer(await make_token(runtime, brand))


async def test_malformed_json(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for content in (b'{"email": ', b"not json", b"", b"\xff\xfe\x00garbage", b"[1, 2]", b"null", b'"text"'):
        response = await client.post(
            "/api/v1/users", content=content, headers={**auth, "content-type": "application/json"}
        )
        _assert_error(response, 422, "validation_error")
    form = await client.post("/api/v1/users", data={"email": "x@x.example"}, headers=auth)
    _assert_error(form, 422, "validation_error")


async def test_wrong_types_and_unknown_fields(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({**VALID_USER, "email": 5}, "email"),
        ({**VALID_USER, "password": ["a", "b"]}, "password"),
        ({**VALID_USER, "display_name": ""}, "display_name"),
        ({**VALID_USER, "display_name": "x" * 81}, "display_name"),
        ({k: v for k, v in VALID_USER.items() if k != "role"}, "role"),
        ({**VALID_USER, "is_admin": True}, "is_admin"),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/users", json=body, headers=auth)
        error = _assert_error(response, 422, "validation_error")
        assert field in [problem["field"] for problem in error["data"]["errors"]], error
        assert field in error["detail"]
    token_cases: list[dict[str, Any]] = [
        {"name": "t", "scopes": "users.read"},
        {"name": "t", "scopes": ["users.read"], "expires_in_days": "soon"},
        {"name": "t", "scopes": ["users.read"], "expires_in_days": 1.5},
        {"name": "t", "scopes": ["users.read"], "expires_in_days": 10**30},
    ]
    for body in token_cases:
        _assert_error(await client.post("/api/v1/tokens", json=body, headers=auth), 422, "validation_error")
    update = await client.patch("/api/v1/users/00000000-0000-7000-8000-000000000099", json={"role": 3}, headers=auth)
    _assert_error(update, 422, "validation_error")
    otp = await client.post("/api/v1/public/whatever/otp", json={"phone": 13812345678})
    _assert_error(otp, 422, "validation_error")


async def test_bad_path_and_query_parameters(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for url in (
        "/api/v1/users/not-a-uuid",
        "/api/v1/users/12345",
        "/api/v1/users?page=0",
        "/api/v1/users?per_page=1000",
        "/api/v1/users?page=abc",
        "/api/v1/users?role=emperor",
        "/api/v1/audit-events?since=yesterday",
        "/api/v1/audit-events?since=2026-01-01T00:00:00",  # no time zone: ambiguous
        "/api/v1/tokens?include_revoked=maybe",
    ):
        _assert_error(await client.get(url, headers=auth), 422, "validation_error")
    _assert_error(await client.get("/api/v1/jobs?status=stuck", headers=auth), 400, "bad_request")
    for job_id in ("abc", "1.5", "99999999999999999999", "-1", "0"):
        response = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=auth)
        assert 400 <= response.status_code < 500, (job_id, response.text)
        assert set(response.json()) == {"error", "detail", "data"}
    _assert_error(await client.delete("/api/v1/tokens/not-a-uuid", headers=auth), 422, "validation_error")
    zoned = await client.get("/api/v1/audit-events", params={"since": "2026-01-01T00:00:00+08:00"}, headers=auth)
    assert zoned.status_code == 200


async def test_unknown_routes_and_methods(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    missing = _assert_error(await client.get("/api/v1/no-such-thing", headers=auth), 404, "not_found")
    assert missing == {"error": "not_found", "detail": "Not found.", "data": {}}
    _assert_error(await client.get("/nowhere"), 404, "not_found")
    _assert_error(await client.put("/api/v1/users", json={}, headers=auth), 405, "method_not_allowed")
    _assert_error(await client.delete("/api/v1/me", headers=auth), 405, "method_not_allowed")
    _assert_error(
        await client.get("/api/v1/users/00000000-0000-7000-8000-000000000099", headers=auth), 404, "not_found"
    )


async def test_credentials_problems_are_401(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"authorization": "Bearer"},
        {"authorization": "Bearer    "},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer zt_" + "a" * 500},
        {"authorization": "Bearer ztc_unknown"},
        {"cookie": "zt_session=forged.value"},
    ):
        _assert_error(await client.get("/api/v1/users", headers=headers), 401, "unauthenticated")


async def test_text_the_database_cannot_store_is_refused(
    runtime: Runtime, brand: Brand, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """PostgreSQL text cannot hold NUL; such input is the caller's mistake, not a server error."""
    token = await client.post("/api/v1/tokens", json={"name": "a\x00b", "scopes": ["users.read"]}, headers=auth)
    assert 400 <= token.status_code < 500, token.text
    assert set(token.json()) == {"error", "detail", "data"}
    user = await client.post("/api/v1/users", json={**VALID_USER, "display_name": "N\x00L"}, headers=auth)
    assert 400 <= user.status_code < 500, user.text
    error = _assert_error(user, 422, "validation_error")
    assert "NUL" in error["detail"]
    for url in ("/api/v1/users?q=a%00b", "/api/v1/audit-events?action=%00", "/api/v1/jobs?topic=x%00"):
        _assert_error(await client.get(url, headers=auth), 422, "validation_error")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 1
        assert await session.scalar(select(func.count()).select_from(User)) == 1
