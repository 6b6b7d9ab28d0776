"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from zhongtai import __version__
from zhongtai.core.errors import NotFound, Unauthenticated
from zhongtai.core.metrics import REGISTRY
from zhongtai.core.web import RuntimeDep

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready to take traffic: the database (and Redis, when configured) answer."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), runtime.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if runtime.redis is not None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await runtime.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    is_ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if is_ready else "not_ready", "tier": runtime.tier, "checks": checks},
        status_code=200 if is_ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus text format, for a scraper holding `ZT_METRICS_TOKEN` (docs/security.md);
    not exposed (404) when no token is set."""
    token = runtime.settings.metrics_token
    if token is None or not token.get_secret_value():
        raise NotFound()
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise Unauthenticated("Send the metrics token as 'Authorization: Bearer <token>'.")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
