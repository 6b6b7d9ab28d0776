"""Async engine, sessions and the unit of work.

Only the boundary — a request, a job, a CLI command — commits; services take a session and flush.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from zhongtai.core import tenancy
from zhongtai.core.errors import AppError
from zhongtai.core.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: two transactions that read then write would
        # otherwise deadlock on the lock upgrade, which busy_timeout cannot resolve.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: Settings) -> AsyncEngine:
    url: URL = make_url(str(settings.database_url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=settings.database_pool_size, max_overflow=0)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
    )


async def pg_driver(session: AsyncSession) -> Any:
    """The asyncpg connection under a PostgreSQL session's transaction, the transaction begun on it.

    For hot paths that send fixed statement texts straight to the driver (asyncpg prepares each
    once per connection) inside the session's unit of work: no SQLAlchemy compile, bind or result
    processing. SQLAlchemy's asyncpg adapter begins its transaction lazily, at its first statement;
    here it is begun the same way if nothing ran yet, so what goes through the driver commits or
    rolls back with the session.
    """
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    if adapted._transaction is None:  # what the adapter's own cursor checks before a statement
        await adapted._start_transaction()
    return adapted.driver_connection


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        # Sessions carry the settings, for code that needs the platform's keys (e.g. code serials).
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=True, info={"settings": settings}
        )
        # The same pool, each statement its own transaction (see `read_only`).
        self.read_only_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
            autoflush=False,
            info={"settings": settings},
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def read_only(
        self, *, tenant_id: uuid.UUID | None = None, all_tenants: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session for reads that need no transaction, scoped as `unit_of_work`'s.

        On PostgreSQL each statement runs on its own (autocommit): no BEGIN and COMMIT round trips,
        which is most of a small read's latency. Only for reads whose answer does not depend on one
        snapshot across statements — append-only data such as the Merkle log, whose nodes never change
        once written. Nothing is committed at the end; do not write through it. On SQLite it is a
        unit of work (its transactions are local calls, not round trips).
        """
        if self.dialect != "postgresql":
            async with self.unit_of_work(tenant_id=tenant_id, all_tenants=all_tenants) as session:
                yield session
            return
        async with self.read_only_sessionmaker() as session:
            if all_tenants:
                tenancy.scope_all_tenants(session)
            elif tenant_id is not None:
                tenancy.scope_to_tenant(session, tenant_id)
            yield session

    @asynccontextmanager
    async def unit_of_work(
        self, *, tenant_id: uuid.UUID | None = None, all_tenants: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block ends normally and rolls back otherwise.

        Give `tenant_id` to scope every ORM query and insert to one tenant, or `all_tenants=True`
        for platform work (tenant creation, the job runner). A session with neither refuses to
        touch tenant-owned tables.
        """
        async with self.sessionmaker() as session:
            if all_tenants:
                tenancy.scope_all_tenants(session)
            elif tenant_id is not None:
                tenancy.scope_to_tenant(session, tenant_id)
            try:
                yield session
                await session.commit()
            except AppError as exc:
                if exc.keeps_writes:
                    await session.commit()
                else:
                    await session.rollback()
                raise
            except BaseException:
                await session.rollback()
                raise
