"""Print files: streaming CSV, optionally split into parts and zipped, read in primary-key ranges.

Two kinds, for the two printers of a line: `links` (GS1 Digital Link URI and serial, for the QR
printer) and `pins` (serial and hidden PIN, for the scratch-off printer only). Each chunk is read in
its own short transaction so that a ten-million-row download holds no transaction open.
"""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes import rules
from zhongtai.codes.models import Code
from zhongtai.core.db import Database

READ_CHUNK = 50_000
KINDS = ("links", "pins")
_SHA256_BLOCK = 64
_FIRST_EIGHT_BYTES = struct.Struct(">Q")


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


def _pins(key: bytes, serials: Sequence[str]) -> Iterator[str]:
    """`rules.pin_for` of every serial, computed in a tight loop.

    HMAC-SHA256 as RFC 2104 defines it — H(K ^ opad || H(K ^ ipad || m)) — with the two keyed SHA-256
    states prepared once and copied per serial: a third of the cost of `hmac.digest`, which sets up
    the keyed states again for every message. tests/test_codes_export.py holds it equal to pin_for."""
    block = key if len(key) <= _SHA256_BLOCK else hashlib.sha256(key).digest()
    block = block.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy
    first_eight = _FIRST_EIGHT_BYTES.unpack_from
    modulus = 10**rules.PIN_DIGITS
    for serial in serials:
        digest = inner()
        digest.update(serial.encode("ascii"))
        mac = outer()
        mac.update(digest.digest())
        yield f"{first_eight(mac.digest())[0] % modulus:08d}"


def _link_prefix(plan: ExportPlan) -> str:
    """A `links` line is `{index},{prefix}{serial},{serial}`."""
    if plan.scheme == "sscc":
        return f"{plan.resolver_base}/00/"
    return rules.item_link(plan.resolver_base, plan.gtin, "", plan.lot)  # ends with /21/


def _lines(plan: ExportPlan, rows: Sequence[Sequence[Any]]) -> str:
    """The lines of (id, serial) rows in id order."""
    ids = [row[0] for row in rows]
    serials = [row[1] for row in rows]
    base = plan.first_id - 1
    if ids and ids[-1] - ids[0] == len(ids) - 1:  # ids are unique and ordered: a contiguous range
        indices: Iterable[int] = range(ids[0] - base, ids[-1] - base + 1)
    else:
        indices = [code_id - base for code_id in ids]
    if plan.kind == "pins":
        key = plan.pin_key
        assert key is not None
        return "".join(
            f"{index},{serial},{pin}\r\n"
            for index, serial, pin in zip(indices, serials, _pins(key, serials), strict=True)
        )
    prefix = _link_prefix(plan)
    return "".join(f"{index},{prefix}{serial},{serial}\r\n" for index, serial in zip(indices, serials, strict=True))


_TABLE = Code.__tablename__
_RANGE = "tenant_id = ? AND id >= ? AND id < ? ORDER BY id"
_SELECT_ROWS = f"SELECT id, serial FROM {_TABLE} WHERE {_RANGE}"  # noqa: S608
# The line `_lines` builds for `links`, put together by the database: (id - base), prefix, end of line.
_LINK_LINE = "(id - ?) || ',' || ? || serial || ',' || serial"
_SELECT_LINK_LINES = f"SELECT {_LINK_LINE} || ? FROM {_TABLE} WHERE {_RANGE}"  # noqa: S608
_COPY_LINK_LINES = f"SELECT {_LINK_LINE} FROM {_TABLE} WHERE {_RANGE}"  # noqa: S608
# Characters that COPY's text format would escape; links never hold them, but a prefix could.
_COPY_ESCAPED = ("\\", "\t", "\r", "\n")


async def _driver(session: AsyncSession) -> tuple[str, Any]:
    """The dialect's name and the driver's own connection, in the session's transaction."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None, "a checked-out connection has a driver connection"
    return connection.dialect.name, raw


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1`, `$2`, …"""
    head, *rest = sql.split("?")
    return head + "".join(f"${n}{part}" for n, part in enumerate(rest, start=1))


async def _fetch(session: AsyncSession, sql: str, *params: Any) -> Sequence[Sequence[Any]]:
    """Rows of `sql` (`?` placeholders) straight from the driver.

    SQLAlchemy's Row objects cost more per code than the rest of an export together. These queries
    name the tenant themselves, as the tenancy guard would."""
    dialect, raw = await _driver(session)
    if dialect == "postgresql":
        rows: Sequence[Sequence[Any]] = await raw.fetch(_numbered(sql), *params)
        return rows
    # SQLite stores UUIDs as 32 hex characters (SQLAlchemy's Uuid type).
    sqlite_rows: Sequence[Sequence[Any]] = await raw.execute_fetchall(
        sql, [param.hex if isinstance(param, uuid.UUID) else param for param in params]
    )
    return sqlite_rows


_T = TypeVar("_T")


async def _ranges(
    database: Database, plan: ExportPlan, read: Callable[[AsyncSession, int, int], Awaitable[_T | None]]
) -> AsyncIterator[_T]:
    """What `read` makes of the plan's codes start ≤ id < stop, READ_CHUNK ids at a time, each range
    in its own short transaction; stops at the first empty range (`read` returns None)."""
    start, end = plan.first_id, plan.first_id + plan.count
    while start < end:
        stop = min(end, start + READ_CHUNK)
        async with database.unit_of_work(tenant_id=plan.tenant_id) as session:
            chunk = await read(session, start, stop)
        if chunk is None:
            return
        yield chunk
        start = stop


def _chunks(database: Database, plan: ExportPlan) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """(id, serial) rows of the plan's codes, in id order."""

    async def read(session: AsyncSession, start: int, stop: int) -> Sequence[Sequence[Any]] | None:
        return await _fetch(session, _SELECT_ROWS, plan.tenant_id, start, stop) or None

    return _ranges(database, plan, read)


def _link_chunks(database: Database, plan: ExportPlan) -> AsyncIterator[bytes]:
    """The `links` lines of the plan's codes, encoded, written by the database: no per-code Python work."""
    base, prefix = plan.first_id - 1, _link_prefix(plan)
    use_copy = not any(char in prefix for char in _COPY_ESCAPED)

    async def read(session: AsyncSession, start: int, stop: int) -> bytes | None:
        dialect, raw = await _driver(session)
        if dialect == "postgresql" and use_copy:
            # COPY … TO STDOUT sends the lines as they are (text format, one column, newline-ended):
            # half the cost of fetching them as rows.
            parts: list[bytes] = []

            async def collect(data: bytes) -> None:
                parts.append(data)

            await raw.copy_from_query(
                _numbered(_COPY_LINK_LINES), base, prefix, plan.tenant_id, start, stop, output=collect
            )
            return b"".join(parts).replace(b"\n", b"\r\n") or None
        rows = await _fetch(session, _SELECT_LINK_LINES, base, prefix, "\r\n", plan.tenant_id, start, stop)
        return "".join([row[0] for row in rows]).encode() if rows else None

    return _ranges(database, plan, read)


async def stream_csv(database: Database, plan: ExportPlan) -> AsyncIterator[bytes]:
    yield header(plan).encode()
    if plan.kind == "links":
        async for data in _link_chunks(database, plan):
            yield data
        return
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
