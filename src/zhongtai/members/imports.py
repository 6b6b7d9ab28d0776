"""Member imports: marketplace members and orders (Tmall, JD, Douyin), POS orders and CRM members from
a CSV or XLSX file, matched into OneID, with the kit's tabular machinery (`zhongtai.kit.tabular`): the
same file reading, limits, per-row report and modes as catalog and channel imports.

Every row is checked by `import_layouts` first; in `all` mode nothing is written when any row has a
problem — including one found while linking (a cap, a refused merge), as all rows are written inside
one savepoint. Each row becomes a `oneid.do_link`; an order row also becomes a purchase touch (ref
`import:{layout}:{order no}`), which brings the member's spend facts up to date. Imported historical
orders earn no points unless the import says so (`earns_points`), and then only by the brand's active
purchase rule, once per order.

A file imported again changes nothing: each row is remembered by keyed hashes of its id and of its
values (`MemberImportRow`), so a row seen with the same values is reported unchanged without a link;
a member row with new values is linked again (updated); an order with new values is reported, as
corrections and refunds of orders are not imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import AppError, NotFound
from zhongtai.core.principals import Principal
from zhongtai.kit.tabular import ImportMode, ImportResult, RowError, read_rows, table_rows
from zhongtai.members import loyalty, oneid, points, touches
from zhongtai.members import loyalty_rules as lr
from zhongtai.members.import_layouts import LAYOUTS, CheckedRow, Layout, RowProblem, check_row
from zhongtai.members.import_models import MemberImport, MemberImportRow

ROW_PURPOSE = "member.import_row"
CHUNK = 500


@dataclass
class PlannedRow:
    """A valid row and what importing it means: `seen` is its earlier import, if any."""

    number: int
    row: CheckedRow
    row_key: str
    content_hash: str
    seen: MemberImportRow | None = None


class _Refused(Exception):
    """A row failed while writing in `all` mode: the savepoint of the whole file is rolled back."""


def layout_of(name: str) -> Layout:
    layout = LAYOUTS.get(name)
    if layout is None:
        raise NotFound(f"No import layout {name!r}; use one of: {', '.join(LAYOUTS)}.")
    return layout


def touch_ref(layout: Layout, order_no: str) -> str:
    return f"import:{layout.name}:{order_no}"


def _content(row: CheckedRow) -> str:
    """The row's checked values in a stable text, whatever the file format wrote them as."""
    values = {
        "identifiers": sorted(row.identifiers),
        "profile": {k: str(v) for k, v in sorted(row.profile.items())},
        "at": row.observed_at.isoformat() if row.observed_at else None,
        "amount_fen": row.amount_fen,
        "store": row.store_code,
    }
    return json.dumps(values, ensure_ascii=False, sort_keys=True)


def _check_rows(
    layout: Layout,
    crypto: Crypto,
    rows: Iterator[tuple[int, dict[str, str]]],
    labels: dict[str, str],
    result: ImportResult,
) -> list[PlannedRow]:
    planned: list[PlannedRow] = []
    seen_keys: dict[str, int] = {}
    for number, values in rows:
        try:
            row = check_row(layout, values)
        except RowProblem as problem:
            label = labels.get(problem.field_name, problem.field_name)
            result.errors.append(RowError(number, label, problem.template, problem.values))
            continue
        earlier = seen_keys.setdefault(row.key, number)
        if earlier != number:
            column = labels.get("order_no" if layout.is_order else "buyer_id", "")
            result.errors.append(RowError(number, column, "This row repeats row {row}.", {"row": earlier}))
            continue
        key = crypto.lookup_hash(f"{layout.name}\x00{row.key}", purpose=ROW_PURPOSE)
        content = crypto.lookup_hash(_content(row), purpose=ROW_PURPOSE)
        planned.append(PlannedRow(number, row, key, content))
    return planned


async def _attach_earlier(session: AsyncSession, layout: Layout, planned: list[PlannedRow]) -> None:
    by_key = {p.row_key: p for p in planned}
    keys = sorted(by_key)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found = await session.scalars(
            select(MemberImportRow).where(MemberImportRow.layout == layout.name, MemberImportRow.row_key.in_(chunk))
        )
        for earlier in found:
            by_key[earlier.row_key].seen = earlier


def _changed_orders(layout: Layout, planned: list[PlannedRow], labels: dict[str, str]) -> list[RowError]:
    """Orders imported before with other values: reported, as corrections of orders are not imported."""
    if not layout.is_order:
        return []
    return [
        RowError(
            p.number,
            labels.get("order_no", ""),
            "Order {order} was imported before with other values; corrections of orders are not imported.",
            {"order": p.row.order_no},
        )
        for p in planned
        if p.seen is not None and p.seen.content_hash != p.content_hash
    ]


