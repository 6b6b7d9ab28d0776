"""`zhongtai bench lottery` — a reservation lottery at i茅台 scale, per tier.

Draw: N entries (default 5,000,000, `ZT_BENCH_LOTTERY_ENTRIES`) of as many verified members over
2,000 stores, 10 bottles a store. Members, identities and entries are bulk-loaded (COPY on
PostgreSQL, executemany on SQLite; not measured; identities carry placeholder ciphertexts — the
draw never reads them). Then the session is closed (exclusions, entries root, stored subtrees:
`close_seconds`) and drawn (scores, winners, wins persisted, seed revealed: `draw_seconds`), each
in one unit of work that commits.

Intake: a second session open for entries; M verified members (default 20,000,
`ZT_BENCH_LOTTERY_INTAKE`) each POST one entry over real HTTP (granian, one worker, keep-alive
connections from an asyncio client in this process): `entries_per_s` counts 201 answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import update
from sqlalchemy.engine import make_url

from zhongtai.bench import servers
from zhongtai.bench.registry import benchmark
from zhongtai.catalog import rules as catalog_rules
from zhongtai.catalog import service as catalog_service
from zhongtai.core import accounts, migrate
from zhongtai.core.crypto import new_token, sha256_hex
from zhongtai.core.ids import new_id
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.lottery import service
from zhongtai.lottery.models import LotterySession, LotteryStore

TIERS = ("embedded", "postgres")
STORES = 2_000
BOTTLES_PER_STORE = 10
CHUNK = 200_000
EMBEDDED_CONNECTIONS = 1
progress = Console(stderr=True)

CONSUMER_COLUMNS = ("id", "tenant_id", "phone_ciphertext", "phone_hash", "phone_masked", "is_active", "created_at")
IDENTITY_COLUMNS = (
    "id",
    "tenant_id",
    "consumer_id",
    "id_ciphertext",
    "id_hash",
    "id_masked",
    "name_ciphertext",
    "name_masked",
    "birth_date",
    "region_code",
    "verifier",
    "verifier_reference",
    "verified_at",
)
ENTRY_COLUMNS = (
    "id",
    "tenant_id",
    "session_id",
    "product_id",
    "store_id",
    "consumer_id",
    "identity_hash",
    "entrant",
    "created_at",
)
SESSION_COLUMNS = ("id", "tenant_id", "consumer_id", "token_hash", "created_at", "expires_at")


def entries_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_LOTTERY_ENTRIES", "5000000"))


def intake_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_LOTTERY_INTAKE", "20000"))


class Loader:
    """Bulk rows into one tier's database: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings, self.runtime = settings, runtime
        self.is_sqlite = settings.is_sqlite

    def _sqlite_value(self, value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        if isinstance(value, date):
            return value.isoformat()
        return value

    async def load(self, table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]]) -> int:
        count = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                await self._flush(table, columns, batch)
                count += len(batch)
                batch = []
        if batch:
            await self._flush(table, columns, batch)
            count += len(batch)
        return count

    async def _flush(self, table: str, columns: Sequence[str], batch: list[tuple[Any, ...]]) -> None:
        if self.is_sqlite:
            path = make_url(str(self.settings.database_url)).database
            assert path is not None
            converted = [tuple(self._sqlite_value(v) for v in row) for row in batch]
            placeholders = ", ".join("?" for _ in columns)
            with sqlite3.connect(path, timeout=60) as conn:
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608 - fixed names
                    converted,
                )
            return
        async with self.runtime.db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table(table, records=batch, columns=list(columns))
            await conn.commit()


async def _members(
    loader: Loader, tenant_id: uuid.UUID, count: int, offset: int, *, with_tokens: bool
) -> tuple[list[uuid.UUID], list[str]]:
    """`count` consumers with a verified adult identity (and a bearer token each, if asked)."""
    now = datetime.now(UTC)
    consumer_ids = [uuid.uuid4() for _ in range(count)]
    await loader.load(
        "consumers",
        CONSUMER_COLUMNS,
        (
            (cid, tenant_id, "v1.bench", f"{offset + i:064x}", "138****0000", True, now)
            for i, cid in enumerate(consumer_ids)
        ),
    )
    birth = date(1990, 1, 1)
    await loader.load(
        "member_identities",
        IDENTITY_COLUMNS,
        (
            (
                uuid.uuid4(),
                tenant_id,
                cid,
                "v1.bench",
                f"{offset + i:064x}",
                "1101**********0000",
                "v1.bench",
                "张*",
                birth,
                "110105",
                "bench",
                "bench",
                now,
            )
            for i, cid in enumerate(consumer_ids)
        ),
    )
    tokens: list[str] = []
    if with_tokens:
        tokens = [new_token("ztc") for _ in consumer_ids]
        await loader.load(
            "consumer_sessions",
            SESSION_COLUMNS,
            (
                (uuid.uuid4(), tenant_id, cid, sha256_hex(token), now, now + timedelta(days=1))
                for cid, token in zip(consumer_ids, tokens, strict=True)
            ),
        )
    return consumer_ids, tokens


