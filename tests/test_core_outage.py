"""A request that loses PostgreSQL or Redis half-way is answered 503 with Retry-After in the error
envelope (nothing was done: the client tries again), not 500; any other failure stays a 500."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError

from zhongtai.core.middleware import RequestContextMiddleware


def _failing_app(error: BaseException) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    return app


async def _call(error: BaseException) -> tuple[int, dict[str, str], dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/authenticity/verify", "headers": []}
    await RequestContextMiddleware(_failing_app(error))(scope, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, json.loads(sent[1]["body"])


def _wrapped_by_sqlalchemy(cause: BaseException) -> DBAPIError:
    error = DBAPIError("SELECT 1", {}, cause, connection_invalidated=True)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "store"),
    [
        (RedisConnectionError("Connection closed by server."), "redis"),
        (_wrapped_by_sqlalchemy(asyncpg.exceptions.ConnectionDoesNotExistError("closed")), "database"),
        (asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"), "database"),
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"), "connection"),
    ],
)
async def test_a_lost_store_answers_503_with_retry_after(error: BaseException, store: str) -> None:
    status, headers, body = await _call(error)
    assert status == 503
    assert headers["retry-after"] == "1"
    assert body["error"] == "service_unavailable"
    assert body["data"]["store"] == store
    assert body["data"]["request_id"] == headers["x-request-id"]
    assert "x-content-type-options" in headers  # the security headers as on every answer


async def test_any_other_failure_is_still_a_500() -> None:
    status, headers, body = await _call(ValueError("a bug"))
    assert status == 500
    assert "retry-after" not in headers
    assert body["error"] == "internal_error"
