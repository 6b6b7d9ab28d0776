"""Async engine, sessions and the unit of work.

Only the boundary — a request, a job, a CLI command — commits; services take a session and flush.

Two kinds of session share one pool:

- `unit_of_work()` writes: on SQLite `BEGIN IMMEDIATE` (the single write lock, taken up front), on
  PostgreSQL a read-write transaction;
- `read_session()` reads: on SQLite a deferred `BEGIN` under `PRAGMA query_only` (no write lock, so
  pages and lists never queue behind writers or each other), on PostgreSQL a `READ ONLY` transaction.
  A write through it fails on both tiers instead of silently taking the lock. Small bookkeeping writes
  a read needs (a token's or a console session's last use) go through `write_after`, which runs them in
  their own short unit of work once the read session is closed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from zhongtai.core import tenancy
from zhongtai.core.errors import AppError
from zhongtai.core.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_OPTION = "zt_read_only"  # execution option of the read sessions' engine
DEFERRED_WRITES = "zt_deferred_writes"  # session.info key: statements `write_after` queued

log = logging.getLogger("zhongtai.db")


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
        # Writers: IMMEDIATE takes the write lock up front: two transactions that read then write would
        # otherwise deadlock on the lock upgrade, which busy_timeout cannot resolve. Readers: a deferred
        # transaction (a WAL snapshot, no lock) under query_only, so that a read can never upgrade.
        read = bool(conn.get_execution_options().get(READ_OPTION))
        info = conn.connection.info  # lives as long as the DBAPI connection
        if info.get(READ_OPTION, False) is not read:
            conn.exec_driver_sql(f"PRAGMA query_only={'ON' if read else 'OFF'}")
            info[READ_OPTION] = read
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def create_engine(settings: Settings) -> AsyncEngine:
    url: URL = make_url(str(settings.database_url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=settings.database_pool_size, max_overflow=0)
        _configure_sqlite(engine)
        return engine
    # No pre-ping (a round trip on every checkout): connections are recycled before servers and
    # proxies drop idle ones, and a connection the server has closed is replaced at checkout.
    engine = create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_recycle=settings.database_pool_recycle_seconds,
    )
    _replace_dead_connections(engine)
    return engine


def _replace_dead_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        # asyncpg learns of a closed socket (server restart, failover, an idle timeout, a terminated
        # backend) without a round trip; the pool then discards it and checks out another (it retries
        # up to three times), instead of the request failing on its first statement.
        driver = getattr(dbapi_connection, "_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("The database closed this connection; taking another.")


def is_read_session(session: AsyncSession) -> bool:
    return bool(session.info.get(READ_OPTION))


async def write_after(session: AsyncSession, statement: Any) -> None:
    """A small bookkeeping write (an UPDATE by primary key, a last-use time): at once in a session that
    writes; after the read session closes, in its own unit of work, when `session` only reads.
    Deferred writes are best effort and run scoped to all tenants: pass statements naming their rows."""
    deferred = session.info.get(DEFERRED_WRITES)
    if deferred is None:
        await session.execute(statement)
    else:
        deferred.append(statement)


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
        # The same pool, read-only transactions (see `read_session`).
        read_options: dict[str, Any] = {READ_OPTION: True}
        if self.engine.dialect.name == "postgresql":
            read_options["postgresql_readonly"] = True
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(**read_options),
            expire_on_commit=False,
            autoflush=False,
            info={"settings": settings, READ_OPTION: True},
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
        `read_session` (its transactions are local calls, not round trips).
        """
        if self.dialect != "postgresql":
            async with self.read_session(tenant_id=tenant_id, all_tenants=all_tenants) as session:
                yield session
            return
        async with self.read_only_sessionmaker() as session:
            if all_tenants:
                tenancy.scope_all_tenants(session)
            elif tenant_id is not None:
                tenancy.scope_to_tenant(session, tenant_id)
            yield session

    @asynccontextmanager
    async def read_session(
        self, *, tenant_id: uuid.UUID | None = None, all_tenants: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session that reads in one read-only transaction, scoped as `unit_of_work`'s.

        Holds no write lock on SQLite and refuses writes on both tiers. Statements queued with
        `write_after` run in their own unit of work after the read transaction has ended.
        """
        deferred: list[Any] = []
        async with self.read_sessionmaker() as session:
            session.info[DEFERRED_WRITES] = deferred
            if all_tenants:
                tenancy.scope_all_tenants(session)
            elif tenant_id is not None:
                tenancy.scope_to_tenant(session, tenant_id)
            try:
                yield session
            finally:
                await session.rollback()  # nothing to keep: ends the snapshot, returns the connection
        if deferred:
            await self._run_deferred(deferred)

    async def _run_deferred(self, statements: list[Any]) -> None:
        try:
            async with self.unit_of_work(all_tenants=True) as session:
                for statement in statements:
                    await session.execute(statement)
        except Exception:  # bookkeeping only (last-use times): never fails the read that asked
            log.warning("deferred bookkeeping write failed", exc_info=True)

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
