"""ASGI middleware: request ids, access logs and request metrics, security headers, and the request
body's size and JSON rules."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhongtai.core import jsonsafe
from zhongtai.core.logs import request_id_var
from zhongtai.core.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("zhongtai.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
# HTML pages load scripts only from /static (no inline script, no eval); inline styles stay allowed
# (style attributes for bars and indents, htmx's indicator styles).
PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        b"object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
    ),
    (b"permissions-policy", b"camera=(self), geolocation=(self), microphone=(), payment=(), usb=()"),
]
CONSOLE_PREFIX = "/console"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = [500]
        answered = [False]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = True
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.extend(PAGE_HEADERS)
                if scope["path"].startswith(CONSOLE_PREFIX):  # operators' pages: never kept by a browser or proxy
                    headers = [(k, v) for k, v in headers if k != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Answered here, inside the request's context, so that the 500 carries the request id and
            # the security headers (the framework's last-resort handler runs outside this middleware).
            if answered[0]:
                raise
            if outage := store_outage():
                # PostgreSQL or Redis went away mid-request (a restart, a failover): nothing was
                # accepted, and the client may simply try again in a moment.
                log.warning("store unavailable", extra={"path": scope["path"], "store": outage})
                await send_json(send_wrapper, 503, unavailable(request_id, outage), retry_after=RETRY_AFTER_SECONDS)
            else:
                log.exception("unhandled error", extra={"path": scope["path"]})
                await send_json(send_wrapper, 500, internal_error(request_id))
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route_path, str(status_holder[0])).inc()
            HTTP_LATENCY.labels(method, route_path).observe(elapsed)
            if status_holder[0] >= 500:
                log.error(
                    "request failed",
                    extra={"method": method, "path": scope["path"], "status": status_holder[0]},
                )
            request_id_var.reset(token)


def internal_error(request_id: str | None) -> dict[str, Any]:
    return {
        "error": "internal_error",
        "detail": "Internal error; the request id identifies it in the logs.",
        "data": {"request_id": request_id},
    }


RETRY_AFTER_SECONDS = 1


def unavailable(request_id: str | None, store: str) -> dict[str, Any]:
    return {
        "error": "service_unavailable",
        "detail": "The service is briefly unavailable; nothing was done. Try again in a moment.",
        "data": {"request_id": request_id, "store": store, "retry_after_seconds": RETRY_AFTER_SECONDS},
    }


def store_outage() -> str | None:
    """ "database" or "redis" when the exception being handled comes from losing that store (connection
    refused, closed or reset, the server shutting down or starting up, a pool timeout), "connection" for
    a bare socket error, else None. Follows the exception's causes."""
    seen: BaseException | None = sys.exc_info()[1]
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, RedisConnectionError | RedisTimeoutError):
            return "redis"
        if isinstance(
            seen,
            asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.exceptions.OperatorInterventionError
            | SqlPoolTimeout,
        ) or (isinstance(seen, DBAPIError) and seen.connection_invalidated):
            return "database"
        if isinstance(seen, ConnectionError | TimeoutError):
            return "connection"
        seen = seen.__cause__ or seen.__context__
    return None


async def send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    *,
    media_type: str = "application/json",
    retry_after: int | None = None,
) -> None:
    payload = json.dumps(jsonsafe.echo_safe(body), ensure_ascii=False).encode()
    headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(payload)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# Request bodies. Every request body is limited by the class of its path, before anything reads it:
# a declared Content-Length above the limit is refused at once, and a body sent without one (or longer
# than it said) is refused when the bytes counted pass the limit. The first class whose pattern starts
# the path applies (`*` stands for one path segment); every other path is `json`. The limits are the
# domains' own (a test checks they agree): the domain refuses what passes here with its own words.

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class BodyClass:
    name: str
    max_bytes: int
    patterns: tuple[str, ...] = ()
    code: str = "payload_too_large"
    # JSON bodies of this class are checked by `jsonsafe` (finite numbers, no NUL or unpaired
    # surrogate in any text, nesting at most `jsonsafe.MAX_DEPTH`) before the route sees them.
    checks_json: bool = True
    # Answered as an RFC 7807 problem of this type instead of the platform's error shape.
    problem_type: str | None = None


