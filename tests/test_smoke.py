from __future__ import annotations

import httpx

from tests.factories import bearer, make_brand, make_token
from zhongtai.core.runtime import Runtime


async def test_healthz_and_readyz(client: httpx.AsyncClient, runtime: Runtime) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["checks"]["database"] == "ok"
    if runtime.redis is not None:
        assert body["checks"]["redis"] == "ok"
        assert body["tier"] == "production"
    else:
        assert body["tier"] == "embedded"


async def test_token_reads_own_users(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    response = await client.get("/api/v1/users", headers=bearer(token))
    assert response.status_code == 200
    assert [u["email"] for u in response.json()["items"]] == [brand.owner.email]
