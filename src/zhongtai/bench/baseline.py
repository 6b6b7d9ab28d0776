"""The baseline for `zhongtai bench http`: bare FastAPI under the same granian settings.

`/healthz` returns `{"status": "ok"}`; `/select` runs one `SELECT 1` on the tier's database through an
engine built exactly as the platform builds its own (same driver, pool and SQLite pragmas), so the
ratio app / baseline shows what the platform adds over the framework and the database round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from zhongtai.core.db import create_engine
from zhongtai.core.settings import Settings


def baseline_factory() -> FastAPI:
    """Entry point for granian (`--factory zhongtai.bench.baseline:baseline_factory`)."""
    engine = create_engine(Settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/select")
    async def select_one() -> dict[str, int]:
        async with engine.connect() as conn:
            value = await conn.scalar(text("SELECT 1"))
        return {"value": int(value or 0)}

    return app
