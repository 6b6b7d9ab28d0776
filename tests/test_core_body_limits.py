"""Request bodies are limited by their path's class before anything reads them: by Content-Length,
and by counting what streams when there is none; the refusal is the platform's error shape with the
request id and the security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.factories import bearer, make_brand, make_token
from zhongtai.authenticity import reports_api
from zhongtai.core.middleware import (
    BODY_CLASSES,
    JSON_BODY,
    BodyLimitMiddleware,
    RequestContextMiddleware,
    body_class_for,
)
from zhongtai.core.runtime import Runtime
from zhongtai.kit import crud, tabular
from zhongtai.trace import capture
from zhongtai.trace.errors import CaptureLimitExceeded

LIMIT = JSON_BODY.max_bytes
HUGE = str(150 * 1024 * 1024)


class Recorder:
    """An application that reads the whole body and answers its length."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(size).encode()})


def bare_client(app: Recorder) -> httpx.AsyncClient:
    stack = RequestContextMiddleware(BodyLimitMiddleware(app))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=stack), base_url="http://testserver")


async def chunks(total: int, size: int = 64 * 1024, prefix: bytes = b"") -> AsyncIterator[bytes]:
    yield prefix
    sent = len(prefix)
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def assert_refused(response: httpx.Response, code: str = "payload_too_large") -> None:
    assert response.status_code == 413, response.text
    assert response.json()["error"] == code
    assert set(response.json()) == {"error", "detail", "data"}
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_classes_are_the_domains_limits() -> None:
    by_name = {c.name: c for c in BODY_CLASSES}
    assert by_name["epcis"].max_bytes == capture.CAPTURE_FILE_SIZE_LIMIT
    assert by_name["epcis"].problem_type == CaptureLimitExceeded.epcis_type
    assert by_name["upload"].max_bytes == tabular.MAX_BYTES + crud.UPLOAD_SLACK_BYTES
    assert by_name["report"].max_bytes == reports_api.MAX_BODY_BYTES
    assert body_class_for("/api/v1/authenticity/verify") is JSON_BODY
    assert body_class_for("/api/v1/catalog/import").name == "upload"
    assert body_class_for("/api/v1/channel/import/stores").name == "upload"
    assert body_class_for("/api/v1/public/acme/counterfeit-reports").name == "report"
    assert body_class_for("/epcis/capture").name == "epcis"
    assert body_class_for("/api/v1/codes/pack").name == "bulk"


async def test_an_oversized_content_length_is_refused_before_the_route_runs() -> None:
    app = Recorder()
    async with bare_client(app) as http:
        response = await http.post(
            "/api/v1/authenticity/verify",
            content=b"{}",
            headers={"content-length": HUGE, "content-type": "application/json"},
        )
    assert_refused(response)
    assert response.json()["data"] == {"max_bytes": LIMIT, "size_bytes": int(HUGE)}
    assert app.calls == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
async def test_a_streamed_body_past_the_limit_is_refused(content_type: str) -> None:
    app = Recorder()
    async with bare_client(app) as http:
        response = await http.post(
            "/api/v1/authenticity/verify", content=chunks(LIMIT + 1), headers={"content-type": content_type}
        )
        assert "content-length" not in response.request.headers
        assert_refused(response)
        at_limit = await http.post(
            "/api/v1/authenticity/verify", content=chunks(LIMIT), headers={"content-type": content_type}
        )
    assert at_limit.status_code == 200
    assert at_limit.text == str(LIMIT)


async def test_a_body_longer_than_it_declared_is_refused() -> None:
    app = Recorder()
    async with bare_client(app) as http:
        response = await http.post(
            "/api/v1/things",
            content=chunks(LIMIT + 10),
            headers={"content-length": "10", "content-type": "application/octet-stream"},
        )
    assert_refused(response)


async def test_uploads_have_their_own_class() -> None:
    app = Recorder()
    upload_limit = tabular.MAX_BYTES + crud.UPLOAD_SLACK_BYTES
    async with bare_client(app) as http:
        fits = await http.post(
            "/api/v1/catalog/import", content=chunks(upload_limit), headers={"content-type": "multipart/form-data"}
        )
        assert fits.text == str(upload_limit)
        beyond = await http.post(
            "/api/v1/catalog/import", content=chunks(upload_limit + 1), headers={"content-type": "multipart/form-data"}
        )
    assert_refused(beyond, "import_too_large")


async def test_the_application_refuses_oversized_bodies(client: httpx.AsyncClient, runtime: Runtime) -> None:
    verify = await client.post(
        "/api/v1/authenticity/verify",
        content=b"{}",
        headers={"content-length": HUGE, "content-type": "application/json"},
    )
    assert_refused(verify)
    streamed = await client.post(
        "/api/v1/authenticity/verify", content=chunks(LIMIT + 1), headers={"content-type": "application/json"}
    )
    assert_refused(streamed)
    at_limit = await client.post(
        "/api/v1/authenticity/verify", content=chunks(LIMIT), headers={"content-type": "application/json"}
    )
    assert at_limit.status_code != 413
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\nContent-Type: text/csv\r\n\r\n'
    imported = await client.post(
        "/api/v1/catalog/import",
        content=chunks(tabular.MAX_BYTES + crud.UPLOAD_SLACK_BYTES + 1, prefix=part),
        headers={**bearer(token), "content-type": "multipart/form-data; boundary=x"},
    )
    assert_refused(imported, "import_too_large")
    epcis = await client.post(
        "/epcis/capture",
        content=b"{}",
        headers={**bearer(token), "content-length": str(capture.CAPTURE_FILE_SIZE_LIMIT + 1)},
    )
    assert epcis.status_code == 413
    assert epcis.headers["content-type"] == "application/problem+json"
    assert epcis.json()["type"] == "epcisException:CaptureLimitExceededException"
