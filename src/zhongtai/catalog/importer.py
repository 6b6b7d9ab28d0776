"""Master-data import: products from a CSV or XLSX file exported by an ERP.

Every row is checked with the catalog rules and reported as (row, column, message); the header is
row 1. In `all` mode nothing is written when any row has a problem; in `valid_rows` mode the valid
rows are written and the others reported. Rows are matched by GTIN, so importing a file again
updates the products instead of duplicating them.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import rules, service
from zhongtai.catalog.errors import ImportTooLarge, ImportUnreadable
from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.principals import Principal

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
MAX_REPORTED_ERRORS = 1_000

# Accepted column headers (case and surrounding spaces ignored), English first, then the names that
# Chinese ERP exports commonly use.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "gtin": ("gtin", "ean", "barcode", "条码", "商品条码", "条形码"),
    "name": ("name", "product name", "名称", "商品名称", "品名"),
    "specification": ("specification", "spec", "规格", "规格型号"),
    "category": ("category", "类目", "分类", "品类"),
    "price": ("price", "价格", "单价", "零售价"),
    "image_urls": ("image_urls", "images", "图片", "图片链接"),
    "items_per_case": ("items_per_case", "case quantity", "箱规", "每箱数量"),
    "cases_per_pallet": ("cases_per_pallet", "pallet quantity", "每托箱数"),
}
REQUIRED_COLUMNS = ("gtin", "name")
_ALIAS_TO_FIELD = {alias: name for name, aliases in COLUMN_ALIASES.items() for alias in aliases}


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


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves CSV as GB18030/GBK
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportUnreadable("The CSV file is neither UTF-8 nor GB18030 text.")


def _csv_rows(content: bytes) -> Iterator[Sequence[object]]:
    text = _decode(content)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        for row in csv.reader(io.StringIO(text, newline=""), dialect):
            yield [cell.strip() for cell in row]
    except csv.Error as exc:
        raise ImportUnreadable(f"The CSV file cannot be read: {exc}.") from exc


def _xlsx_rows(content: bytes) -> Iterator[Sequence[object]]:
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
    return kind, _xlsx_rows(content) if kind == "xlsx" else _csv_rows(content)


# Checking the rows.


def _header(cells: list[str]) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Field → column index, field → column name as in the file, and the ignored columns."""
    positions: dict[str, int] = {}
    names: dict[str, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = _ALIAS_TO_FIELD.get(cell.strip().lower())
        if name is None or name in positions:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        positions[name] = index
        names[name] = cell.strip()
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        raise ImportUnreadable(
            f"The first row must name the columns; missing: {', '.join(missing)}.", missing_columns=missing
        )
    return positions, names, ignored


def _gtin_text(value: object) -> str:
    """A spreadsheet stores a GTIN typed as a number without its leading zeros; put them back up to
    the next GTIN length (zeros on the left never change the check digit)."""
    text = cell_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and text.isdigit():
        if len(text) < 8:
            return text.zfill(8)
        if len(text) < 12:
            return text.zfill(12)
    return text


def _parse_row(
    row_number: int, cells: Sequence[object], positions: dict[str, int], names: dict[str, str]
) -> tuple[rules.ProductDraft, list[RowError]]:
    def cell(name: str) -> str:
        index = positions.get(name)
        if index is None or index >= len(cells):
            return ""
        return _gtin_text(cells[index]) if name == "gtin" else cell_text(cells[index])

    errors: list[RowError] = []

    def whole(name: str) -> int | None:
        text = cell(name)
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            errors.append(RowError(row_number, names[name], "Not a whole number: '{value}'.", {"value": text}))
            return None

    price: Decimal | None = None
    if price_text := cell("price").replace("¥", "").replace("￥", "").replace(",", "").strip():
        try:
            price = Decimal(price_text)
        except InvalidOperation:
            errors.append(RowError(row_number, names["price"], "Not a price: '{value}'.", {"value": price_text}))
    images = [part for part in cell("image_urls").replace(";", "|").replace("\n", "|").split("|") if part.strip()]
    draft = rules.ProductDraft(
        gtin=cell("gtin"),
        name=cell("name"),
        specification=cell("specification"),
        category=cell("category"),
        image_urls=images,
        price=price,
        items_per_case=whole("items_per_case"),
        cases_per_pallet=whole("cases_per_pallet"),
    )
    return draft, errors


def check_rows(rows: Iterator[Sequence[object]], result: ImportResult) -> list[rules.ProductFields]:
    """Check every row; fills `result` with counts and problems and returns the valid rows' fields."""
    first = next(rows, None)
    header = [cell_text(cell) for cell in first or []]
    if not any(header):
        raise ImportUnreadable("The file is empty; the first row must name the columns.")
    positions, names, result.ignored_columns = _header(header)
    valid: list[rules.ProductFields] = []
    first_row_of: dict[str, int] = {}
    for row_number, cells in enumerate(rows, start=2):
        if not any(cell_text(cell) for cell in cells):
            continue
        result.rows += 1
        if result.rows > MAX_ROWS:
            raise ImportTooLarge(f"The file has more than {MAX_ROWS:,} rows; split it into smaller files.")
        draft, errors = _parse_row(row_number, cells, positions, names)
        if any(cell_text(cell) for cell in cells[len(header) :]):
            # Usually an unquoted comma inside a value (a price like 1,200.00): the row shifted.
            errors.insert(
                0,
                RowError(
                    row_number,
                    "",
                    "This row has {cells} cells but the first row names {columns} columns.",
                    {"cells": len(cells), "columns": len(header)},
                ),
            )
        fields, problems = rules.check_product(draft)
        unparsed = {error.column for error in errors}
        errors.extend(
            RowError(row_number, names.get(p.field, p.field), p.template, p.values)
            for p in problems
            if names.get(p.field, p.field) not in unparsed
        )
        if errors:
            fields = None
        if fields is not None:
            earlier = first_row_of.setdefault(fields.gtin, row_number)
            if earlier != row_number:
                errors.append(
                    RowError(
                        row_number,
                        names["gtin"],
                        "GTIN {gtin} is also on row {row}.",
                        {"gtin": fields.gtin, "row": earlier},
                    )
                )
                fields = None
        if fields is None:
            result.errors.extend(errors)
            continue
        result.valid_rows += 1
        valid.append(fields)
    return valid


async def do_import_products(
    session: AsyncSession,
    actor: Principal,
    *,
    filename: str,
    content: bytes,
    mode: ImportMode,
    dry_run: bool = False,
    origin: RequestOrigin | None = None,
) -> ImportResult:
    kind, rows = read_rows(filename, content)
    result = ImportResult(file_format=kind, mode=mode)
    valid = check_rows(rows, result)
    if dry_run or not valid or (result.errors and mode is ImportMode.ALL):
        return result
    outcomes = await service.do_upsert_products(session, valid)
    result.created, result.updated, result.unchanged = outcomes["created"], outcomes["updated"], outcomes["unchanged"]
    result.imported = True
    await audit.record(
        session,
        actor,
        "catalog.import",
        target_type="import",
        target_id=filename[:80] or None,
        data={
            "filename": filename[:200],
            "format": kind,
            "mode": str(mode),
            "rows": result.rows,
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "skipped_rows": result.invalid_rows,
        },
        origin=origin,
    )
    return result
