"""Tabular imports: what every master-data import of the console and the API shares.

A file is CSV (UTF-8 or GB18030, as Excel on Chinese Windows saves it; the delimiter sniffed) or XLSX
(the first sheet), at most `MAX_BYTES` and `MAX_ROWS` rows. Every row is checked by the domain's rules
and reported as (row, column, English template, values), the header being row 1; at most
`MAX_REPORTED_ERRORS` are reported. In `ImportMode.ALL` nothing is written when any row has a problem;
in `VALID_ROWS` the valid rows are written and the others reported. Catalog products and channel
dealers and stores import through it.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from zhongtai.core.errors import AppError, ValidationFailed

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
MAX_REPORTED_ERRORS = 1_000


class ImportTooLarge(AppError):
    code = "import_too_large"
    status_code = 413


class ImportUnreadable(ValidationFailed):
    code = "import_unreadable"


class ImportHasErrors(ValidationFailed):
    """Some rows have errors and the operator asked for all or nothing: nothing was imported.
    `data` is the whole report."""

    code = "import_has_errors"


class ImportMode(StrEnum):
    ALL = "all"  # all or nothing
    VALID_ROWS = "valid_rows"


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    template: str
    values: Mapping[str, object] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.template.format(**self.values)


@dataclass
class ImportResult:
    file_format: str
    mode: ImportMode
    rows: int = 0
    valid_rows: int = 0
    imported: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def invalid_rows(self) -> int:
        return self.rows - self.valid_rows

    @property
    def reported_errors(self) -> list[RowError]:
        return self.errors[:MAX_REPORTED_ERRORS]


# Reading the file.


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets store long numbers such as GTINs as floats
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves CSV as GB18030/GBK
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportUnreadable("The CSV file is neither UTF-8 nor GB18030 text.")


def csv_rows(content: bytes) -> Iterator[Sequence[object]]:
    text = decode(content)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        for row in csv.reader(io.StringIO(text, newline=""), dialect):
            yield [cell.strip() for cell in row]
    except csv.Error as exc:
        raise ImportUnreadable(f"The CSV file cannot be read: {exc}.") from exc


def xlsx_rows(content: bytes) -> Iterator[Sequence[object]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ImportUnreadable("The XLSX file cannot be read; save it again from Excel or export CSV.") from exc
    try:
        sheet = workbook.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield list(values)
    finally:
        workbook.close()


def file_format(filename: str, content: bytes) -> str:
    if content.startswith(b"PK\x03\x04") or filename.lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


def read_rows(filename: str, content: bytes) -> tuple[str, Iterator[Sequence[object]]]:
    if len(content) > MAX_BYTES:
        raise ImportTooLarge(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it into smaller files.")
    kind = file_format(filename, content)
    return kind, xlsx_rows(content) if kind == "xlsx" else csv_rows(content)


# The header and the data rows.


def header_positions(
    cells: Sequence[str], columns: Mapping[str, Sequence[str]], required: Sequence[str]
) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """(field → column index, field → header as the file names it, ignored headers); headers compare
    without case. A missing required column refuses the whole file (`missing_columns` in `data`)."""
    aliases = {alias.lower(): name for name, names in columns.items() for alias in names}
    positions: dict[str, int] = {}
    labels: dict[str, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = aliases.get(cell.strip().lower())
        if name is None or name in positions:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        positions[name], labels[name] = index, cell.strip()
    missing = [column for column in required if column not in positions]
    if missing:
        raise ImportUnreadable(
            f"The first row must name the columns; missing: {', '.join(missing)}.", missing_columns=missing
        )
    return positions, labels, ignored


def table_rows(
    rows: Iterator[Sequence[object]],
    result: ImportResult,
    columns: Mapping[str, Sequence[str]],
    required: Sequence[str],
) -> tuple[dict[str, str], Iterator[tuple[int, dict[str, str]]]]:
    """The header's labels (field → header) and every non-empty data row as (row number, field → text);
    `result` counts the rows and gets the ignored columns. More than `MAX_ROWS` rows refuse the file."""
    first = next(rows, None)
    header = [cell_text(cell) for cell in first or []]
    if not any(header):
        raise ImportUnreadable("The file is empty; the first row must name the columns.")
    positions, labels, result.ignored_columns = header_positions(header, columns, required)

    def data() -> Iterator[tuple[int, dict[str, str]]]:
        for row_number, cells in enumerate(rows, start=2):
            if not any(cell_text(cell) for cell in cells):
                continue
            result.rows += 1
            if result.rows > MAX_ROWS:
                raise ImportTooLarge(f"The file has more than {MAX_ROWS:,} rows; split it into smaller files.")
            yield row_number, {name: cell_text(cells[i]) if i < len(cells) else "" for name, i in positions.items()}

    return labels, data()