JSON_BODY = BodyClass("json", 1 * MIB)
BODY_CLASSES: tuple[BodyClass, ...] = (
    # EPCIS capture: GS1-EPCIS-Capture-File-Size-Limit (trace.capture.CAPTURE_FILE_SIZE_LIMIT); the
    # capture interface checks its documents itself and answers in the EPCIS bindings' terms.
    BodyClass(
        "epcis",
        20 * MIB,
        ("/epcis/",),
        checks_json=False,
        problem_type="epcisException:CaptureLimitExceededException",
    ),
    # Counterfeit reports with up to 3 photos of 5 MiB (authenticity.reports_api.MAX_BODY_BYTES).
    BodyClass(
        "report",
        3 * 5 * MIB + 256 * KIB,
        ("/api/v1/public/*/counterfeit-reports", "/h5/*/report"),
        code="report_too_large",
    ),
    # Spreadsheet imports and result files: kit.tabular.MAX_BYTES and kit.crud.UPLOAD_SLACK_BYTES.
    BodyClass(
        "upload",
        5 * MIB + 64 * KIB,
        (
            "/api/v1/catalog/import",
            "/api/v1/channel/import/",
            "/api/v1/rewards/batches/*/results",
            "/console/catalog/import",
            "/console/channel/import",
            "/console/rewards/payouts/*/reconcile",
        ),
        code="import_too_large",
    ),
    # Lists of up to 100,000 codes or stock lines, and territories drawn in the console.
    BodyClass(
        "bulk",
        16 * MIB,
        ("/api/v1/codes/", "/api/v1/lottery/sessions/*/stock", "/console/lottery/*/stock", "/console/channel/dealers"),
    ),
)


def _pattern(body_class: BodyClass) -> re.Pattern[str]:
    parts = ("^" + re.escape(p).replace(r"\*", "[^/]+") for p in body_class.patterns)
    return re.compile("|".join(parts))


_CLASS_PATTERNS = tuple((_pattern(c), c) for c in BODY_CLASSES)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM_TYPE = re.compile(rb"^\s*application/x-www-form-urlencoded\s*(;|$)", re.IGNORECASE)
_JSON_TYPE = re.compile(rb"^\s*application/([a-z0-9.+-]+\+)?json\s*(;|$)", re.IGNORECASE)


def body_class_for(path: str) -> BodyClass:
    for pattern, body_class in _CLASS_PATTERNS:
        if pattern.match(path):
            return body_class
    return JSON_BODY


def _check_json(raw: bytes) -> None:
    """Refuse JSON the platform never accepts (`jsonsafe.JsonRefused`: NaN, NUL, lone surrogates, deep
    nesting). A body that is not JSON at all is let through on purpose: the route's own validation
    answers it (422 with FastAPI's parse error), as it did before this check existed."""
    if not raw:
        return
    with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
        jsonsafe.loads(raw)


def _check_form(raw: bytes) -> None:
    if b"%00" in raw or b"\x00" in raw:
        raise jsonsafe.JsonRefused("", "text must not contain NUL characters")


class _BodyTooLarge(Exception):
    pass


async def _refuse_size(send: Send, body_class: BodyClass, size: int | None) -> None:
    detail = f"The request body is larger than {body_class.max_bytes} bytes, the most this address accepts."
    if body_class.problem_type is not None:
        problem = {"type": body_class.problem_type, "title": "Payload too large", "status": 413, "detail": detail}
        await send_json(send, 413, problem, media_type="application/problem+json")
        return
    data: dict[str, Any] = {"max_bytes": body_class.max_bytes}
    if size is not None:
        data["size_bytes"] = size
    await send_json(send, 413, {"error": body_class.code, "detail": detail, "data": data})


async def _refuse_json(send: Send, refused: jsonsafe.JsonRefused) -> None:
    field = ".".join(part.replace("~1", "/").replace("~0", "~") for part in refused.pointer.split("/")[1:])
    detail = f"The request is not valid — {field or 'body'}: {refused.message}."
    body = {
        "error": "validation_error",
        "detail": detail,
        "data": {"errors": [{"field": field, "problem": refused.message}]},
    }
    await send_json(send, 422, body)


class BodyLimitMiddleware:
    """Refuses request bodies beyond their path's class (413) and JSON the platform does not accept
    (422), before any route reads them. Uploads are counted as they stream, never held whole here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_class = body_class_for(scope["path"])
        declared: int | None = None
        kind: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"content-type":
                kind = "json" if _JSON_TYPE.match(value) else "form" if _FORM_TYPE.match(value) else None
        if declared is not None and declared > body_class.max_bytes:
            await _refuse_size(send, body_class, declared)
            return
        if kind is not None and body_class.checks_json and scope["method"] in _BODY_METHODS:
            await self._checked(scope, receive, send, body_class, _check_json if kind == "json" else _check_form)
            return
        await self._counted(scope, receive, send, body_class)

    async def _checked(
        self, scope: Scope, receive: Receive, send: Send, body_class: BodyClass, check: Callable[[bytes], None]
    ) -> None:
        """A JSON or form body (at most the class's limit) is read whole, checked, and handed on."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > body_class.max_bytes:
                await _refuse_size(send, body_class, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        try:
            check(raw)
        except jsonsafe.JsonRefused as refused:
            await _refuse_json(send, refused)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": raw, "more_body": False}], receive), send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, body_class: BodyClass) -> None:
        """Any other body streams through, counted; past the limit the route's answer is replaced by 413."""
        size = 0
        tripped = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal size, tripped
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > body_class.max_bytes:
                    tripped = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if tripped:
                return  # whatever the route makes of the interrupted body, the answer is 413
            answered = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not tripped or answered:
                raise
        if tripped and not answered:
            await _refuse_size(send, body_class, None)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
