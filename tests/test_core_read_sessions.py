"""Reads take no write lock: GET pages and lists run in read sessions that neither wait for a writer
nor make writers wait (SQLite: deferred transactions under query_only; PostgreSQL: READ ONLY), and a
write through a read session fails on both tiers instead of quietly taking the lock."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from tests.factories import PASSWORD, console_login, make_brand
from zhongtai.core.models import Tenant
from zhongtai.core.runtime import Runtime

WITHIN = 5.0  # seconds; SQLite's busy timeout (10 s) is what a serialised read would wait


async def test_console_pages_load_while_a_write_is_open(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await console_login(client, brand.owner.email)
    writer_holds_lock = asyncio.Event()
    release_writer = asyncio.Event()

    async def writer() -> None:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            await session.execute(update(Tenant).where(Tenant.id == brand.id).values(name="Renamed while read"))
            writer_holds_lock.set()
            await release_writer.wait()

    task = asyncio.create_task(writer())
    await asyncio.wait_for(writer_holds_lock.wait(), WITHIN)
    try:
        pages = await asyncio.wait_for(
            asyncio.gather(
                client.get("/console/users", headers={"accept": "text/html"}),
                client.get("/console/audit", headers={"accept": "text/html"}),
            ),
            WITHIN,
        )
        assert [p.status_code for p in pages] == [200, 200]
        # The open write is not visible to the readers.
        async with runtime.db.read_session(all_tenants=True) as session:
            assert await session.scalar(select(Tenant.name).where(Tenant.id == brand.id)) == brand.tenant.name
    finally:
        release_writer.set()
        await task
    async with runtime.db.read_session(all_tenants=True) as session:
        assert await session.scalar(select(Tenant.name).where(Tenant.id == brand.id)) == "Renamed while read"


async def test_a_long_read_does_not_hold_up_writers(runtime: Runtime, tier: str) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.read_session(all_tenants=True) as reader:
        before = await reader.scalar(select(Tenant.name).where(Tenant.id == brand.id))

        async def write() -> None:
            async with runtime.db.unit_of_work(all_tenants=True) as session:
                await session.execute(update(Tenant).where(Tenant.id == brand.id).values(name="Written"))

        await asyncio.wait_for(write(), WITHIN)
        # SQLite's reader keeps its snapshot; PostgreSQL's (READ COMMITTED) sees each statement's latest.
        seen = await reader.scalar(select(Tenant.name).where(Tenant.id == brand.id))
        assert seen == (before if tier == "embedded" else "Written")


async def test_a_write_through_a_read_session_fails(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    with pytest.raises(DBAPIError, match=r"readonly database|read-only transaction"):
        async with runtime.db.read_session(all_tenants=True) as session:
            await session.execute(update(Tenant).where(Tenant.id == brand.id).values(name="Never"))
    async with runtime.db.unit_of_work(all_tenants=True) as session:  # the same pooled connection writes again
        await session.execute(update(Tenant).where(Tenant.id == brand.id).values(name="Writes work"))
    async with runtime.db.read_session(all_tenants=True) as session:
        assert await session.scalar(select(Tenant.name).where(Tenant.id == brand.id)) == "Writes work"


async def test_get_answers_from_a_read_session_and_other_methods_write(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand = await make_brand(runtime)
    csrf = await console_login(client, brand.owner.email)
    opened: list[str] = []
    for kind in ("read_session", "unit_of_work"):
        original = getattr(runtime.db, kind)

        def counting(*args, _kind=kind, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            opened.append(_kind)
            return _original(*args, **kwargs)

        monkeypatch.setattr(runtime.db, kind, counting)
    assert (await client.get("/console/users", headers={"accept": "text/html"})).status_code == 200
    assert opened == ["read_session"]
    opened.clear()
    form = {"email": "clerk@read.example", "display_name": "Clerk", "role": "viewer", "password": PASSWORD}
    created = await client.post("/console/users", data=form | {"csrf_token": csrf}, headers={"accept": "text/html"})
    assert created.status_code == 303, created.text
    assert opened == ["unit_of_work"]
    opened.clear()
    # A GET route marked as writing (a code batch's export records who exported) gets the unit of work.
    from zhongtai.codes.api import export_batch
    from zhongtai.core.web import WRITES_ON_GET

    assert getattr(export_batch, WRITES_ON_GET) is True


@pytest.mark.usefixtures("client")
async def test_a_connection_the_server_closed_is_replaced_at_checkout(runtime: Runtime, tier: str) -> None:
    if tier != "postgres":
        pytest.skip("an embedded database has no server to close connections")
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    admin = await asyncpg.connect(runtime.settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))  # type: ignore[union-attr]
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the driver reads the server's goodbye
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        assert await session.scalar(text("SELECT pg_backend_pid()")) != pid
