"""Import of dealers and stores from a CSV or XLSX file, with the kit's tabular import machinery
(`zhongtai.kit.tabular`, shared with catalog products): the same file reading (UTF-8 or GB18030
CSV, XLSX), limits, per-row report and modes.

Every row is checked with the channel rules and reported as (row, column, message); the header is
row 1. In `all` mode nothing is written when any row has a problem; in `valid_rows` mode the valid
rows are written and the others reported. Rows are matched by code, so importing a file again
updates the dealers or stores instead of duplicating them. Import dealers before their stores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel import rules, service
from zhongtai.channel.errors import InvalidFields
from zhongtai.channel.models import Dealer, Store
from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.crypto import Crypto
from zhongtai.core.principals import Principal
from zhongtai.kit import tabular
from zhongtai.kit.tabular import (
    MAX_ROWS,
    ImportMode,
    ImportResult,
    ImportTooLarge,
    ImportUnreadable,
    RowError,
    cell_text,
    read_rows,
)

DEALER_COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code", "dealer code", "编码", "经销商编码", "经销商代码"),
    "name": ("name", "dealer name", "名称", "经销商名称", "经销商"),
    "contact_name": ("contact_name", "contact", "联系人"),
    "phone": ("phone", "mobile", "电话", "手机", "联系电话"),
    "region_codes": ("region_codes", "regions", "区域编码", "行政区划代码", "经营区域"),
}
STORE_COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code", "store code", "编码", "门店编码", "门店代码"),
    "name": ("name", "store name", "名称", "门店名称", "门店"),
    "dealer_code": ("dealer_code", "dealer", "经销商编码", "经销商代码", "供货经销商"),
    "address": ("address", "地址", "门店地址"),
    "contact_name": ("contact_name", "contact", "联系人"),
    "phone": ("phone", "mobile", "电话", "手机", "联系电话"),
    "latitude": ("latitude", "lat", "纬度"),
    "longitude": ("longitude", "lon", "lng", "经度"),
}
REQUIRED = {"dealers": ("code", "name"), "stores": ("code", "name", "dealer_code")}


def _rows(
    rows: Iterator[Sequence[object]],
    result: ImportResult,
    columns: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
    present: set[str],
) -> Iterator[tuple[int, dict[str, str], dict[str, str]]]:
    """(row number, field → text, field → column label) of every non-empty row; `present` gets the
    fields the file has columns for."""
    first = next(rows, None)
    header = [cell_text(cell) for cell in first or []]
    if not any(header):
        raise ImportUnreadable("The file is empty; the first row must name the columns.")
    positions, labels, result.ignored_columns = tabular.header_positions(header, columns, required)
    present.update(positions)
    for row_number, cells in enumerate(rows, start=2):
        if not any(cell_text(cell) for cell in cells):
            continue
        result.rows += 1
        if result.rows > MAX_ROWS:
            raise ImportTooLarge(f"The file has more than {MAX_ROWS:,} rows; split it into smaller files.")
        values = {name: cell_text(cells[i]) if i < len(cells) else "" for name, i in positions.items()}
        yield row_number, values, labels


def _problems(row: int, labels: dict[str, str], error: InvalidFields) -> list[RowError]:
    return [RowError(row, labels.get(p.field, p.field), p.template, p.values) for p in error.problems]


def _number(text: str, name: str, row: int, labels: dict[str, str], errors: list[RowError]) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        errors.append(RowError(row, labels[name], "Not a number: '{value}'.", {"value": text}))
        return None


def _duplicate(code: str, row: int, seen: dict[str, int], labels: dict[str, str]) -> RowError | None:
    earlier = seen.setdefault(code, row)
    if earlier == row:
        return None
    return RowError(row, labels["code"], "Code {code} is also on row {row}.", {"code": code, "row": earlier})


def check_dealer_rows(
    rows: Iterator[Sequence[object]], result: ImportResult, present: set[str]
) -> list[dict[str, Any]]:
    valid: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row, values, labels in _rows(rows, result, DEALER_COLUMNS, REQUIRED["dealers"], present):
        codes = values.get("region_codes", "").replace("；", ";").replace("，", ",")
        draft = rules.DealerDraft(
            code=values["code"],
            name=values["name"],
            contact_name=values.get("contact_name", ""),
            phone=values.get("phone", ""),
            region_codes=[c for part in codes.replace(",", ";").replace("|", ";").split(";") for c in part.split()],
        )
        try:
            checked = service.check_dealer(draft)
        except InvalidFields as exc:
            result.errors.extend(_problems(row, labels, exc))
            continue
        if duplicate := _duplicate(checked["code"], row, seen, labels):
            result.errors.append(duplicate)
            continue
        result.valid_rows += 1
        valid.append(checked)
    return valid


async def check_store_rows(
    session: AsyncSession, rows: Iterator[Sequence[object]], result: ImportResult, present: set[str]
) -> list[tuple[dict[str, Any], Dealer]]:
    parsed = list(_rows(rows, result, STORE_COLUMNS, REQUIRED["stores"], present))
    dealer_codes = {values["dealer_code"].strip() for _row, values, _labels in parsed}
    ordered = sorted(dealer_codes)
    dealers: dict[str, Dealer] = {}
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        dealers.update((d.code, d) for d in await session.scalars(select(Dealer).where(Dealer.code.in_(chunk))))
    valid: list[tuple[dict[str, Any], Dealer]] = []
    seen: dict[str, int] = {}
    for row, values, labels in parsed:
        errors: list[RowError] = []
        latitude = _number(values.get("latitude", ""), "latitude", row, labels, errors)
        longitude = _number(values.get("longitude", ""), "longitude", row, labels, errors)
        draft = rules.StoreDraft(
            code=values["code"],
            name=values["name"],
            dealer_code=values["dealer_code"],
            address=values.get("address", ""),
            contact_name=values.get("contact_name", ""),
            phone=values.get("phone", ""),
            latitude=latitude,
            longitude=longitude,
        )
        checked: dict[str, Any] | None = None
        try:
            checked = service.check_store(draft)
        except InvalidFields as exc:
            errors.extend(e for e in _problems(row, labels, exc) if e.column not in {x.column for x in errors})
        dealer = dealers.get(draft.dealer_code.strip())
        if checked is not None and dealer is None:
            errors.append(
                RowError(row, labels["dealer_code"], "No dealer has the code {value}.", {"value": draft.dealer_code})
            )
        elif checked is not None and dealer is not None and dealer.is_archived:
            errors.append(
                RowError(
                    row,
                    labels["dealer_code"],
                    "Dealer {value} is archived; choose an active dealer.",
                    {"value": draft.dealer_code},
                )
            )
        if checked is not None and not errors and (duplicate := _duplicate(checked["code"], row, seen, labels)):
            errors.append(duplicate)
        if errors or checked is None or dealer is None:
            result.errors.extend(errors)
            continue
        result.valid_rows += 1
        valid.append((checked, dealer))
    return valid


# Model columns that a file field fills; an update leaves alone what the file has no column for.
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "region_codes": ("territory_region_codes",),
    "dealer_code": ("dealer_id",),
    "latitude": ("latitude", "longitude", "province_code", "city_code", "county_code"),
    "longitude": ("latitude", "longitude", "province_code", "city_code", "county_code"),
}


async def _upsert(
    session: AsyncSession,
    crypto: Crypto,
    model: type[Dealer] | type[Store],
    rows: list[tuple[dict[str, Any], dict[str, Any]]],
    present: set[str],
) -> dict[str, int]:
    """Create each row by code or update it in place (its status, its drawn territory and what the
    file has no column for are kept). `rows` holds the columns and the checked values."""
    updatable = {column for field in present for column in FIELD_COLUMNS.get(field, (field,))}
    codes = [columns["code"] for columns, _values in rows]
    found: list[Any] = []
    for start in range(0, len(codes), 500):
        chunk = codes[start : start + 500]
        if model is Dealer:
            found.extend(await session.scalars(select(Dealer).where(Dealer.code.in_(chunk))))
        else:
            found.extend(await session.scalars(select(Store).where(Store.code.in_(chunk))))
    existing = {row.code: row for row in found}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for columns, values in rows:
        current = existing.get(columns["code"])
        if current is None:
            row: Any = model(**columns)
            service.set_phone(row, crypto, values["phone"])
            session.add(row)
            counts["created"] += 1
            continue
        changed = {k: v for k, v in columns.items() if k in updatable and getattr(current, k) != v}
        phone_changed = "phone" in present and values["phone"] != service.phone_of(current, crypto)
        for name, value in changed.items():
            setattr(current, name, value)
        if phone_changed:
            service.set_phone(current, crypto, values["phone"])
        counts["updated" if changed or phone_changed else "unchanged"] += 1
    await session.flush()
    return counts


async def do_import(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    *,
    kind: str,
    filename: str,
    content: bytes,
    mode: ImportMode,
    dry_run: bool = False,
    origin: RequestOrigin | None = None,
) -> ImportResult:
    """Import `kind` ("dealers" or "stores") from a file."""
    file_format, rows = read_rows(filename, content)
    result = ImportResult(file_format=file_format, mode=mode)
    pairs: list[tuple[dict[str, Any], dict[str, Any]]]
    present: set[str] = set()
    if kind == "dealers":
        pairs = [(service.dealer_columns(values), values) for values in check_dealer_rows(rows, result, present)]
    else:
        checked = await check_store_rows(session, rows, result, present)
        pairs = [(service.store_columns(values, dealer), values) for values, dealer in checked]
    if dry_run or not pairs or (result.errors and mode is ImportMode.ALL):
        return result
    counts = await _upsert(session, crypto, Dealer if kind == "dealers" else Store, pairs, present)
    result.created, result.updated, result.unchanged = counts["created"], counts["updated"], counts["unchanged"]
    result.imported = True
    await audit.record(
        session,
        actor,
        f"channel.{kind}.import",
        target_type="import",
        target_id=filename[:80] or None,
        data={
            "filename": filename[:200],
            "format": file_format,
            "mode": str(mode),
            "rows": result.rows,
            **counts,
            "skipped_rows": result.invalid_rows,
        },
        origin=origin,
    )
    return result
