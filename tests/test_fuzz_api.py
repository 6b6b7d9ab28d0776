"""Fuzzing of the whole HTTP API from its own description (`/openapi.json`) with schemathesis.

Every operation gets a few generated requests, sent as a brand's operator (an API token with every
permission of the owner role) so that the fuzzer reaches past 401, on each tier. Checks: no 5xx; every
4xx answer in the error shape (`{"error", "detail", "data"}`, core/errors.py); answers conform to the
schema the operation declares (content type and body). The number of examples per operation is small
(`FUZZ_EXAMPLES`, default 4) so that the test fits in CI; raise it locally to dig deeper.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.factories import bearer, make_brand, make_token
from zhongtai.core.runtime import Runtime

FUZZ_EXAMPLES = int(os.environ.get("ZT_FUZZ_EXAMPLES", "4"))

# Operations the fuzzer leaves alone, with the reason.
EXCLUDED = {
    ("GET", "/api/v1/authenticity/reports/{report_id}/photos/{photo_id}"): "a file download (image bytes)",
}


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis serializes a case for `requests`; httpx takes raw bytes as `content`."""
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    data = kwargs.pop("data", None)
    if isinstance(data, bytes | str):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    files = kwargs.pop("files", None)
    if files:
        kwargs["files"] = [
            _file_part(name, part) for name, part in (files.items() if isinstance(files, dict) else files)
        ]
    kwargs.pop("allow_redirects", None)
    kwargs.pop("auth", None)
    cookies = kwargs.pop("cookies", None)
    if cookies:
        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
        kwargs["headers"] = {**kwargs.get("headers", {}), "cookie": cookie}
    return kwargs


def _file_part(name: str, part: Any) -> tuple[str, Any]:
    """requests takes any value as a form field of a multipart body; httpx only text, bytes or files."""
    if isinstance(part, tuple):
        filename, content, *rest = part
        if not isinstance(content, bytes | str):
            content = str(content)
        return name, (filename, content, *rest)
    return name, part if isinstance(part, bytes | str) else str(part)


async def _send(client: httpx.AsyncClient, kwargs: dict[str, Any]) -> httpx.Response:
    request = client.build_request(**kwargs)
    await request.aread()  # a multipart body is a stream; the checks read the request again
    return await client.send(request)


def _check_error_shape(response: httpx.Response) -> str | None:
    if not 400 <= response.status_code < 500:
        return None
    if response.request.url.path.startswith("/epcis/"):
        # The EPCIS 2.0 bindings answer RFC 7807 problems (`epcisException:…`), as GS1 specifies.
        problem = response.json()
        # The transparency log under /epcis/log answers in the platform's error shape.
        if isinstance(problem, dict) and str(problem.get("type", "")).startswith("epcisException:"):
            return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} not JSON: {response.text[:200]!r}"
    if not (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("detail"), str)
        and isinstance(body.get("data", {}), dict)
    ):
        return f"{response.status_code} not in the error shape: {str(body)[:200]}"
    return None


async def test_fuzz_every_operation(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    spec = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    operations = 0

    def fuzz() -> None:
        nonlocal operations
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in EXCLUDED:
                continue
            operations += 1

            @hypothesis_settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def check(case: Any) -> None:
                kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=bearer(token))
                sent = asyncio.run_coroutine_threadsafe(_send(client, _httpx_kwargs(kwargs)), loop)
                response = sent.result(timeout=60)
                problem = _check_error_shape(response)
                assert problem is None, f"{case.method} {case.formatted_path}: {problem}"
                case.validate_response(
                    response,
                    checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
                )

            try:
                check()
            except Exception as exc:
                failures.append(f"{operation.label}: {str(exc)[:1500]}")

    await asyncio.to_thread(fuzz)
    assert operations > 100, "the fuzzer must have reached the API"
    assert not failures, "\n\n".join(failures)


# Regressions the fuzzer found.


async def test_integer_filters_beyond_bigint_are_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """An id filter past BIGINT reached the database (500 on both tiers); it is refused with 422."""
    token = await make_token(runtime, await make_brand(runtime))
    for url in (
        f"/api/v1/rewards/grants?party=x&code_id={2**64}",
        f"/api/v1/authenticity/scans?code=x&before_id={2**64}",
    ):
        response = await client.get(url, headers=bearer(token))
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"] == "validation_error"
