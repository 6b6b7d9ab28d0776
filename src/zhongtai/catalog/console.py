"""Console pages of the catalog: products (list, search, create, edit, archive), lots per product,
and master-data import with its per-row report.

Rules live in `catalog.service` and `catalog.rules`; these handlers parse forms, call the service,
and either redirect with a flash message or re-render the form with each message next to its field.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from zhongtai.catalog import importer, rules, service
from zhongtai.catalog.api import check_upload_size, read_upload
from zhongtai.catalog.errors import DuplicateGtin, DuplicateLot, InvalidFields
from zhongtai.catalog.models import PRODUCT_STATUSES, Lot, Product
from zhongtai.catalog.permissions import CATALOG_READ, CATALOG_WRITE
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import PER_PAGE, error_field, localize_error, redirect_with_flash, render, tr

router = APIRouter(prefix="/console/catalog", include_in_schema=False)

CatalogReader = Annotated[Principal, require_page(CATALOG_READ)]
CatalogWriter = Annotated[Principal, require_page(CATALOG_WRITE)]
Text = Annotated[str, Form(max_length=300)]
LongText = Annotated[str, Form(max_length=6000)]

STATUS_LABELS = {"active": "Active", "archived": "Archived"}


def _page_number(value: int) -> int:
    return max(1, min(value, 100_000))


def _errors(request: Request, error: AppError) -> dict[str, str]:
    """Each message next to its field, in the operator's language."""
    if isinstance(error, InvalidFields):
        found: dict[str, str] = {}
        for problem in error.problems:
            found.setdefault(problem.field, tr(request, problem.template, **problem.values))
        return found
    if isinstance(error, DuplicateGtin):
        return {"gtin": tr(request, "A product with GTIN {gtin} already exists.", gtin=error.data["gtin"])}
    if isinstance(error, DuplicateLot):
        return {"lot_number": tr(request, "This product already has a lot {lot_number}.", **error.data)}
    return {error_field(error): localize_error(request, error)}


# Form parsing: what cannot even be parsed is reported like a rule problem.


def _decimal(value: str, problems: list[rules.Problem]) -> Decimal | None:
    text = value.strip().replace("¥", "").replace("￥", "").replace(",", "")
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        problems.append(rules.Problem("price", "Not a price: '{value}'.", {"value": value.strip()}))
        return None


def _whole(name: str, value: str, problems: list[rules.Problem]) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value.strip())
    except ValueError:
        problems.append(
            rules.Problem(name, "Enter a whole number from 1 to {limit}.", {"limit": rules.MAX_PACK_QUANTITY})
        )
        return None


def _day(name: str, value: str, problems: list[rules.Problem]) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        problems.append(rules.Problem(name, "Not a date (use YYYY-MM-DD): '{value}'.", {"value": value.strip()}))
        return None


def _product_draft(form: dict[str, str]) -> rules.ProductDraft:
    problems: list[rules.Problem] = []
    draft = rules.ProductDraft(
        gtin=form["gtin"],
        name=form["name"],
        specification=form["specification"],
        category=form["category"],
        image_urls=form["image_urls"].splitlines(),
        price=_decimal(form["price"], problems),
        items_per_case=_whole("items_per_case", form["items_per_case"], problems),
        cases_per_pallet=_whole("cases_per_pallet", form["cases_per_pallet"], problems),
    )
    if problems:
        _fields, more = rules.check_product(draft)
        raise InvalidFields(problems + [p for p in more if p.field not in {q.field for q in problems}])
    return draft


def _product_form_of(product: Product) -> dict[str, str]:
    return {
        "gtin": rules.display_gtin(product.gtin),
        "name": product.name,
        "specification": product.specification,
        "category": product.category,
        "image_urls": "\n".join(product.image_urls),
        "price": rules.format_price(product.price_fen),
        "items_per_case": "" if product.items_per_case is None else str(product.items_per_case),
        "cases_per_pallet": "" if product.cases_per_pallet is None else str(product.cases_per_pallet),
    }


# Products.