async def _write_row(
    session: AsyncSession, actor: Principal, crypto: Crypto, layout: Layout, planned: PlannedRow, *, earns_points: bool
) -> str:
    """Link the row's member (and record its order); returns `created`, `updated` or `unchanged`."""
    row = planned.row
    linked = await oneid.do_link(
        session,
        actor,
        crypto,
        identifiers=[oneid.IdentifierInput(kind, value, verified) for kind, value, verified in row.identifiers],
        profile=oneid.ProfileInput(**row.profile) if row.profile else None,  # type: ignore[arg-type]
        source=layout.source,
        reason=f"import {layout.name}",
        observed_at=row.observed_at,
    )
    if not layout.is_order:
        return "created" if linked.is_new else "updated"
    assert row.order_no is not None
    assert row.observed_at is not None
    ref = touch_ref(layout, row.order_no)
    is_new = await touches.record_touch(
        session, linked.member.id, "purchase", row.observed_at, ref, channel=layout.source, amount_fen=row.amount_fen
    )
    if is_new and earns_points and (rule := await loyalty.active_rule(session, "purchase")) is not None:
        earned = lr.purchase_points(rule.points, row.amount_fen)
        await points.do_earn(
            session,
            linked.member.id,
            rule,
            source=ref,
            points=earned,
            qualifying_fen=row.amount_fen,
            at=row.observed_at,
        )
    return "created" if is_new else "unchanged"


def _link_error(number: int, error: AppError) -> RowError:
    return RowError(number, "", "{message}", {"message": error.message})


async def _write_all(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    layout: Layout,
    todo: list[PlannedRow],
    result: ImportResult,
    *,
    earns_points: bool,
) -> list[PlannedRow]:
    """Write the rows, each in its own savepoint; returns those written. In `all` mode the first row
    that fails rolls every row back (`_Refused`)."""
    written: list[PlannedRow] = []
    for planned in todo:
        try:
            async with session.begin_nested():
                outcome = await _write_row(session, actor, crypto, layout, planned, earns_points=earns_points)
        except AppError as exc:
            result.errors.append(_link_error(planned.number, exc))
            result.valid_rows -= 1
            if result.mode is ImportMode.ALL:
                raise _Refused from exc
            continue
        setattr(result, outcome, getattr(result, outcome) + 1)
        written.append(planned)
    return written


async def _remember(session: AsyncSession, layout: Layout, log: MemberImport, written: list[PlannedRow]) -> None:
    now = utcnow()
    for planned in written:
        if planned.seen is not None:
            planned.seen.content_hash, planned.seen.import_id, planned.seen.imported_at = (
                planned.content_hash,
                log.id,
                now,
            )
            continue
        session.add(
            MemberImportRow(
                layout=layout.name,
                row_key=planned.row_key,
                content_hash=planned.content_hash,
                import_id=log.id,
                imported_at=now,
            )
        )
    await session.flush()


async def _log(
    session: AsyncSession, actor: Principal, layout: Layout, result: ImportResult, *, earns_points: bool
) -> MemberImport:
    log = MemberImport(
        layout=layout.name,
        file_format=result.file_format,
        mode=str(result.mode),
        earns_points=earns_points,
        actor_label=actor.label[:254],
        rows=result.rows,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        invalid_rows=result.invalid_rows,
        created_at=utcnow(),
    )
    session.add(log)
    await session.flush()
    return log


async def do_import(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    *,
    layout_name: str,
    filename: str,
    content: bytes,
    mode: ImportMode,
    earns_points: bool = False,
    dry_run: bool = False,
    origin: RequestOrigin | None = None,
) -> ImportResult:
    """Import a file of `layout_name` (see `import_layouts.LAYOUTS`) and report every row."""
    layout = layout_of(layout_name)
    file_format, cells = read_rows(filename, content)
    result = ImportResult(file_format=file_format, mode=mode)
    labels, rows = table_rows(cells, result, layout.columns, layout.required)
    planned = _check_rows(layout, crypto, rows, labels, result)
    await _attach_earlier(session, layout, planned)
    changed = _changed_orders(layout, planned, labels)
    result.errors = sorted([*result.errors, *changed], key=lambda e: e.row)
    planned = [p for p in planned if not (layout.is_order and p.seen and p.seen.content_hash != p.content_hash)]
    result.valid_rows = len(planned)
    if dry_run or (result.errors and mode is ImportMode.ALL):
        return result
    unchanged = [p for p in planned if p.seen is not None and p.seen.content_hash == p.content_hash]
    todo = [p for p in planned if p not in unchanged]
    try:
        async with session.begin_nested():
            written = await _write_all(session, actor, crypto, layout, todo, result, earns_points=earns_points)
    except _Refused:
        result.created = result.updated = 0
        result.errors.sort(key=lambda e: e.row)
        return result
    result.unchanged += len(unchanged)
    result.errors.sort(key=lambda e: e.row)
    result.imported = True
    log = await _log(session, actor, layout, result, earns_points=earns_points)
    await _remember(session, layout, log, written)
    await _audit(session, actor, layout, result, log, origin)
    return result


async def _audit(
    session: AsyncSession,
    actor: Principal,
    layout: Layout,
    result: ImportResult,
    log: MemberImport,
    origin: RequestOrigin | None,
) -> None:
    data: dict[str, Any] = {
        "layout": layout.name,
        "format": result.file_format,
        "mode": str(result.mode),
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "skipped_rows": result.invalid_rows,
    }
    await audit.record(
        session, actor, "members.import", target_type="member_import", target_id=str(log.id), data=data, origin=origin
    )


async def recent_imports(session: AsyncSession, limit: int = 20) -> list[MemberImport]:
    rows = await session.scalars(select(MemberImport).order_by(MemberImport.created_at.desc()).limit(limit))
    return list(rows)
