"""Print files: streaming CSV, optionally split into parts and zipped, read in primary-key ranges.

Two kinds, for the two printers of a line: `links` (GS1 Digital Link URI and serial, for the QR
printer) and `pins` (serial and hidden PIN, for the scratch-off printer only). Each chunk is read in
its own short transaction so that a ten-million-row download holds no transaction open.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from zhongtai.codes import rules
from zhongtai.codes.models import Code
from zhongtai.core.db import Database

READ_CHUNK = 50_000
KINDS = ("links", "pins")


@dataclass(frozen=True)
class ExportPlan:
    tenant_id: uuid.UUID
    batch_id: uuid.UUID
    batch_number: str
    first_id: int
    count: int
    kind: str
    gtin: str
    resolver_base: str
    scheme: str
    pin_key: bytes | None
    lot: str | None = None


def header(plan: ExportPlan) -> str:
    return "index,serial,pin\r\n" if plan.kind == "pins" else "index,uri,serial\r\n"


def _lines(plan: ExportPlan, rows: list[tuple[int, str]]) -> str:
    base = plan.first_id - 1
    if plan.kind == "pins":
        key = plan.pin_key
        assert key is not None
        pin = rules.pin_for
        return "".join(f"{code_id - base},{serial},{pin(key, serial)}\r\n" for code_id, serial in rows)
    if plan.scheme == "sscc":
        link_base = f"{plan.resolver_base}/00/"
        return "".join(f"{code_id - base},{link_base}{serial},{serial}\r\n" for code_id, serial in rows)
    prefix = rules.item_link(plan.resolver_base, plan.gtin, "", plan.lot)  # ends with /21/
    return "".join(f"{code_id - base},{prefix}{serial},{serial}\r\n" for code_id, serial in rows)


async def _chunks(database: Database, plan: ExportPlan) -> AsyncIterator[list[tuple[int, str]]]:
    start, end = plan.first_id, plan.first_id + plan.count
    while start < end:
        async with database.unit_of_work(tenant_id=plan.tenant_id) as session:
            rows = (
                await session.execute(
                    select(Code.id, Code.serial)
                    .where(Code.id >= start, Code.id < min(end, start + READ_CHUNK))
                    .order_by(Code.id)
                )
            ).all()
        if not rows:
            return
        yield [(int(code_id), str(serial)) for code_id, serial in rows]
        start = int(rows[-1][0]) + 1


async def stream_csv(database: Database, plan: ExportPlan) -> AsyncIterator[bytes]:
    yield header(plan).encode()
    async for rows in _chunks(database, plan):
        yield _lines(plan, rows).encode()


class _Sink(io.RawIOBase):
    """An unseekable file for zipfile: it collects what is written until the caller drains it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


async def stream_zip(database: Database, plan: ExportPlan, *, part_size: int) -> AsyncIterator[bytes]:
    """A zip of CSV parts of `part_size` rows each, produced as it is read."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    part, rows_in_part, entry = 0, 0, None
    try:
        async for rows in _chunks(database, plan):
            offset = 0
            while offset < len(rows):
                if entry is None:
                    part += 1
                    name = f"{plan.batch_number}-{plan.kind}-{part:04d}.csv"
                    entry = archive.open(zipfile.ZipInfo(name), mode="w", force_zip64=True)
                    entry.write(header(plan).encode())
                    rows_in_part = 0
                take = min(part_size - rows_in_part, len(rows) - offset)
                entry.write(_lines(plan, rows[offset : offset + take]).encode())
                offset += take
                rows_in_part += take
                if rows_in_part >= part_size:
                    entry.close()
                    entry = None
                yield sink.drain()
        if entry is not None:
            entry.close()
    finally:
        archive.close()
    yield sink.drain()
