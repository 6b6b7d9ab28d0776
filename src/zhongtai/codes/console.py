"""Console pages of codes: batches (list, request, detail with live generation progress, downloads,
voiding), the code lookup page with the code's QR, code settings with PIN-key rotation, and printable
label sheets for small batches.

Print files are downloaded from the API's export endpoint, which accepts the console session for GET;
the label sheet is rendered here and audited like any other print file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from zhongtai.catalog import service as catalog_service
from zhongtai.catalog.rules import PRODUCT_ACTIVE, display_gtin
from zhongtai.codes import rules, service
from zhongtai.codes.errors import BatchNotReady, BatchVoided, InvalidCodeSettings
from zhongtai.codes.models import (
    BATCH_EXPORTED,
    BATCH_FAILED,
    BATCH_GENERATED,
    BATCH_GENERATING,
    BATCH_REQUESTED,
    BATCH_VOIDED,
    LEVEL_NAMES,
    LEVELS_BY_NAME,
    STATE_NAMES,
    Code,
    CodeBatch,
    PinKey,
)
from zhongtai.codes.permissions import CODES_EXPORT, CODES_EXPORT_PINS, CODES_READ, CODES_SETTINGS, CODES_WRITE
from zhongtai.codes.states import LEVEL_LABELS, STATE_LABELS
from zhongtai.core.errors import AppError, BadRequest
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, RuntimeDep, writes_on_get
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import PER_PAGE, error_field, localize_error, redirect_with_flash, render, tr

router = APIRouter(prefix="/console/codes", include_in_schema=False)

CodesReader = Annotated[Principal, require_page(CODES_READ)]
CodesWriter = Annotated[Principal, require_page(CODES_WRITE)]
CodesExporter = Annotated[Principal, require_page(CODES_EXPORT)]
CodesAdmin = Annotated[Principal, require_page(CODES_SETTINGS)]
Text = Annotated[str, Form(max_length=300)]

STATUS_LABELS = {
    BATCH_REQUESTED: "Requested",
    BATCH_GENERATING: "Generating",
    BATCH_GENERATED: "Generated",
    BATCH_EXPORTED: "Exported",
    BATCH_VOIDED: "Voided",
    BATCH_FAILED: "Failed",
}
SCHEME_LABELS = {"serial": "Random serial (AI 21)", "sscc": "SSCC (AI 00)"}
PART_SIZES = (1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000)
LABEL_SHEET_LIMIT = 1_000
CHILDREN_SHOWN = 50
PRODUCT_CHOICES = 1_000
IN_PROGRESS = (BATCH_REQUESTED, BATCH_GENERATING)
DOWNLOADABLE = (BATCH_GENERATED, BATCH_EXPORTED)


def _page_number(value: int) -> int:
    return max(1, min(value, 100_000))


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _whole(value: str) -> int | None:
    """A whole number typed by a person (thousands separators allowed), or None when it is not one."""
    text = value.strip().replace(",", "").replace("，", "")
    return int(text) if text.isascii() and text.isdigit() else None


def _qr_svg(uri: str) -> Markup:
    """The code's Digital Link as an inline SVG QR code (error correction M), sized by CSS (viewBox)."""
    svg = segno.make(uri, error="m").svg_inline(svgclass="qr", lineclass=None, omitsize=True)
    return Markup(svg)  # noqa: S704 - segno's own markup; the URI is not embedded in it


# Batches.


@router.get("")
async def codes_home(_: CodesReader) -> Response:
    return RedirectResponse("/console/codes/batches", status_code=303)


