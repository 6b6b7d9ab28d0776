"""Generating the codes of a batch: chunks of fresh serials (or SSCCs) written with the database's
bulk path, each chunk committed together with the batch's progress.

A chunk's transaction advances `generated_count` only from the value it read, so a crashed or
duplicated run resumes where the last committed chunk ended and two runs never write the same
chunk. Item serials are the ids encrypted (`codes.serials`): rows go in in id order, into a table
whose only index on them is the primary key, and no two can collide.
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

from zhongtai.codes import rules, serials, service
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
COLUMNS = ("id", "tenant_id", "serial", "level", "state")
# A larger page cache for the generating connection (SQLite's default is 2 MiB).
SQLITE_BULK_CACHE_KIB = 65_536


class ChunkRaced(Exception):
    """Another run committed this chunk first."""


# PostgreSQL's binary COPY format (see the COPY documentation): signature, flags, header extension.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# One row: field count, then length-prefixed id (int8), tenant_id (uuid), serial, level, state (int2).
_ID_OFFSET = 2 + 4
_SERIAL_OFFSET = _ID_OFFSET + 8 + 4 + 16 + 4
_ROW_SIZE = _SERIAL_OFFSET + rules.SERIAL_LENGTH + 4 + 2 + 4 + 2


def copy_payload(tenant_id: uuid.UUID, first_id: int, serials: bytes, level: int) -> bytes:
    """The rows of a chunk of item serials (`serials`: 16 ASCII bytes each, concatenated) in binary
    COPY format, built column by column in C.

    Rows differ only in id and serial: a template row is repeated, then each byte position of the ids
    and of the serials is written with one strided slice assignment (24 in all, instead of encoding
    every row's five values one by one)."""
    count = len(serials) // rules.SERIAL_LENGTH
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
    if len(serials) != count * rules.SERIAL_LENGTH:
        raise ValueError("binary COPY rows hold serials of exactly SERIAL_LENGTH ASCII characters")
    for k in range(rules.SERIAL_LENGTH):
        rows[_SERIAL_OFFSET + k :: _ROW_SIZE] = serials[k :: rules.SERIAL_LENGTH]
    return b"".join((_COPY_HEADER, rows, _COPY_TRAILER))


async def _insert_rows(
    session: AsyncSession, tenant_id: uuid.UUID, first_id: int, values: list[str] | bytes, *, level: int
) -> None:
    """Insert codes first_id, first_id + 1, … through the driver's bulk path; `values` are the
    serials concatenated (bytes) or the SSCCs (a list)."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None, "a checked-out connection has a driver connection"
    values_list = serials.split(values) if isinstance(values, bytes) else values
    count = len(values_list)
    if connection.dialect.name == "postgresql":
        if isinstance(values, bytes):
            payload = copy_payload(tenant_id, first_id, values, level)
            # A memoryview: asyncpg would take bytes for a file name.
            await raw.copy_to_table(
                Code.__tablename__, source=memoryview(payload), columns=list(COLUMNS), format="binary"
            )
        else:  # SSCCs (cases and pallets, far fewer): asyncpg encodes the records
            records = zip(
                range(first_id, first_id + count), repeat(tenant_id), values_list, repeat(level), repeat(GENERATED)
            )
            await raw.copy_records_to_table(Code.__tablename__, records=list(records), columns=list(COLUMNS))
        return
    # SQLite stores UUIDs as 32 hex characters (SQLAlchemy's Uuid type); same transaction, raw driver.
    await raw.execute(f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_KIB}")
    await raw.executemany(
        f"INSERT INTO {Code.__tablename__} ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
        zip(range(first_id, first_id + count), repeat(tenant_id.hex), values_list, repeat(level), repeat(GENERATED)),
    )


class _SerialsAhead:
    """The serials of the next chunk, encrypted in a worker thread while this chunk is written.

    PostgreSQL does the COPY in its own process while the event loop waits, so the next chunk's
    serials cost no time of their own. Not on SQLite: its insert runs in aiosqlite's thread and
    holds the GIL for every row. A prepared chunk is used only for exactly the ids it was made for."""

    def __init__(self, ring: serials.SerialKeyRing, version: int) -> None:
        self._ring = ring
        self._version = version
        self._ahead: tuple[int, int, asyncio.Task[bytes]] | None = None

    async def take(self, first_id: int, count: int) -> bytes:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            if ahead[:2] == (first_id, count):
                return await ahead[2]
            ahead[2].cancel()
        return self._ring.serials(self._version, first_id, count)

    def prepare(self, first_id: int, count: int) -> None:
        self.discard()
        task = asyncio.create_task(asyncio.to_thread(self._ring.serials, self._version, first_id, count))
        self._ahead = (first_id, count, task)

    def discard(self) -> None:
        if self._ahead is not None:
            self._ahead[2].cancel()
            self._ahead = None


async def _write_chunk(
    database: Database, tenant_id: uuid.UUID, batch_id: uuid.UUID, chunk_size: int, ahead: list[_SerialsAhead]
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
            values: list[str] | bytes = [
                rules.sscc(code_settings.sscc_extension_digit, code_settings.gs1_company_prefix, reference + i)
                for i in range(count)
            ]
        else:
            ring = serials.keyring(session)
            if batch.serial_key_version is None:  # requested before serials were encrypted ids
                batch.serial_key_version = ring.current_version
            if not ahead:
                ahead.append(_SerialsAhead(ring, int(batch.serial_key_version or 0)))
            values = await ahead[0].take(first_id, count)
            if done + count < batch.quantity and database.dialect == "postgresql":
                ahead[0].prepare(first_id + count, min(chunk_size, batch.quantity - done - count))
        await _insert_rows(session, tenant_id, first_id, values, level=batch.level)
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
    ahead: list[_SerialsAhead] = []
    try:
        while True:
            try:
                progress = await _write_chunk(database, tenant_id, batch_id, chunk_size, ahead)
            except ChunkRaced:
                continue
            if progress is None:
                return
            if on_progress is not None:
                on_progress(progress)
    finally:
        for serials_ahead in ahead:
            serials_ahead.discard()


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
