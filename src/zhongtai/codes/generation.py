"""Generating the codes of a batch: chunks of fresh serials (or SSCCs) written with the database's
bulk path, each chunk committed together with the batch's progress.

A chunk's transaction advances `generated_count` only from the value it read, so a crashed or
duplicated run resumes where the last committed chunk ended and two runs never write the same
chunk. A chunk whose random serials collide with existing ones (probability ~n²/2^81) is retried with
new ones.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from collections.abc import Callable
from itertools import repeat

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes import rules, service
from zhongtai.codes.models import (
    BATCH_GENERATED,
    BATCH_GENERATING,
    BATCH_VOIDED,
    GENERATED,
    Code,
    CodeBatch,
    CodeSettings,
)
from zhongtai.codes.service import GENERATE_TOPIC
from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.db import Database

log = logging.getLogger("zhongtai.codes")

CHUNK_SIZE = 100_000
MAX_COLLISION_RETRIES = 3
COLUMNS = ("id", "tenant_id", "serial", "level", "state")
# The unique index on serials is the bulk path's cost: a larger page cache for the generating
# connection keeps more of it in memory (SQLite's default is 2 MiB).
SQLITE_BULK_CACHE_KIB = 262_144


class ChunkRaced(Exception):
    """Another run committed this chunk first."""


# PostgreSQL's binary COPY format (see the COPY documentation): signature, flags, header extension.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# One row: field count, then length-prefixed id (int8), tenant_id (uuid), serial, level, state (int2).
_ID_OFFSET = 2 + 4
_SERIAL_OFFSET = _ID_OFFSET + 8 + 4 + 16 + 4
_ROW_SIZE = _SERIAL_OFFSET + rules.SERIAL_LENGTH + 4 + 2 + 4 + 2


def copy_payload(tenant_id: uuid.UUID, first_id: int, serials: list[str], level: int) -> bytes:
    """The rows of a chunk of item serials in binary COPY format, built column by column in C.

    Rows differ only in id and serial: a template row is repeated, then each byte position of the ids
    and of the serials is written with one strided slice assignment (24 in all, instead of encoding
    every row's five values one by one)."""
    count = len(serials)
    template = b"".join(
        (
            struct.pack(">hi", len(COLUMNS), 8),
            bytes(8),
            struct.pack(">i", 16),
            tenant_id.bytes,
            struct.pack(">i", rules.SERIAL_LENGTH),
            bytes(rules.SERIAL_LENGTH),
            struct.pack(">ihih", 2, level, 2, GENERATED),
        )
    )
    rows = bytearray(template * count)
    ids = struct.pack(f">{count}q", *range(first_id, first_id + count))
    for k in range(8):
        rows[_ID_OFFSET + k :: _ROW_SIZE] = ids[k::8]
    text = "".join(serials).encode("ascii")
    if len(text) != count * rules.SERIAL_LENGTH:
        raise ValueError("binary COPY rows hold serials of exactly SERIAL_LENGTH ASCII characters")
    for k in range(rules.SERIAL_LENGTH):
        rows[_SERIAL_OFFSET + k :: _ROW_SIZE] = text[k :: rules.SERIAL_LENGTH]
    return b"".join((_COPY_HEADER, rows, _COPY_TRAILER))


async def _insert_rows(
    session: AsyncSession, tenant_id: uuid.UUID, first_id: int, values: list[str], *, level: int, scheme: str
) -> None:
    """Insert codes first_id, first_id + 1, … with `values` as serials, through the driver's bulk path."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None, "a checked-out connection has a driver connection"
    count = len(values)
    if connection.dialect.name == "postgresql":
        if scheme == "serial":
            payload = copy_payload(tenant_id, first_id, values, level)
            # A memoryview: asyncpg would take bytes for a file name.
            await raw.copy_to_table(
                Code.__tablename__, source=memoryview(payload), columns=list(COLUMNS), format="binary"
            )
        else:  # SSCCs (cases and pallets, far fewer): asyncpg encodes the records
            records = zip(
                range(first_id, first_id + count), repeat(tenant_id), values, repeat(level), repeat(GENERATED)
            )
            await raw.copy_records_to_table(Code.__tablename__, records=list(records), columns=list(COLUMNS))
        return
    # SQLite stores UUIDs as 32 hex characters (SQLAlchemy's Uuid type); same transaction, raw driver.
    await raw.execute(f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_KIB}")
    await raw.executemany(
        f"INSERT INTO {Code.__tablename__} ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
        zip(range(first_id, first_id + count), repeat(tenant_id.hex), values, repeat(level), repeat(GENERATED)),
    )


def _sorted_serials(count: int) -> list[str]:
    # Sorted within the chunk, the serials enter the unique index in order: far fewer page splits
    # and cache misses. The gap between neighbours stays ~2^80/chunk, unguessable.
    return sorted(rules.new_serials(count))


class _SerialsAhead:
    """Fresh sorted serials for the next chunk, made in a worker thread while this chunk is written.

    PostgreSQL does the COPY in its own process while the event loop waits, so the serials of the
    next chunk cost no time of their own — and no time under the chunk's locks. Not on SQLite: its
    insert runs in aiosqlite's thread and takes the GIL for every row, so Python work in a third
    thread cannot overlap it, only contend with it. Serials made ahead are used once, by the chunk
    they were made for (a retried chunk takes them too: they are as fresh as new ones), or thrown
    away."""

    def __init__(self) -> None:
        self._ahead: tuple[int, asyncio.Task[list[str]]] | None = None

    async def take(self, count: int) -> list[str]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            if ahead[0] == count:
                return await ahead[1]
            ahead[1].cancel()
        return _sorted_serials(count)

    def prepare(self, count: int) -> None:
        self.discard()
        self._ahead = (count, asyncio.create_task(asyncio.to_thread(_sorted_serials, count)))

    def discard(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None


async def _write_chunk(
    database: Database, tenant_id: uuid.UUID, batch_id: uuid.UUID, chunk_size: int, serials: _SerialsAhead
) -> int | None:
    """Write the next chunk; returns the new generated count, or None when the batch is complete."""
    async with database.unit_of_work(tenant_id=tenant_id) as session:
        # The row lock makes a second run of the same batch wait for this chunk and then continue
        # after it (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises the transactions).
        batch = await session.scalar(select(CodeBatch).where(CodeBatch.id == batch_id).with_for_update())
        if batch is None or batch.status in (BATCH_VOIDED, BATCH_GENERATED):
            return None
        done = batch.generated_count
        if done >= batch.quantity:
            return None
        count = min(chunk_size, batch.quantity - done)
        first_id = batch.first_code_id + done
        if batch.scheme == "sscc":
            code_settings = await session.scalar(select(CodeSettings))
            assert code_settings is not None, "SSCC batches are only requested with code settings"
            assert code_settings.gs1_company_prefix, "SSCC batches are only requested with a company prefix"
            reference = int(batch.first_sscc_reference or 0) + done
            values = [
                rules.sscc(code_settings.sscc_extension_digit, code_settings.gs1_company_prefix, reference + i)
                for i in range(count)
            ]
        else:
            values = await serials.take(count)
            if done + count < batch.quantity and database.dialect == "postgresql":
                serials.prepare(min(chunk_size, batch.quantity - done - count))
        await _insert_rows(session, tenant_id, first_id, values, level=batch.level, scheme=batch.scheme)
        finished = done + count >= batch.quantity
        advanced = await session.execute(
            update(CodeBatch)
            .where(CodeBatch.id == batch_id, CodeBatch.generated_count == done)
            .values(
                generated_count=done + count,
                status=BATCH_GENERATED if finished else BATCH_GENERATING,
                generated_at=utcnow() if finished else None,
            )
            .execution_options(synchronize_session=False)
        )
        if advanced.rowcount != 1:  # type: ignore[attr-defined]
            raise ChunkRaced()
        return done + count


async def generate_batch(
    database: Database,
    tenant_id: uuid.UUID,
    batch_id: uuid.UUID,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    serials = _SerialsAhead()
    try:
        await _write_chunks(database, tenant_id, batch_id, chunk_size, serials, on_progress)
    finally:
        serials.discard()


async def _write_chunks(
    database: Database,
    tenant_id: uuid.UUID,
    batch_id: uuid.UUID,
    chunk_size: int,
    serials: _SerialsAhead,
    on_progress: Callable[[int], None] | None,
) -> None:
    collisions = 0
    while True:
        try:
            progress = await _write_chunk(database, tenant_id, batch_id, chunk_size, serials)
        except ChunkRaced:
            continue
        except Exception as exc:
            # The raw bulk path raises the driver's own unique-violation error, not SQLAlchemy's.
            if not _is_unique_violation(exc) or collisions >= MAX_COLLISION_RETRIES:
                raise
            collisions += 1
            log.warning("serial collision in a chunk; retrying with new serials", extra={"batch_id": str(batch_id)})
            continue
        if progress is None:
            return
        if on_progress is not None:
            on_progress(progress)


def _is_unique_violation(exc: BaseException) -> bool:
    """A serial that already exists (not a primary-key clash, which would be a race on ids)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "unique" in text and "serial" in text


@jobs.job_handler(GENERATE_TOPIC)
async def generate_job(ctx: jobs.JobContext) -> None:
    if ctx.database is None:
        raise RuntimeError("code generation needs the worker's database")
    batch_id = uuid.UUID(ctx.payload["batch_id"])
    try:
        await generate_batch(ctx.database, ctx.tenant_id, batch_id)
    except Exception as exc:
        if ctx.is_last_attempt:
            async with ctx.database.unit_of_work(tenant_id=ctx.tenant_id) as session:
                await service.do_mark_failed(session, batch_id, f"{type(exc).__name__}: {exc}")
        raise
