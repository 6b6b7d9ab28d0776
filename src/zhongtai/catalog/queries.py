"""What other domains may read of the catalog: products and lots as plain frozen values.

The catalog answers for its tables (`catalog_products`, `catalog_lots`); other domains ask here rather
than query them. Every function reads within the session's tenancy scope, like the rest of the
catalog, and returns values, not ORM rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog.models import Lot, Product
from zhongtai.catalog.rules import PRODUCT_ACTIVE, PRODUCT_ARCHIVED

CHOICES_LIMIT = 500
CHUNK = 1000


@dataclass(frozen=True)
class ProductBrief:
    """A product as other domains see it: identity, names, GTIN-14, packaging, price, status."""

    id: uuid.UUID
    gtin: str
    name: str
    specification: str
    category: str
    items_per_case: int | None
    cases_per_pallet: int | None
    price_fen: int | None
    status: str

    @property
    def is_archived(self) -> bool:
        return self.status == PRODUCT_ARCHIVED


@dataclass(frozen=True)
class ProductChoice:
    """One entry of a product drop-down."""

    id: uuid.UUID
    name: str
    gtin: str


@dataclass(frozen=True)
class LotBrief:
    id: uuid.UUID
    product_id: uuid.UUID
    lot_number: str
    produced_on: date | None
    expires_on: date | None
    factory: str
    line: str


def _brief(product: Product) -> ProductBrief:
    return ProductBrief(
        id=product.id,
        gtin=product.gtin,
        name=product.name,
        specification=product.specification,
        category=product.category,
        items_per_case=product.items_per_case,
        cases_per_pallet=product.cases_per_pallet,
        price_fen=product.price_fen,
        status=product.status,
    )


def _lot_brief(lot: Lot) -> LotBrief:
    return LotBrief(lot.id, lot.product_id, lot.lot_number, lot.produced_on, lot.expires_on, lot.factory, lot.line)


def _wanted(ids: Iterable[uuid.UUID | None]) -> list[uuid.UUID]:
    return list(dict.fromkeys(i for i in ids if i is not None))


async def product_brief(session: AsyncSession, product_id: uuid.UUID | None) -> ProductBrief | None:
    """The product, or None when there is no such product in this brand."""
    if product_id is None:
        return None
    product = await session.scalar(select(Product).where(Product.id == product_id))
    return _brief(product) if product is not None else None


async def product_briefs(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, ProductBrief]:
    """The products with these ids (None and unknown ids are left out)."""
    wanted = _wanted(ids)
    found: dict[uuid.UUID, ProductBrief] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.scalars(select(Product).where(Product.id.in_(wanted[start : start + CHUNK])))
        found.update({p.id: _brief(p) for p in rows})
    return found


async def _values(session: AsyncSession, column: Any, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Any]:
    wanted = _wanted(ids)
    found: dict[uuid.UUID, Any] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(select(Product.id, column).where(Product.id.in_(wanted[start : start + CHUNK])))
        found.update((key, value) for key, value in rows.all())
    return found


async def product_names(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Product id → name, for the ids that name a product of this brand."""
    return await _values(session, Product.name, ids)


async def product_gtins(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Product id → GTIN-14, for the ids that name a product of this brand."""
    return await _values(session, Product.gtin, ids)


async def existing_products(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> set[uuid.UUID]:
    """Which of these ids are products of this brand."""
    wanted = _wanted(ids)
    found: set[uuid.UUID] = set()
    for start in range(0, len(wanted), CHUNK):
        found.update(await session.scalars(select(Product.id).where(Product.id.in_(wanted[start : start + CHUNK]))))
    return found


async def product_exists(session: AsyncSession, product_id: uuid.UUID) -> bool:
    return await session.scalar(select(Product.id).where(Product.id == product_id)) is not None


async def product_choices(
    session: AsyncSession, *, active_only: bool = False, limit: int = CHOICES_LIMIT
) -> list[ProductChoice]:
    """Products for a drop-down, by name, at most `limit` (archived ones left out when `active_only`)."""
    query = select(Product.id, Product.name, Product.gtin)
    if active_only:
        query = query.where(Product.status == PRODUCT_ACTIVE)
    rows = await session.execute(query.order_by(Product.name).limit(limit))
    return [ProductChoice(pid, name, gtin) for pid, name, gtin in rows.all()]


async def lot_brief(session: AsyncSession, lot_id: uuid.UUID | None) -> LotBrief | None:
    """The lot, or None when there is no such lot in this brand."""
    if lot_id is None:
        return None
    lot = await session.scalar(select(Lot).where(Lot.id == lot_id))
    return _lot_brief(lot) if lot is not None else None


async def lot_number(session: AsyncSession, lot_id: uuid.UUID) -> str | None:
    """The lot's number (GS1 AI 10), or None when there is no such lot in this brand."""
    return await session.scalar(select(Lot.lot_number).where(Lot.id == lot_id))
