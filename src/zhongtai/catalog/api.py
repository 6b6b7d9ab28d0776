"""Catalog REST API under `/api/v1/catalog`: products, packaging, lots and master-data import."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from zhongtai.catalog import importer, rules, service
from zhongtai.catalog.permissions import CATALOG_READ, CATALOG_WRITE
from zhongtai.catalog.schemas import (
    LotCreate,
    LotOut,
    LotUpdate,
    ProductCreate,
    ProductOut,
    ProductUpdate,
)
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.principals import Principal
from zhongtai.core.schemas import Paged
from zhongtai.core.web import DbSession, Origin, PageDep, require
from zhongtai.kit.crud import ImportReport, check_upload_size, read_upload, report_of
from zhongtai.kit.tabular import ImportHasErrors

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"])

CatalogReader = Annotated[Principal, Depends(require(CATALOG_READ))]
CatalogWriter = Annotated[Principal, Depends(require(CATALOG_WRITE))]


# Products.


@router.get("/products", response_model=Paged[ProductOut])
async def list_products(
    session: DbSession,
    _: CatalogReader,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, description="part of name, specification, category or GTIN")] = None,
    status: Annotated[str | None, Query(pattern="^(active|archived)$")] = None,
) -> Paged[ProductOut]:
    rows, total = await service.list_products(session, text=q, status=status, limit=page.per_page, offset=page.offset)
    return Paged(items=[ProductOut.of(r) for r in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/products", response_model=ProductOut, status_code=201)
async def create_product(body: ProductCreate, session: DbSession, actor: CatalogWriter, origin: Origin) -> ProductOut:
    draft = rules.ProductDraft(**body.model_dump())
    return ProductOut.of(await service.do_create_product(session, actor, draft, origin=origin))


@router.get("/products/{product_id}", response_model=ProductOut)
async def get_product(product_id: uuid.UUID, session: DbSession, _: CatalogReader) -> ProductOut:
    return ProductOut.of(await service.get_product(session, product_id))


@router.patch("/products/{product_id}", response_model=ProductOut)
async def update_product(
    product_id: uuid.UUID, body: ProductUpdate, session: DbSession, actor: CatalogWriter, origin: Origin
) -> ProductOut:
    current = await service.get_product(session, product_id)
    draft = replace(service.draft_of(current), **_sent(body.model_dump(exclude_unset=True), keep={"price"}))
    return ProductOut.of(await service.do_update_product(session, actor, product_id, draft, origin=origin))


@router.post("/products/{product_id}/archive", response_model=ProductOut)
async def archive_product(
    product_id: uuid.UUID, session: DbSession, actor: CatalogWriter, origin: Origin
) -> ProductOut:
    return ProductOut.of(await service.do_set_archived(session, actor, product_id, archived=True, origin=origin))


@router.post("/products/{product_id}/unarchive", response_model=ProductOut)
async def unarchive_product(
    product_id: uuid.UUID, session: DbSession, actor: CatalogWriter, origin: Origin
) -> ProductOut:
    return ProductOut.of(await service.do_set_archived(session, actor, product_id, archived=False, origin=origin))


def _sent(values: dict[str, Any], *, keep: set[str]) -> dict[str, Any]:
    """Fields the client sent. `null` clears the optional numbers and dates; for text fields, where
    clearing means an empty string, `null` is refused rather than guessed."""
    nullable = keep | {"items_per_case", "cases_per_pallet", "produced_on", "expires_on"}
    refused = sorted(name for name, value in values.items() if value is None and name not in nullable)
    if refused:
        raise ValidationFailed(f"These fields cannot be null: {', '.join(refused)}.", field=refused[0])
    return values


# Lots.


@router.get("/products/{product_id}/lots", response_model=Paged[LotOut])
async def list_lots(product_id: uuid.UUID, session: DbSession, _: CatalogReader, page: PageDep) -> Paged[LotOut]:
    rows, total = await service.list_lots(session, product_id, limit=page.per_page, offset=page.offset)
    return Paged(items=[LotOut.of(r) for r in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/products/{product_id}/lots", response_model=LotOut, status_code=201)
async def create_lot(
    product_id: uuid.UUID, body: LotCreate, session: DbSession, actor: CatalogWriter, origin: Origin
) -> LotOut:
    lot = await service.do_create_lot(session, actor, product_id, rules.LotDraft(**body.model_dump()), origin=origin)
    return LotOut.of(lot)


@router.get("/lots/{lot_id}", response_model=LotOut)
async def get_lot(lot_id: uuid.UUID, session: DbSession, _: CatalogReader) -> LotOut:
    return LotOut.of(await service.get_lot(session, lot_id))


@router.patch("/lots/{lot_id}", response_model=LotOut)
async def update_lot(
    lot_id: uuid.UUID, body: LotUpdate, session: DbSession, actor: CatalogWriter, origin: Origin
) -> LotOut:
    current = await service.get_lot(session, lot_id)
    draft = replace(service.lot_draft_of(current), **_sent(body.model_dump(exclude_unset=True), keep=set()))
    return LotOut.of(await service.do_update_lot(session, actor, lot_id, draft, origin=origin))


# Import.


@router.post(
    "/import",
    response_model=ImportReport,
    dependencies=[Depends(check_upload_size)],
    responses={
        413: {"description": "the file is larger than 5 MB or has more than 50,000 rows"},
        422: {"description": "some rows have errors and mode is `all`: nothing was imported; `data` is the report"},
    },
)
async def import_products(
    session: DbSession,
    actor: CatalogWriter,
    origin: Origin,
    file: Annotated[UploadFile, File(description="CSV (UTF-8 or GB18030) or XLSX; first row names the columns")],
    mode: Annotated[importer.ImportMode, Form(description="`all`: nothing unless every row is valid")] = (
        importer.ImportMode.ALL
    ),
    dry_run: Annotated[bool, Form(description="check only, write nothing")] = False,
) -> ImportReport:
    content = await read_upload(file)
    result = await importer.do_import_products(
        session, actor, filename=file.filename or "", content=content, mode=mode, dry_run=dry_run, origin=origin
    )
    report = report_of(result)
    if result.errors and mode is importer.ImportMode.ALL and not dry_run:
        raise ImportHasErrors(
            f"{result.invalid_rows} of {result.rows} rows have errors; nothing was imported. "
            "Fix them, or import only the valid rows.",
            **report.model_dump(mode="json"),
        )
    return report
