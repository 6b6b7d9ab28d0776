"""One rule for JSON request bodies, on both tiers: numbers must be finite, text must be valid Unicode
without NUL, nesting is bounded; every refusal and every unexpected failure answers in the error shape
with the request id and the security headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.factories import bearer, make_brand, make_token
from zhongtai.app import create_app
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.runtime import Runtime


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert set(body) == {"error", "detail", "data"}
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    return body


async def send(client: httpx.AsyncClient, method: str, url: str, token: str, raw: str) -> httpx.Response:
    headers = {**bearer(token), "content-type": "application/json"}
    return await client.request(method, url, content=raw.encode(), headers=headers)


STORE = '{"code": "S-1", "name": "Store", "dealer_code": "D-1", "latitude": %s, "longitude": 113.2}'
PARTNER = '{"role": "store", "target_id": "%s", "phone": "13800000000", "display_name": %s}'


@pytest.mark.parametrize("latitude", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_non_finite_coordinates_are_refused(client: httpx.AsyncClient, runtime: Runtime, latitude: str) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    response = await send(client, "POST", "/api/v1/channel/stores", token, STORE % latitude)
    body = assert_error_shape(response, 422)
    assert body["error"] == "validation_error"


@pytest.mark.parametrize("text", [r'"\ud800"', r'"a\udfffb"', r'"x\u0000y"'])
async def test_broken_or_nul_text_is_refused(client: httpx.AsyncClient, runtime: Runtime, text: str) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    partner = await send(client, "POST", "/api/v1/channel/partners", token, PARTNER % (uuid.uuid4(), text))
    assert assert_error_shape(partner, 422)["error"] == "validation_error"
    settings = await send(client, "PATCH", "/api/v1/authenticity/settings", token, '{"contact": ' + text + "}")
    body = assert_error_shape(settings, 422)
    errors = body["data"]["errors"]  # type: ignore[index]
    assert [e["field"] for e in errors] == ["contact"]
    after = await client.get("/api/v1/authenticity/settings", headers=bearer(token))
    assert after.status_code == 200


async def test_deep_nesting_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    deep = '{"contact": ' + "[" * 3000 + "]" * 3000 + "}"
    assert_error_shape(await send(client, "PATCH", "/api/v1/authenticity/settings", token, deep), 422)


async def test_valid_unicode_passes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    response = await send(client, "PATCH", "/api/v1/authenticity/settings", token, r'{"contact": "客服 \ud83d\ude00"}')
    assert response.status_code == 200, response.text
    assert response.json()["contact"] == "客服 \U0001f600"


@pytest.fixture
async def test_app_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)

    async def boom() -> None:
        raise RuntimeError("an unexpected failure")

    async def quotes_bad_values() -> None:
        raise ValidationFailed("Not valid.", value=float("nan"), text="a\ud800b", nested=[float("inf")])

    app.add_api_route("/api/v1/test/boom", boom, methods=["GET"])
    app.add_api_route("/api/v1/test/quote", quotes_bad_values, methods=["GET"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_an_unexpected_error_answers_with_the_request_id(test_app_client: httpx.AsyncClient) -> None:
    response = await test_app_client.get("/api/v1/test/boom", headers={"x-request-id": "req-boom-1"})
    body = assert_error_shape(response, 500)
    assert body["error"] == "internal_error"
    assert body["data"] == {"request_id": "req-boom-1"}
    assert response.headers["x-request-id"] == "req-boom-1"


async def test_an_error_quoting_values_json_cannot_carry_still_renders(test_app_client: httpx.AsyncClient) -> None:
    response = await test_app_client.get("/api/v1/test/quote")
    body = assert_error_shape(response, 422)
    assert body["data"] == {"value": "nan", "text": "a\ufffdb", "nested": ["inf"]}


async def test_text_that_is_not_json_is_answered_by_the_route_itself(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The input check refuses only JSON the platform never accepts; a broken document goes on to the
    route, whose validation names the parse error, and nothing is written."""
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    response = await send(client, "POST", "/api/v1/channel/stores", token, '{"code": "S-1", "name": ')
    body = assert_error_shape(response, 422)
    assert body["error"] == "validation_error"
    assert "JSON decode error" in str(body["detail"]), body
    listed = await client.get("/api/v1/channel/stores", headers=bearer(token))
    assert listed.status_code == 200
    assert listed.json()["total"] == 0
