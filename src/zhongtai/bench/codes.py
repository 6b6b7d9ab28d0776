"""`zhongtai bench codes`: generating, persisting and exporting an item batch of N codes, per tier.

Per tier (embedded: SQLite in a temporary data dir; postgres: a temporary PostgreSQL database when it
answers) the benchmark

1. inserts N rows of the `codes` table's shape (id, tenant_id, 16-character serial, level, state;
   serials the encrypted ids, as generation makes them) into a fresh, migrated
   database through the bulk path generation uses (binary COPY through asyncpg, with the payload
   built by `generation.copy_payload`; `executemany` on the raw aiosqlite connection with the same
   page cache), in chunks of the same size, each committed — the **raw insert baseline**. Each
   chunk's rows are built before its clock starts, so only the database's work is timed;
2. in a second fresh database creates a tenant and a product, requests an item batch of N codes and
   times `generation.generate_batch` — serials, rows, the bulk insert and the batch's progress, per
   chunk — and the peak resident memory of the process meanwhile;
3. streams the batch as the `links` and the `pins` print files through `export.stream_csv` into a
   sink that counts bytes and rows.

N is `codes` (`zhongtai bench codes --codes N`), else ZT_BENCH_CODES, else 10,000,000.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import func, select
from stdnum import ean

from zhongtai.bench import servers
from zhongtai.bench.registry import benchmark
from zhongtai.catalog import rules as catalog_rules
from zhongtai.catalog import service as catalog_service
from zhongtai.catalog.models import Product
from zhongtai.codes import export, generation, serials
from zhongtai.codes import service as codes_service
from zhongtai.codes.models import GENERATED, ITEM, Code, CodeBatch
from zhongtai.core import accounts
from zhongtai.core.crypto import Crypto
from zhongtai.core.db import Database
from zhongtai.core.settings import Settings

TIERS = ("embedded", "postgres")
DEFAULT_CODES = 10_000_000
MIB = 1024 * 1024

progress = Console(stderr=True, soft_wrap=True)


def codes_from_env() -> int:
    value = os.environ.get("ZT_BENCH_CODES", "").replace("_", "").replace(",", "")
    return int(value) if value else DEFAULT_CODES


# Memory.


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux ≥ 4.0); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    """VmHWM (since the last reset) or, without /proc, the process's lifetime peak from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Databases.


# Raw insert baseline.


async def _raw_insert(settings: Settings, quantity: int, chunk_size: int) -> float:
    """Seconds spent inserting and committing `quantity` rows, chunk by chunk, through the bulk path
    generation uses (binary COPY on PostgreSQL, executemany on SQLite); building rows is not timed."""
    database = Database(settings)
    tenant_id = uuid.uuid4()  # codes.tenant_id carries no foreign key
    is_sqlite = database.dialect == "sqlite"
    columns = list(generation.COLUMNS)
    statement = f"INSERT INTO {Code.__tablename__} ({', '.join(columns)}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608
    ring = serials.keyring_for(settings.secrets.pii_keys)
    version = ring.current_version
    assert version is not None, "bench settings have a PII key"
    elapsed, done = 0.0, 0
    try:
        while done < quantity:
            count = min(chunk_size, quantity - done)
            first = done + 1
            made = ring.serials(version, first, count)
            if is_sqlite:
                text = made.decode("ascii")
                rows = [(first + i, tenant_id.hex, text[16 * i : 16 * i + 16], ITEM, GENERATED) for i in range(count)]
            else:
                payload = memoryview(generation.copy_payload(tenant_id, first, made, ITEM))
            started = time.perf_counter()
            async with database.unit_of_work(tenant_id=tenant_id) as session:
                connection = await session.connection()
                raw = (await connection.get_raw_connection()).driver_connection
                assert raw is not None, "a checked-out connection has a driver connection"
                if is_sqlite:
                    await raw.execute(f"PRAGMA cache_size=-{generation.SQLITE_BULK_CACHE_KIB}")
                    await raw.executemany(statement, rows)
                else:
                    await raw.copy_to_table(Code.__tablename__, source=payload, columns=columns, format="binary")
            elapsed += time.perf_counter() - started
            done += count
            _report_progress("raw insert", done, quantity)
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            stored = await session.scalar(select(func.count()).select_from(Code))
        if stored != quantity:
            raise RuntimeError(f"raw insert stored {stored} rows, expected {quantity}")
    finally:
        await database.dispose()
    return elapsed