async def _session(
    runtime: Runtime, tenant_id: uuid.UUID, product_id: uuid.UUID, store_ids: list[uuid.UUID], title: str
) -> uuid.UUID:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        now = datetime.now(UTC)
        lottery = await service.do_create_session(
            session, runtime.crypto, title=title, opens_at=now + timedelta(hours=1), closes_at=now + timedelta(hours=2)
        )
        items = [service.StockItem(store_id, product_id, BOTTLES_PER_STORE) for store_id in store_ids]
        await service.do_set_stock(session, lottery, items)
        await service.do_commit(session, lottery)
        return lottery.id


async def _move_window(runtime: Runtime, tenant_id: uuid.UUID, session_id: uuid.UUID, *, open_now: bool) -> None:
    """The benchmark's shortcut through time: open the window now, or put it in the past."""
    now = datetime.now(UTC)
    opens, closes = (
        (now - timedelta(hours=1), now + timedelta(hours=1))
        if open_now
        else (now - timedelta(hours=2), now - timedelta(seconds=1))
    )
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        await session.execute(
            update(LotterySession)
            .where(LotterySession.id == session_id)
            .values(opens_at=opens, closes_at=closes)
            .execution_options(synchronize_session=False)
        )


async def _prepare(runtime: Runtime) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        tenant, _owner = await accounts.do_create_tenant(
            session, slug=slug, name="Bench brand", owner_email=f"owner@{slug}.example", owner_password=uuid.uuid4().hex
        )
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        product = await catalog_service.do_create_product(
            session, servers.bench_actor(tenant.id), catalog_rules.ProductDraft(gtin="06901234567892", name="Bench")
        )
        stores = [
            LotteryStore(
                code=f"S{i:04d}", name=f"Store {i}", city="", latitude=20 + (i % 200) / 10, longitude=100 + i / 100
            )
            for i in range(STORES)
        ]
        session.add_all(stores)
        await session.flush()
        return tenant.id, product.id, [s.id for s in stores]


async def _measure_draw(settings: Settings, entries: int) -> dict[str, Any]:
    runtime = Runtime(settings)
    loader = Loader(settings, runtime)
    try:
        tenant_id, product_id, store_ids = await _prepare(runtime)
        session_id = await _session(runtime, tenant_id, product_id, store_ids, "Bench draw")
        started = time.perf_counter()
        consumer_ids, _ = await _members(loader, tenant_id, entries, 0, with_tokens=False)
        rng = random.Random(7)
        now = datetime.now(UTC)
        await loader.load(
            "lottery_entries",
            ENTRY_COLUMNS,
            (
                (
                    new_id(),
                    tenant_id,
                    session_id,
                    product_id,
                    store_ids[rng.randrange(STORES)],
                    cid,
                    f"{i:064x}",
                    hashlib.sha256(cid.bytes).hexdigest()[:32],
                    now,
                )
                for i, cid in enumerate(consumer_ids)
            ),
        )
        del consumer_ids
        load_seconds = time.perf_counter() - started
        progress.print(f"  loaded {entries:,} members, identities and entries in {load_seconds:.1f} s")
        await _move_window(runtime, tenant_id, session_id, open_now=False)
        started = time.perf_counter()
        async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
            closed = await service.do_close(session, await service.get_session(session, session_id))
        close_seconds = time.perf_counter() - started
        progress.print(f"  closed (root {closed.entries_root}) in {close_seconds:.1f} s")
        started = time.perf_counter()
        async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
            drawn = await service.do_draw(
                session, runtime.crypto, await service.get_session(session, session_id), beacon=None
            )
        draw_seconds = time.perf_counter() - started
        progress.print(f"  drew {drawn.winners_count:,} winners in {draw_seconds:.1f} s")
        if drawn.entries_count != entries or drawn.winners_count > STORES * BOTTLES_PER_STORE:
            raise RuntimeError(f"unexpected draw: {drawn.entries_count} entries, {drawn.winners_count} winners")
        return {
            "load_seconds": round(load_seconds, 1),
            "close_seconds": round(close_seconds, 2),
            "draw_seconds": round(draw_seconds, 2),
            "winners": drawn.winners_count,
            "excluded": drawn.excluded_count,
        }
    finally:
        await runtime.stop()


