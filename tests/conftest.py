"""Test harness: the same suite on the embedded tier (SQLite, in-process) and on PostgreSQL + Redis.

Each test gets its own database copied from a migrated template — a file copy on SQLite,
`CREATE DATABASE … TEMPLATE` on PostgreSQL — so tests may commit, race and kill workers freely.
The PostgreSQL + Redis tier runs whenever they answer (or `ZT_TEST_DATABASE_URL` / `ZT_TEST_REDIS_URL`
are set); with `CI=true` it is required.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from redis.asyncio import Redis

from zhongtai import domains
from zhongtai.core import clock, migrate
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings

PG_URL = os.environ.get("ZT_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ZT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IS_CI = os.environ.get("CI", "").lower() == "true"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


HAS_SERVICES = _answers(PG_URL, 5432) and _answers(REDIS_URL, 6379)
TIERS = ["embedded", "postgres"] if HAS_SERVICES else ["embedded"]


def pytest_configure(config: pytest.Config) -> None:
    # What every process of the platform does at start: job topics, subscribers and panels wired.
    domains.load_all()
    if IS_CI and not HAS_SERVICES:
        raise pytest.UsageError(
            "CI=true requires the PostgreSQL + Redis tier, but they do not answer at "
            f"{PG_URL} / {REDIS_URL}. Start them (see .ci/run) or set ZT_TEST_DATABASE_URL / ZT_TEST_REDIS_URL."
        )


def _pg_admin_dsn() -> str:
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


def _pg_url_for(database: str) -> str:
    parts = urlsplit(PG_URL)
    return parts._replace(path=f"/{database}").geturl()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("template")
    settings = Settings(env="test", data_dir=directory)
    migrate.upgrade(settings)
    return directory / "zhongtai.db"


async def _pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    if not HAS_SERVICES:
        yield None
        return
    # One template per test process, so that parallel runs on one server do not collide.
    name = f"zt_test_template_{WORKER}_{os.getpid()}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
    migrate.upgrade(Settings(env="test", database_url=_pg_url_for(name)))
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def settings(
    tier: str, tmp_path: Path, sqlite_template: Path, pg_template: str | None
) -> AsyncIterator[Settings]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if tier == "embedded":
        shutil.copyfile(sqlite_template, data_dir / "zhongtai.db")
        yield Settings(env="test", data_dir=data_dir, log_json=False, in_process_worker=False)
        return
    name = f"zt_test_{WORKER}_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    prefix = f"zt:test:{uuid.uuid4().hex[:8]}:"
    try:
        yield Settings(
            env="test",
            data_dir=data_dir,
            database_url=_pg_url_for(name),
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            log_json=False,
            in_process_worker=False,
        )
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    active = Runtime(settings)
    await active.start(with_worker=False)
    try:
        yield active
    finally:
        await active.stop()
        clock.reset()


pytest_plugins = ["tests.factories"]