@router.get("/batches")
async def batches_page(
    request: Request,
    session: DbSession,
    principal: CodesReader,
    product_id: str = "",
    status: str = "",
    page: int = 1,
) -> Response:
    page = _page_number(page)
    chosen_product = _uuid_or_none(product_id)
    status_filter = status if status in STATUS_LABELS else ""
    rows, total = await service.list_batches(
        session,
        product_id=chosen_product,
        status=status_filter or None,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )
    products, _count = await catalog_service.list_products(session, limit=PRODUCT_CHOICES, offset=0)
    return render(
        request,
        "codes/batches.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "products": products,
            "product_id": str(chosen_product) if chosen_product else "",
            "status": status_filter,
            "statuses": STATUS_LABELS,
            "level_labels": LEVEL_LABELS,
            "level_names": LEVEL_NAMES,
            "can_write": principal.can(CODES_WRITE),
            "display_gtin": display_gtin,
        },
    )


EMPTY_BATCH_FORM = {"product_id": "", "level": "item", "quantity": "", "note": ""}


async def _request_form(
    request: Request,
    session: AsyncSession,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    products, _count = await catalog_service.list_products(
        session, status=PRODUCT_ACTIVE, limit=PRODUCT_CHOICES, offset=0
    )
    return render(
        request,
        "codes/batch_form.html",
        {
            "form": form,
            "errors": errors or {},
            "products": products,
            "levels": LEVEL_LABELS,
            "max_quantity": service.MAX_BATCH_QUANTITY,
            "display_gtin": display_gtin,
        },
        status_code=status_code,
    )


@router.get("/batches/new")
async def new_batch_page(request: Request, session: DbSession, _: CodesWriter, product_id: str = "") -> Response:
    chosen = _uuid_or_none(product_id)
    form = EMPTY_BATCH_FORM | {"product_id": str(chosen) if chosen else ""}
    return await _request_form(request, session, form=form)


def _check_batch_form(request: Request, form: dict[str, str]) -> tuple[service.BatchRequest | None, dict[str, str]]:
    """What cannot even be parsed, reported next to its field; the service checks the rest."""
    errors: dict[str, str] = {}
    product_id = _uuid_or_none(form["product_id"])
    if product_id is None:
        errors["product_id"] = tr(request, "Choose a product.")
    if form["level"] not in LEVELS_BY_NAME:
        errors["level"] = tr(request, "The level is item, case or pallet.")
    quantity = _whole(form["quantity"])
    if quantity is None or not 1 <= quantity <= service.MAX_BATCH_QUANTITY:
        errors["quantity"] = tr(
            request, "Enter a whole number from 1 to {limit}.", limit=f"{service.MAX_BATCH_QUANTITY:,}"
        )
    if errors or product_id is None or quantity is None:
        return None, errors
    return service.BatchRequest(product_id, form["level"], quantity, form["note"]), {}


@router.post("/batches")
async def request_batch(
    request: Request,
    session: DbSession,
    principal: CodesWriter,
    runtime: RuntimeDep,
    origin: Origin,
    product_id: Text = "",
    level: Text = "item",
    quantity: Text = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    form = {"product_id": product_id, "level": level, "quantity": quantity, "note": note}
    batch_request, errors = _check_batch_form(request, form)
    if batch_request is None:
        return await _request_form(request, session, form=form, errors=errors, status_code=422)
    try:
        batch, _created = await service.do_request_batch(
            session,
            runtime.crypto,
            principal,
            batch_request,
            public_url=runtime.settings.public_url,
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        errors = {error_field(exc): localize_error(request, exc)}
        return await _request_form(request, session, form=form, errors=errors, status_code=exc.status_code)
    message = tr(
        request,
        "Batch {number} was requested: {quantity} codes are being generated.",
        number=batch.number,
        quantity=f"{batch.quantity:,}",
    )
    return redirect_with_flash(request, f"/console/codes/batches/{batch.id}", message)


@dataclass(frozen=True)
class VoidDraft:
    first: int
    last: int
    reason: str
    whole: bool

    @property
    def count(self) -> int:
        return self.last - self.first + 1


async def _batch_context(session: AsyncSession, principal: Principal, batch: CodeBatch) -> dict[str, Any]:
    """What the live part of the batch page shows; state counts only once generation has finished
    (counting a large batch every second while it grows would cost more than the progress is worth)."""
    product = await catalog_service.get_product(session, batch.product_id)
    generating = batch.status in IN_PROGRESS
    counts = {} if generating else await service.batch_state_counts(session, batch)
    percent = 100 if batch.quantity == 0 else int(batch.generated_count * 100 / batch.quantity)
    return {
        "batch": batch,
        "product": product,
        "level": LEVEL_NAMES[batch.level],
        "generating": generating,
        "percent": percent,
        "state_counts": [(name, counts[name]) for name in STATE_NAMES.values() if counts.get(name)],
        "can_download": principal.can(CODES_EXPORT) and batch.status in DOWNLOADABLE,
        "can_export": principal.can(CODES_EXPORT),
        "can_export_pins": principal.can(CODES_EXPORT_PINS) and batch.pin_key_version is not None,
        "can_void": principal.can(CODES_WRITE) and batch.status not in (*IN_PROGRESS, BATCH_VOIDED),
        "part_sizes": PART_SIZES,
        "default_part_size": next((size for size in PART_SIZES if size * 10 >= batch.quantity), PART_SIZES[-1]),
        "label_sheet_limit": LABEL_SHEET_LIMIT,
        "statuses": STATUS_LABELS,
        "state_labels": STATE_LABELS,
        "level_labels": LEVEL_LABELS,
        "scheme_labels": SCHEME_LABELS,
        "display_gtin": display_gtin,
        "void_form": {"reason": "", "from_index": "", "to_index": ""},
        "void_confirm": None,
    }


async def _batch_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    batch_id: uuid.UUID,
    *,
    void_form: dict[str, str] | None = None,
    void_errors: dict[str, str] | None = None,
    void_confirm: VoidDraft | None = None,
    status_code: int = 200,
) -> Response:
    batch = await service.get_batch(session, batch_id)
    context = await _batch_context(session, principal, batch)
    if void_form is not None:
        context["void_form"] = void_form
    context.update({"errors": void_errors or {}, "void_confirm": void_confirm})
    return render(request, "codes/batch.html", context, status_code=status_code)


@router.get("/batches/{batch_id}")
async def batch_page(request: Request, session: DbSession, principal: CodesReader, batch_id: uuid.UUID) -> Response:
    return await _batch_page(request, session, principal, batch_id)


@router.get("/batches/{batch_id}/progress")
async def batch_progress(request: Request, session: DbSession, principal: CodesReader, batch_id: uuid.UUID) -> Response:
    """The live part of the batch page; htmx polls it every second while the batch is generated."""
    batch = await service.get_batch(session, batch_id)
    return render(request, "codes/_batch_live.html", await _batch_context(session, principal, batch))


def _check_void(request: Request, batch: CodeBatch, form: dict[str, str]) -> tuple[VoidDraft | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if batch.status in IN_PROGRESS:
        errors["_form"] = localize_error(request, BatchNotReady())
    elif batch.status == BATCH_VOIDED:
        errors["_form"] = localize_error(request, BatchVoided())
    if not form["reason"].strip():
        errors["reason"] = tr(request, "Say why the codes are voided.")
    positions: dict[str, int | None] = {}
    for name in ("from_index", "to_index"):
        positions[name] = _whole(form[name]) if form[name].strip() else None
        if form[name].strip() and not positions[name]:
            errors[name] = tr(request, "Enter a position from 1 to {count}.", count=f"{batch.quantity:,}")
    first, last = positions["from_index"] or 1, positions["to_index"] or batch.quantity
    if not errors and not 1 <= first <= last <= batch.quantity:
        errors["from_index"] = tr(
            request, "Positions run from 1 to {count}, first ≤ last.", count=f"{batch.quantity:,}"
        )
    if errors:
        return None, errors
    whole = positions["from_index"] is None and positions["to_index"] is None
    return VoidDraft(first, last, form["reason"].strip(), whole), {}


@router.post("/batches/{batch_id}/void")
async def void_codes(
    request: Request,
    session: DbSession,
    principal: CodesWriter,
    origin: Origin,
    batch_id: uuid.UUID,
    reason: Annotated[str, Form(max_length=200)] = "",
    from_index: Text = "",
    to_index: Text = "",
    confirm: Text = "",
) -> Response:
    """Two steps: the first post shows what would be voided and asks again; `confirm=1` voids."""
    batch = await service.get_batch(session, batch_id)
    form = {"reason": reason, "from_index": from_index, "to_index": to_index}
    draft, errors = _check_void(request, batch, form)
    if draft is None:
        return await _batch_page(
            request, session, principal, batch_id, void_form=form, void_errors=errors, status_code=422
        )
    if confirm != "1":
        return await _batch_page(request, session, principal, batch_id, void_form=form, void_confirm=draft)
    try:
        voided = await service.do_void(
            session,
            principal,
            batch_id,
            from_index=None if draft.whole else draft.first,
            to_index=None if draft.whole else draft.last,
            reason=draft.reason,
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        errors = {error_field(exc): localize_error(request, exc)}
        return await _batch_page(
            request, session, principal, batch_id, void_form=form, void_errors=errors, status_code=exc.status_code
        )
    message = tr(request, "{count} codes were voided; they fail verification from now on.", count=f"{voided:,}")
    return redirect_with_flash(request, f"/console/codes/batches/{batch_id}", message)


@router.get("/batches/{batch_id}/labels")
@writes_on_get
async def label_sheet(
    request: Request, session: DbSession, principal: CodesExporter, origin: Origin, batch_id: uuid.UUID
) -> Response:
    """A4 sheets of QR labels, serial under each, for batches small enough to print from a browser.
    Audited like every other print file."""
    batch = await service.get_batch(session, batch_id)
    if batch.status == BATCH_VOIDED:
        raise BatchVoided()
    if batch.status not in DOWNLOADABLE:
        raise BatchNotReady()
    if batch.quantity > LABEL_SHEET_LIMIT:
        raise BadRequest("Label sheets are for batches of up to 1,000 codes; download the links file instead.")
    product = await catalog_service.get_product(session, batch.product_id)
    rows = (
        await session.execute(
            select(Code.id, Code.serial)
            .where(Code.id >= batch.first_code_id, Code.id < batch.first_code_id + batch.quantity)
            .order_by(Code.id)
        )
    ).all()
    uris = [
        rules.sscc_link(batch.resolver_base, serial)
        if batch.scheme == "sscc"
        else rules.item_link(batch.resolver_base, product.gtin, serial)
        for _code_id, serial in rows
    ]
    # ~4 ms per QR code (segno picks the best of eight masks): off the event loop.
    svgs = await run_in_threadpool(lambda: [_qr_svg(uri) for uri in uris])
    labels = [
        {"index": code_id - batch.first_code_id + 1, "serial": serial, "qr": svg}
        for (code_id, serial), svg in zip(rows, svgs, strict=True)
    ]
    await service.do_record_export(session, principal, batch, kind="labels", origin=origin)
    return render(
        request,
        "codes/labels.html",
        {"batch": batch, "product": product, "labels": labels, "display_gtin": display_gtin},
    )


# Lookup.


@router.get("/lookup")
async def lookup_page(request: Request, session: DbSession, principal: CodesReader, code: str = "") -> Response:
    text = code.strip()[:300]
    context: dict[str, Any] = {"code": text, "view": None, "error": None}
    status_code = 200
    if text:
        try:
            view = await service.lookup(session, text)
        except AppError as exc:
            context["error"] = localize_error(request, exc)
            status_code = exc.status_code
        else:
            children = list(
                await session.scalars(
                    select(Code.serial).where(Code.parent_id == view.code.id).order_by(Code.id).limit(CHILDREN_SHOWN)
                )
            )
            context.update(
                {
                    "view": view,
                    "level": LEVEL_NAMES[view.code.level],
                    "state": STATE_NAMES[view.code.state],
                    "position": view.code.id - view.batch.first_code_id + 1,
                    "children": children,
                    "qr": _qr_svg(view.uri),
                }
            )
    context.update(
        {
            "level_labels": LEVEL_LABELS,
            "state_labels": STATE_LABELS,
            "statuses": STATUS_LABELS,
            "display_gtin": display_gtin,
        }
    )
    return render(request, "codes/lookup.html", context, status_code=status_code)


# Settings.


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _pin_key_version(session: AsyncSession) -> tuple[int | None, Any]:
    row = (
        await session.execute(
            select(PinKey.version, PinKey.created_at)
            .where(PinKey.retired_at.is_(None))
            .order_by(PinKey.version.desc())
            .limit(1)
        )
    ).first()
    return (int(row[0]), row[1]) if row else (None, None)


async def _settings_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    public_url: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    row = await service.get_settings(session, principal.tenant_id)
    version, created_at = await _pin_key_version(session)
    item_batches = await session.scalar(
        select(func.count()).select_from(CodeBatch).where(CodeBatch.pin_key_version.is_not(None))
    )
    return render(
        request,
        "codes/settings.html",
        {
            "form": form
            or {
                "gs1_company_prefix": row.gs1_company_prefix or "",
                "sscc_extension_digit": str(row.sscc_extension_digit),
                "resolver_base": row.resolver_base or "",
            },
            "errors": errors or {},
            "default_resolver": _origin_of(public_url),
            "pin_key_version": version,
            "pin_key_created_at": created_at,
            "item_batches": int(item_batches or 0),
            "next_sscc_reference": row.next_sscc_reference,
        },
        status_code=status_code,
    )


@router.get("/settings")
async def settings_page(request: Request, session: DbSession, principal: CodesAdmin, runtime: RuntimeDep) -> Response:
    return await _settings_page(request, session, principal, runtime.settings.public_url)


@router.post("/settings")
async def update_settings(
    request: Request,
    session: DbSession,
    principal: CodesAdmin,
    runtime: RuntimeDep,
    origin: Origin,
    gs1_company_prefix: Text = "",
    sscc_extension_digit: Text = "0",
    resolver_base: Text = "",
) -> Response:
    form = {
        "gs1_company_prefix": gs1_company_prefix,
        "sscc_extension_digit": sscc_extension_digit,
        "resolver_base": resolver_base,
    }
    digit = _whole(sscc_extension_digit) if sscc_extension_digit.strip() else 0
    try:
        if digit is None or not 0 <= digit <= 9:
            raise InvalidCodeSettings("The SSCC extension digit is one digit, 0 to 9.", field="sscc_extension_digit")
        await service.do_update_settings(
            session,
            principal,
            gs1_company_prefix=gs1_company_prefix,
            sscc_extension_digit=digit,
            resolver_base=resolver_base,
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        errors = {error_field(exc): localize_error(request, exc)}
        return await _settings_page(
            request,
            session,
            principal,
            runtime.settings.public_url,
            form=form,
            errors=errors,
            status_code=exc.status_code,
        )
    return redirect_with_flash(request, "/console/codes/settings", tr(request, "Code settings were saved."))


@router.post("/settings/rotate-pin-key")
async def rotate_pin_key(
    request: Request, session: DbSession, principal: CodesAdmin, runtime: RuntimeDep, origin: Origin
) -> Response:
    version = await service.do_rotate_pin_key(session, runtime.crypto, principal, origin)
    message = tr(
        request,
        "The PIN key was rotated: new item batches use version {version}; printed codes keep their key.",
        version=version,
    )
    return redirect_with_flash(request, "/console/codes/settings", message)