# Generation and export.


async def _request_batch(database: Database, crypto: Crypto, settings: Settings, quantity: int) -> CodeBatch:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work(all_tenants=True) as session:
        tenant, _owner = await accounts.do_create_tenant(
            session,
            slug=slug,
            name="Bench brand",
            owner_email=f"owner@{slug}.example",
            owner_password=uuid.uuid4().hex,
        )
    actor = servers.bench_actor(tenant.id)
    body = "690123456789"
    async with database.unit_of_work(tenant_id=tenant.id) as session:
        product = await catalog_service.do_create_product(
            session, actor, catalog_rules.ProductDraft(gtin=body + ean.calc_check_digit(body), name="Bench bottle")
        )
        batch, _created = await codes_service.do_request_batch(
            session,
            crypto,
            actor,
            codes_service.BatchRequest(product_id=product.id, level="item", quantity=quantity),
            public_url=settings.public_url,
        )
    return batch


async def _generate(database: Database, batch: CodeBatch, chunk_size: int) -> dict[str, Any]:
    exact_peak = _reset_peak_rss()
    started = time.perf_counter()
    await generation.generate_batch(
        database,
        batch.tenant_id,
        batch.id,
        chunk_size=chunk_size,
        on_progress=lambda done: _report_progress("generate", done, batch.quantity),
    )
    seconds = time.perf_counter() - started
    peak = _peak_rss_mib()
    async with database.unit_of_work(tenant_id=batch.tenant_id) as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(Code)
            .where(Code.id >= batch.first_code_id, Code.id < batch.first_code_id + batch.quantity)
        )
        generated = await session.scalar(select(CodeBatch.generated_count).where(CodeBatch.id == batch.id))
    return {
        "seconds": seconds,
        "stored": int(stored or 0),
        "generated_count": int(generated or 0),
        "peak_rss_mib": peak,
        "peak_rss_since": "generation start" if exact_peak else "process start",
    }


async def _export(database: Database, plan: export.ExportPlan) -> tuple[float, int, int]:
    """Stream the print file into a counting sink; returns (seconds, data rows, bytes)."""
    size = newlines = 0
    started = time.perf_counter()
    async for part in export.stream_csv(database, plan):
        size += len(part)
        newlines += part.count(b"\n")
    return time.perf_counter() - started, newlines - 1, size


async def _generate_and_export(settings: Settings, quantity: int, chunk_size: int) -> dict[str, Any]:
    database = Database(settings)
    crypto = Crypto(settings.secrets)
    try:
        batch = await _request_batch(database, crypto, settings, quantity)
        figures = await _generate(database, batch, chunk_size)
        async with database.unit_of_work(tenant_id=batch.tenant_id) as session:
            assert batch.pin_key_version is not None, "item batches carry a PIN key version"
            key = await codes_service.pin_key(session, crypto, batch.pin_key_version)
            gtin = await session.scalar(select(Product.gtin).where(Product.id == batch.product_id))
        for kind in export.KINDS:
            plan = export.ExportPlan(
                tenant_id=batch.tenant_id,
                batch_id=batch.id,
                batch_number=batch.number,
                first_id=batch.first_code_id,
                count=batch.quantity,
                kind=kind,
                gtin=str(gtin),
                resolver_base=batch.resolver_base,
                scheme=batch.scheme,
                pin_key=key if kind == "pins" else None,
            )
            progress.print(f"  export {kind} …")
            figures[f"export_{kind}"] = await _export(database, plan)
    finally:
        await database.dispose()
    return figures


