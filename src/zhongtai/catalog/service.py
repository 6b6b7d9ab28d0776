"""Catalog use cases: `check_*` validates, `do_*` changes state and audits, `get_*`/`list_*` read.

Services take a session and flush; the boundary (request, CLI) commits.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import rules
from zhongtai.catalog.errors import (
    DuplicateGtin,
    DuplicateLot,
    InvalidFields,
    LotNotFound,
    ProductArchived,
    ProductNotFound,
)
from zhongtai.catalog.models import PRODUCT_ACTIVE, PRODUCT_ARCHIVED, PRODUCT_STATUSES, Lot, Product
from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import Conflict
from zhongtai.core.principals import Principal

PRODUCT_FIELDS = (
    "gtin",
    "name",
    "specification",
    "category",
    "image_urls",
    "price_fen",
    "items_per_case",
    "cases_per_pallet",
)
LOT_FIELDS = ("lot_number", "produced_on", "expires_on", "factory", "line")


def check_product(draft: rules.ProductDraft) -> rules.ProductFields:
    fields, problems = rules.check_product(draft)
    if fields is None:
        raise InvalidFields(problems)
    return fields


def check_lot(draft: rules.LotDraft) -> rules.LotFields:
    fields, problems = rules.check_lot(draft)
    if fields is None:
        raise InvalidFields(problems)
    return fields


def draft_of(product: Product) -> rules.ProductDraft:
    """The product's current values as a draft, for partial updates."""
    return rules.ProductDraft(
        gtin=product.gtin,
        name=product.name,
        specification=product.specification,
        category=product.category,
        image_urls=list(product.image_urls),
        price=None if product.price_fen is None else Decimal(product.price_fen) / 100,
        items_per_case=product.items_per_case,
        cases_per_pallet=product.cases_per_pallet,
    )


def lot_draft_of(lot: Lot) -> rules.LotDraft:
    return rules.LotDraft(lot.lot_number, lot.produced_on, lot.expires_on, lot.factory, lot.line)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _changes(row: Product | Lot, names: tuple[str, ...], new: object) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for the fields that differ (what the audit log keeps)."""
    changed: dict[str, list[Any]] = {}
    for name in names:
        before, after = getattr(row, name), getattr(new, name)
        if before != after:
            changed[name] = [_jsonable(before), _jsonable(after)]
    return changed


# Products.


def _product_filter(query: Select[Any], text: str | None, status: str | None) -> Select[Any]:
    if status in PRODUCT_STATUSES:
        query = query.where(Product.status == status)
    if text and text.strip():
        needle = text.strip()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        conditions: list[ColumnElement[bool]] = [
            Product.name.ilike(pattern, escape="\\"),
            Product.specification.ilike(pattern, escape="\\"),
            Product.category.ilike(pattern, escape="\\"),
        ]
        digits = needle.replace(" ", "").replace("-", "")
        if digits.isascii() and digits.isdigit():
            conditions.append(Product.gtin.contains(digits))
        query = query.where(or_(*conditions))
    return query


async def list_products(
    session: AsyncSession, *, text: str | None = None, status: str | None = None, limit: int, offset: int
) -> tuple[list[Product], int]:
    total = await session.scalar(_product_filter(select(func.count()).select_from(Product), text, status))
    rows = await session.scalars(
        _product_filter(select(Product), text, status).order_by(Product.name, Product.gtin).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_product(session: AsyncSession, product_id: uuid.UUID) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise ProductNotFound()
    return product


async def find_by_gtin(session: AsyncSession, gtin: str) -> Product | None:
    """The tenant's product with this GTIN (any accepted form), or None."""
    try:
        normalized = rules.gtin14(gtin)
    except rules.RuleBroken:
        return None
    found: Product | None = await session.scalar(select(Product).where(Product.gtin == normalized))
    return found


async def _flush_product(session: AsyncSession, product: Product) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise DuplicateGtin(product.gtin) from exc


async def do_create_product(
    session: AsyncSession, actor: Principal, draft: rules.ProductDraft, *, origin: RequestOrigin | None = None
) -> Product:
    fields = check_product(draft)
    existing = await session.scalar(select(Product.id).where(Product.gtin == fields.gtin))
    if existing is not None:
        raise DuplicateGtin(fields.gtin, product_id=str(existing))
    product = Product(**{name: getattr(fields, name) for name in PRODUCT_FIELDS})
    session.add(product)
    await _flush_product(session, product)
    await audit.record(
        session,
        actor,
        "catalog.product.create",
        target_type="product",
        target_id=product.id,
        data={"gtin": product.gtin, "name": product.name},
        origin=origin,
    )
    return product


async def do_update_product(
    session: AsyncSession,
    actor: Principal,
    product_id: uuid.UUID,
    draft: rules.ProductDraft,
    *,
    origin: RequestOrigin | None = None,
    action: str = "catalog.product.update",
) -> Product:
    """Replace the product's fields with `draft` (build it from `draft_of(product)` for a partial change)."""
    product = await get_product(session, product_id)
    fields = check_product(draft)
    if fields.gtin != product.gtin:
        other = await session.scalar(select(Product.id).where(Product.gtin == fields.gtin, Product.id != product.id))
        if other is not None:
            raise DuplicateGtin(fields.gtin, product_id=str(other))
    changed = _changes(product, PRODUCT_FIELDS, fields)
    if not changed:
        return product
    for name in changed:
        setattr(product, name, getattr(fields, name))
    await _flush_product(session, product)
    await audit.record(
        session,
        actor,
        action,
        target_type="product",
        target_id=product.id,
        data={"gtin": product.gtin, "changes": changed},
        origin=origin,
    )
    return product