async def _post_entries(
    port: int, path: str, body: bytes, tokens: list[str], connections: int
) -> tuple[int, int, float]:
    """Each token enters once; keep-alive HTTP/1.1 connections; returns (created, failed, seconds)."""
    queue = list(reversed(tokens))
    created = failed = 0

    async def worker() -> None:
        nonlocal created, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                token = queue.pop()
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                status_line = await reader.readline()
                if not status_line:
                    raise RuntimeError("the server closed the connection")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if status_line.split()[1] == b"201":
                    created += 1
                else:
                    failed += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return created, failed, time.perf_counter() - started


def _measure_intake(tier: str, members: int, connections: int) -> dict[str, Any]:
    context = servers.embedded_tier() if tier == "embedded" else servers.postgres_tier()
    with context as running_tier:
        settings = Settings(
            env="development",
            data_dir=running_tier.data_dir,
            database_url=running_tier.env.get("ZT_DATABASE_URL"),
            redis_url=running_tier.env.get("ZT_REDIS_URL"),
            redis_prefix=running_tier.env.get("ZT_REDIS_PREFIX", "zt:"),
        )
        migrate.upgrade(settings)

        async def prepare() -> tuple[str, bytes, list[str]]:
            runtime = Runtime(settings)
            try:
                tenant_id, product_id, store_ids = await _prepare(runtime)
                session_id = await _session(runtime, tenant_id, product_id, store_ids, "Bench intake")
                await _move_window(runtime, tenant_id, session_id, open_now=True)
                _, tokens = await _members(Loader(settings, runtime), tenant_id, members, 10**9, with_tokens=True)
                body = f'{{"product_id": "{product_id}", "store_id": "{store_ids[0]}"}}'.encode()
                return f"/api/v1/consumer/lottery/sessions/{session_id}/entries", body, tokens
            finally:
                await runtime.stop()

        path, body, tokens = asyncio.run(prepare())
        with servers.serve(running_tier, "zhongtai.app:app_factory", label="lottery-intake") as server:
            cpu_before = server.cpu_seconds()
            created, failed, seconds = asyncio.run(_post_entries(server.port, path, body, tokens, connections))
            cpu = server.cpu_seconds() - cpu_before
    return {
        "entries_per_s": round(created / seconds),
        "intake_entries": created,
        "intake_failed": failed,
        "intake_seconds": round(seconds, 2),
        "intake_server_cpu_ms_per_entry": round(cpu * 1000 / max(created, 1), 3),
    }


@benchmark("lottery", "draw N entries over 2,000 stores and persist the wins; entry intake over HTTP; per tier")
def run_lottery_benchmark(
    entries: int | None = None,
    intake: int | None = None,
    *,
    tiers: Sequence[str] | None = None,
    connections: int = 32,
    **_ignored: Any,
) -> dict[str, Any]:
    total = entries if entries is not None else entries_from_env()
    members = intake if intake is not None else intake_from_env()
    wanted = list(tiers) if tiers is not None else list(TIERS)
    if "postgres" in wanted and not servers.services_answer():
        wanted.remove("postgres")
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL and Redis do not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for tier in wanted:
        progress.print(f"[bold]{tier} tier[/bold]: draw {total:,} entries over {STORES:,} stores")
        with servers.migrated_database(tier, "lottery") as settings:
            measured = asyncio.run(_measure_draw(settings, total))
        progress.print(f"[bold]{tier} tier[/bold]: {members:,} members enter over HTTP")
        # SQLite takes one writer at a time (BEGIN IMMEDIATE per request): a few connections keep it
        # busy without requests timing out on the lock.
        measured.update(_measure_intake(tier, members, connections if tier == "postgres" else EMBEDDED_CONNECTIONS))
        progress.print(f"  {measured['entries_per_s']:,} entries/s")
        figures.update({f"{tier}_{key}": value for key, value in measured.items()})
    primary = "postgres" if "postgres" in wanted else wanted[0]
    return {
        "entries": total,
        "stores": STORES,
        "bottles_per_store": BOTTLES_PER_STORE,
        "intake_members": members,
        "connections": {"postgres": connections, "embedded": EMBEDDED_CONNECTIONS},
        "tiers": wanted,
        "draw_seconds": figures.get(f"{primary}_draw_seconds"),
        "entries_per_s": figures.get(f"{primary}_entries_per_s"),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
