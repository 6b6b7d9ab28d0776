from __future__ import annotations

import httpx

from tests.factories import make_brand
from zhongtai.core.runtime import Runtime


async def test_public_sign_in_is_limited_per_address(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    url = f"/api/v1/public/{brand.tenant.slug}/sessions"
    statuses = [
        (await client.post(url, json={"phone": "13812345678", "code": "000000"})).status_code for _ in range(30)
    ]
    assert set(statuses) == {400}, "no code was requested, so each try is a clear 400 until the limit"
    refused = await client.post(url, json={"phone": "13812345678", "code": "000000"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 3