@router.get("/products")
async def products_page(
    request: Request, session: DbSession, principal: CatalogReader, q: str = "", status: str = "", page: int = 1
) -> Response:
    page = _page_number(page)
    status_filter = status if status in PRODUCT_STATUSES else ""
    rows, total = await service.list_products(
        session, text=q[:100] or None, status=status_filter or None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    return render(
        request,
        "catalog/products.html",
        {
            "products": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "q": q,
            "status": status_filter,
            "statuses": STATUS_LABELS,
            "can_write": principal.can(CATALOG_WRITE),
            "display_gtin": rules.display_gtin,
            "format_price": rules.format_price,
        },
    )


def _product_form(
    request: Request,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    product: Product | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "catalog/product_form.html",
        {"form": form, "errors": errors or {}, "product": product, "status_labels": STATUS_LABELS},
        status_code=status_code,
    )


EMPTY_PRODUCT_FORM = dict.fromkeys(
    ("gtin", "name", "specification", "category", "image_urls", "price", "items_per_case", "cases_per_pallet"), ""
)


@router.get("/products/new")
async def new_product_page(request: Request, principal: CatalogWriter) -> Response:
    return _product_form(request, form=dict(EMPTY_PRODUCT_FORM))


@router.post("/products")
async def create_product(
    request: Request,
    session: DbSession,
    principal: CatalogWriter,
    origin: Origin,
    gtin: Text = "",
    name: Text = "",
    specification: Text = "",
    category: Text = "",
    image_urls: LongText = "",
    price: Text = "",
    items_per_case: Text = "",
    cases_per_pallet: Text = "",
) -> Response:
    form = {
        "gtin": gtin,
        "name": name,
        "specification": specification,
        "category": category,
        "image_urls": image_urls,
        "price": price,
        "items_per_case": items_per_case,
        "cases_per_pallet": cases_per_pallet,
    }
    try:
        product = await service.do_create_product(session, principal, _product_draft(form), origin=origin)
    except AppError as exc:
        await session.rollback()
        return _product_form(request, form=form, errors=_errors(request, exc), status_code=exc.status_code)
    return redirect_with_flash(
        request, "/console/catalog/products", tr(request, "Product {name} was created.", name=product.name)
    )


@router.get("/products/{product_id}")
async def edit_product_page(
    request: Request, session: DbSession, principal: CatalogWriter, product_id: uuid.UUID
) -> Response:
    product = await service.get_product(session, product_id)
    return _product_form(request, form=_product_form_of(product), product=product)


@router.post("/products/{product_id}")
async def update_product(
    request: Request,
    session: DbSession,
    principal: CatalogWriter,
    origin: Origin,
    product_id: uuid.UUID,
    gtin: Text = "",
    name: Text = "",
    specification: Text = "",
    category: Text = "",
    image_urls: LongText = "",
    price: Text = "",
    items_per_case: Text = "",
    cases_per_pallet: Text = "",
) -> Response:
    product = await service.get_product(session, product_id)
    form = {
        "gtin": gtin,
        "name": name,
        "specification": specification,
        "category": category,
        "image_urls": image_urls,
        "price": price,
        "items_per_case": items_per_case,
        "cases_per_pallet": cases_per_pallet,
    }
    try:
        product = await service.do_update_product(session, principal, product_id, _product_draft(form), origin=origin)
    except AppError as exc:
        await session.rollback()
        product = await service.get_product(session, product_id)
        return _product_form(
            request, form=form, errors=_errors(request, exc), product=product, status_code=exc.status_code
        )
    return redirect_with_flash(
        request, "/console/catalog/products", tr(request, "Product {name} was updated.", name=product.name)
    )


@router.post("/products/{product_id}/archive")
async def archive_product(
    request: Request, session: DbSession, principal: CatalogWriter, origin: Origin, product_id: uuid.UUID
) -> Response:
    product = await service.do_set_archived(session, principal, product_id, archived=True, origin=origin)
    message = tr(request, "Product {name} was archived.", name=product.name)
    return redirect_with_flash(request, "/console/catalog/products", message)


@router.post("/products/{product_id}/unarchive")
async def unarchive_product(
    request: Request, session: DbSession, principal: CatalogWriter, origin: Origin, product_id: uuid.UUID
) -> Response:
    product = await service.do_set_archived(session, principal, product_id, archived=False, origin=origin)
    message = tr(request, "Product {name} is active again.", name=product.name)
    return redirect_with_flash(request, "/console/catalog/products", message)


# Lots.


EMPTY_LOT_FORM = dict.fromkeys(("lot_number", "produced_on", "expires_on", "factory", "line"), "")


def _lot_draft(form: dict[str, str]) -> rules.LotDraft:
    problems: list[rules.Problem] = []
    draft = rules.LotDraft(
        lot_number=form["lot_number"],
        produced_on=_day("produced_on", form["produced_on"], problems),
        expires_on=_day("expires_on", form["expires_on"], problems),
        factory=form["factory"],
        line=form["line"],
    )
    if problems:
        _fields, more = rules.check_lot(draft)
        raise InvalidFields(problems + [p for p in more if p.field not in {q.field for q in problems}])
    return draft


async def _lots_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    product_id: uuid.UUID,
    *,
    page: int = 1,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    product = await service.get_product(session, product_id)
    rows, total = await service.list_lots(session, product_id, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(
        request,
        "catalog/lots.html",
        {
            "product": product,
            "lots": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "form": form or dict(EMPTY_LOT_FORM),
            "errors": errors or {},
            "can_write": principal.can(CATALOG_WRITE) and not product.is_archived,
            "display_gtin": rules.display_gtin,
        },
        status_code=status_code,
    )


@router.get("/products/{product_id}/lots")
async def lots_page(
    request: Request, session: DbSession, principal: CatalogReader, product_id: uuid.UUID, page: int = 1
) -> Response:
    return await _lots_page(request, session, principal, product_id, page=_page_number(page))


@router.post("/products/{product_id}/lots")
async def create_lot(
    request: Request,
    session: DbSession,
    principal: CatalogWriter,
    origin: Origin,
    product_id: uuid.UUID,
    lot_number: Text = "",
    produced_on: Text = "",
    expires_on: Text = "",
    factory: Text = "",
    line: Text = "",
) -> Response:
    form = {
        "lot_number": lot_number,
        "produced_on": produced_on,
        "expires_on": expires_on,
        "factory": factory,
        "line": line,
    }
    try:
        lot = await service.do_create_lot(session, principal, product_id, _lot_draft(form), origin=origin)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        return await _lots_page(
            request,
            session,
            principal,
            product_id,
            form=form,
            errors=_errors(request, exc),
            status_code=exc.status_code,
        )
    return redirect_with_flash(
        request,
        f"/console/catalog/products/{product_id}/lots",
        tr(request, "Lot {lot_number} was added.", lot_number=lot.lot_number),
    )


def _lot_form(
    request: Request,
    lot: Lot,
    product: Product,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "catalog/lot_form.html",
        {"lot": lot, "product": product, "form": form, "errors": errors or {}, "display_gtin": rules.display_gtin},
        status_code=status_code,
    )


@router.get("/lots/{lot_id}")
async def edit_lot_page(request: Request, session: DbSession, principal: CatalogWriter, lot_id: uuid.UUID) -> Response:
    lot = await service.get_lot(session, lot_id)
    product = await service.get_product(session, lot.product_id)
    form = {
        "lot_number": lot.lot_number,
        "produced_on": lot.produced_on.isoformat() if lot.produced_on else "",
        "expires_on": lot.expires_on.isoformat() if lot.expires_on else "",
        "factory": lot.factory,
        "line": lot.line,
    }
    return _lot_form(request, lot, product, form=form)


@router.post("/lots/{lot_id}")
async def update_lot(
    request: Request,
    session: DbSession,
    principal: CatalogWriter,
    origin: Origin,
    lot_id: uuid.UUID,
    lot_number: Text = "",
    produced_on: Text = "",
    expires_on: Text = "",
    factory: Text = "",
    line: Text = "",
) -> Response:
    lot = await service.get_lot(session, lot_id)
    form = {
        "lot_number": lot_number,
        "produced_on": produced_on,
        "expires_on": expires_on,
        "factory": factory,
        "line": line,
    }
    try:
        lot = await service.do_update_lot(session, principal, lot_id, _lot_draft(form), origin=origin)
    except AppError as exc:
        await session.rollback()
        lot = await service.get_lot(session, lot_id)
        product = await service.get_product(session, lot.product_id)
        return _lot_form(request, lot, product, form=form, errors=_errors(request, exc), status_code=exc.status_code)
    return redirect_with_flash(
        request,
        f"/console/catalog/products/{lot.product_id}/lots",
        tr(request, "Lot {lot_number} was updated.", lot_number=lot.lot_number),
    )


# Import.


def _import_page(
    request: Request, *, result: importer.ImportResult | None = None, error: str | None = None, status_code: int = 200
) -> Response:
    report: list[dict[str, Any]] = []
    if result is not None:
        report = [
            {"row": e.row, "column": e.column, "message": tr(request, e.template, **e.values)}
            for e in result.reported_errors
        ]
    return render(
        request,
        "catalog/import.html",
        {
            "result": result,
            "report": report,
            "error": error,
            "max_rows": importer.MAX_ROWS,
            "max_megabytes": importer.MAX_BYTES // (1024 * 1024),
            "max_reported": importer.MAX_REPORTED_ERRORS,
            "columns": importer.COLUMN_ALIASES,
        },
        status_code=status_code,
    )


@router.get("/import")
async def import_page(request: Request, principal: CatalogWriter) -> Response:
    return _import_page(request)


@router.post("/import", dependencies=[Depends(check_upload_size)])
async def import_upload(
    request: Request,
    session: DbSession,
    principal: CatalogWriter,
    origin: Origin,
    file: Annotated[UploadFile, File()],
    mode: Text = "all",
    dry_run: Text = "",
) -> Response:
    chosen = importer.ImportMode.VALID_ROWS if mode == importer.ImportMode.VALID_ROWS else importer.ImportMode.ALL
    try:
        content = await read_upload(file)
        result = await importer.do_import_products(
            session,
            principal,
            filename=file.filename or "",
            content=content,
            mode=chosen,
            dry_run=dry_run == "1",
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        return _import_page(request, error=import_error_message(request, exc), status_code=exc.status_code)
    refused = bool(result.errors) and chosen is importer.ImportMode.ALL and dry_run != "1"
    return _import_page(request, result=result, status_code=422 if refused else 200)


def import_error_message(request: Request, error: AppError) -> str:
    if "missing_columns" in error.data:
        return tr(
            request,
            "The first row must name the columns; missing: {columns}.",
            columns=", ".join(error.data["missing_columns"]),
        )
    if error.code != "import_too_large":
        return localize_error(request, error)
    if error.message.startswith("The file has more than"):
        return tr(
            request, "The file has more than {rows} rows; split it into smaller files.", rows=f"{importer.MAX_ROWS:,}"
        )
    return tr(
        request,
        "The file is larger than {megabytes} MB; split it into smaller files.",
        megabytes=importer.MAX_BYTES // (1024 * 1024),
    )