async def do_set_archived(
    session: AsyncSession,
    actor: Principal,
    product_id: uuid.UUID,
    *,
    archived: bool,
    origin: RequestOrigin | None = None,
) -> Product:
    product = await get_product(session, product_id)
    status = PRODUCT_ARCHIVED if archived else PRODUCT_ACTIVE
    if product.status == status:
        return product
    product.status = status
    product.archived_at = utcnow() if archived else None
    await session.flush()
    await audit.record(
        session,
        actor,
        "catalog.product.archive" if archived else "catalog.product.unarchive",
        target_type="product",
        target_id=product.id,
        data={"gtin": product.gtin},
        origin=origin,
    )
    return product


UPSERT_CHUNK = 500


async def do_upsert_products(session: AsyncSession, rows: list[rules.ProductFields]) -> dict[str, int]:
    """Create each product by GTIN or update it in place (its status is kept). Returns counts of
    `created`, `updated` and `unchanged`. The caller (the importer) audits the whole import once and
    has made sure that no GTIN appears twice in `rows`."""
    # Look every GTIN up before inserting any, with the GTINs (validated digits) written into the SQL:
    # a prepared statement reused per chunk keeps the plan PostgreSQL made while the table was small
    # (a sequential scan per chunk), which made re-importing 50,000 rows take a minute.
    existing: dict[str, Product] = {}
    for start in range(0, len(rows), UPSERT_CHUNK):
        gtins: BindParameter[list[str]] = bindparam(
            "gtins", [r.gtin for r in rows[start : start + UPSERT_CHUNK]], literal_execute=True
        )
        existing.update((p.gtin, p) for p in await session.scalars(select(Product).where(Product.gtin.in_(gtins))))
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(rows), UPSERT_CHUNK):
        created: list[Product] = []
        for fields in rows[start : start + UPSERT_CHUNK]:
            product = existing.get(fields.gtin)
            if product is None:
                created.append(Product(**{name: getattr(fields, name) for name in PRODUCT_FIELDS}))
                continue
            changed = _changes(product, PRODUCT_FIELDS, fields)
            for name in changed:
                setattr(product, name, getattr(fields, name))
            counts["updated" if changed else "unchanged"] += 1
        session.add_all(created)
        counts["created"] += len(created)
        # No savepoint: taking one snapshots the whole identity map on every chunk. A failure rolls
        # the whole import back anyway.
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict("Another change added some of these GTINs at the same time; import the file again.") from exc
        for product in created:
            session.expunge(product)  # keeps each flush's bookkeeping small
    return counts


# Lots.


async def list_lots(session: AsyncSession, product_id: uuid.UUID, *, limit: int, offset: int) -> tuple[list[Lot], int]:
    await get_product(session, product_id)
    total = await session.scalar(select(func.count()).select_from(Lot).where(Lot.product_id == product_id))
    rows = await session.scalars(
        select(Lot)
        .where(Lot.product_id == product_id)
        .order_by(Lot.produced_on.desc(), Lot.lot_number)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def get_lot(session: AsyncSession, lot_id: uuid.UUID) -> Lot:
    lot = await session.get(Lot, lot_id)
    if lot is None:
        raise LotNotFound()
    return lot


async def _flush_lot(session: AsyncSession, lot: Lot) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise DuplicateLot(lot.lot_number) from exc


async def do_create_lot(
    session: AsyncSession,
    actor: Principal,
    product_id: uuid.UUID,
    draft: rules.LotDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Lot:
    product = await get_product(session, product_id)
    if product.is_archived:
        raise ProductArchived()
    fields = check_lot(draft)
    taken = await session.scalar(
        select(Lot.id).where(Lot.product_id == product.id, Lot.lot_number == fields.lot_number)
    )
    if taken is not None:
        raise DuplicateLot(fields.lot_number)
    lot = Lot(product_id=product.id, **{name: getattr(fields, name) for name in LOT_FIELDS})
    session.add(lot)
    await _flush_lot(session, lot)
    await audit.record(
        session,
        actor,
        "catalog.lot.create",
        target_type="lot",
        target_id=lot.id,
        data={"product_id": str(product.id), "gtin": product.gtin, "lot_number": lot.lot_number},
        origin=origin,
    )
    return lot


async def do_update_lot(
    session: AsyncSession,
    actor: Principal,
    lot_id: uuid.UUID,
    draft: rules.LotDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Lot:
    lot = await get_lot(session, lot_id)
    fields = check_lot(draft)
    if fields.lot_number != lot.lot_number:
        taken = await session.scalar(
            select(Lot.id).where(Lot.product_id == lot.product_id, Lot.lot_number == fields.lot_number)
        )
        if taken is not None:
            raise DuplicateLot(fields.lot_number)
    changed = _changes(lot, LOT_FIELDS, fields)
    if not changed:
        return lot
    for name in changed:
        setattr(lot, name, getattr(fields, name))
    await _flush_lot(session, lot)
    await audit.record(
        session,
        actor,
        "catalog.lot.update",
        target_type="lot",
        target_id=lot.id,
        data={"product_id": str(lot.product_id), "changes": changed},
        origin=origin,
    )
    return lot