def _report_progress(label: str, done: int, total: int) -> None:
    step = max(total // 10, 1)
    if done == total or done // step != (done - 1) // step:
        progress.print(f"  {label:10} {done:>12,} / {total:,}")


# The benchmark.


def _run_tier(tier: str, quantity: int, chunk_size: int) -> dict[str, Any]:
    progress.print(f"[bold]{tier} tier[/bold]: raw insert baseline of {quantity:,} rows")
    with servers.migrated_database(tier, "codes") as settings:
        raw_seconds = asyncio.run(_raw_insert(settings, quantity, chunk_size))
    progress.print(f"  raw insert: {quantity / raw_seconds:,.0f} rows/s ({raw_seconds:.1f} s)")
    progress.print(f"[bold]{tier} tier[/bold]: generating an item batch of {quantity:,} codes")
    with servers.migrated_database(tier, "codes") as settings:
        result = asyncio.run(_generate_and_export(settings, quantity, chunk_size))
    if result["stored"] != quantity or result["generated_count"] != quantity:
        raise RuntimeError(
            f"{tier}: generated {result['generated_count']}, stored {result['stored']}, expected {quantity}"
        )
    generate_rate = quantity / result["seconds"]
    raw_rate = quantity / raw_seconds
    figures: dict[str, Any] = {
        f"{tier}_generate_codes_per_s": round(generate_rate),
        f"{tier}_generate_seconds": round(result["seconds"], 2),
        f"{tier}_generated_codes": result["stored"],
        f"{tier}_raw_insert_rows_per_s": round(raw_rate),
        f"{tier}_raw_insert_seconds": round(raw_seconds, 2),
        f"{tier}_generate_ratio_to_raw_insert": round(generate_rate / raw_rate, 3),
        f"{tier}_peak_rss_mib": round(result["peak_rss_mib"], 1),
        f"{tier}_peak_rss_since": result["peak_rss_since"],
    }
    progress.print(
        f"  generate: {generate_rate:,.0f} codes/s ({result['seconds']:.1f} s), "
        f"{generate_rate / raw_rate:.2f} of raw insert, peak RSS {result['peak_rss_mib']:.0f} MiB"
    )
    for kind in export.KINDS:
        seconds, rows, size = result[f"export_{kind}"]
        infix = "" if kind == "links" else "_pins"
        figures.update(
            {
                f"{tier}_export{infix}_rows_per_s": round(rows / seconds),
                f"{tier}_export{infix}_seconds": round(seconds, 2),
                f"{tier}_export{infix}_rows": rows,
                f"{tier}_export{infix}_bytes": size,
            }
        )
        progress.print(f"  export {kind}: {rows / seconds:,.0f} rows/s ({seconds:.1f} s, {size / MIB:,.0f} MiB)")
    return figures


@benchmark("codes", "generate, persist and export an item batch of N codes per tier, vs the raw bulk-insert rate")
def run_codes_benchmark(
    codes: int | None = None,
    *,
    tiers: Sequence[str] | None = None,
    chunk_size: int | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    """Measure every tier that can run here (or `tiers`). `--seconds`/`--connections` do not apply."""
    quantity = codes if codes is not None else codes_from_env()
    if not 1 <= quantity <= codes_service.MAX_BATCH_QUANTITY:
        raise ValueError(f"codes must be 1 to {codes_service.MAX_BATCH_QUANTITY:,}")
    chunk = chunk_size or generation.CHUNK_SIZE
    wanted = list(tiers) if tiers is not None else list(TIERS)
    skipped: dict[str, str] = {}
    if "postgres" in wanted and not servers.postgres_answers():
        wanted.remove("postgres")
        skipped["postgres"] = "PostgreSQL does not answer"
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL does not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for tier in wanted:
        figures.update(_run_tier(tier, quantity, chunk))
    return {
        "codes": quantity,
        "chunk_size": chunk,
        "tiers": wanted,
        **({"skipped_tiers": skipped} if skipped else {}),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
