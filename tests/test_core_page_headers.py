"""HTML pages carry a Content-Security-Policy and a Permissions-Policy; console pages are never
cached; a throttled sign-in says when to try again."""

from __future__ import annotations

import httpx

from tests.factories import CSRF_INPUT, make_brand
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}


async def test_pages_carry_the_content_security_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/login", headers=HTML)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "microphone=()" in page.headers["permissions-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    api = await client.get("/api/v1/me")
    assert "content-security-policy" not in api.headers
    assert "cache-control" not in api.headers


async def test_a_throttled_sign_in_says_when_to_retry(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    statuses = []
    for _ in range(8):
        page = await client.get("/console/login", headers=HTML)
        token = CSRF_INPUT.search(page.text)
        assert token
        response = await client.post(
            "/console/login",
            data={"email": brand.owner.email, "password": "wrong password!", "csrf_token": token.group(1)},
            headers=HTML,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"
