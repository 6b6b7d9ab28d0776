"""/metrics: not exposed without ZT_METRICS_TOKEN, and only to the holder of that token with it."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from tests.factories import bearer, make_brand, make_token
from zhongtai.core.runtime import Runtime

TOKEN = "m3tr1cs-scraper-token-0123456789abcdef"


async def test_metrics_not_exposed_without_a_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert runtime.settings.metrics_token is None
    response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    # Not even an operator's API token opens it.
    token = await make_token(runtime, await make_brand(runtime))
    assert (await client.get("/metrics", headers=bearer(token))).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
async def test_metrics_refuse_without_the_token(
    client: httpx.AsyncClient, runtime: Runtime, authorization: str | None
) -> None:
    runtime.settings.metrics_token = SecretStr(TOKEN)
    headers = {"authorization": authorization} if authorization is not None else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthenticated"
    assert "zt_http_requests" not in response.text


async def test_metrics_answer_the_scraper(client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.settings.metrics_token = SecretStr(TOKEN)
    await client.get("/healthz")
    response = await client.get("/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in response.text


async def test_metrics_not_in_the_api_description(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
