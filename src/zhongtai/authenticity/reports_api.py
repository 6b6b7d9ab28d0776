"""Counterfeit reports over HTTP: the public submission (JSON API and the H5 form share it) and the
operators' API under `/api/v1/authenticity/reports`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhongtai.authenticity import photos as photo_rules
from zhongtai.authenticity import reports
from zhongtai.authenticity.photos import MAX_PHOTO_BYTES, MAX_PHOTOS, CleanPhoto, PhotoStore, TooManyPhotos
from zhongtai.core import consumers, tenancy
from zhongtai.core.errors import AppError, BadRequest, PermissionDenied, Unauthenticated, ValidationFailed
from zhongtai.core.models import Tenant
from zhongtai.core.principals import Principal
from zhongtai.core.runtime import Runtime
from zhongtai.core.schemas import Paged, RequestBody
from zhongtai.core.web import DbSession, Origin, PageDep, RuntimeDep, rate_limit, require

router = APIRouter(tags=["counterfeit reports"])

ReportsReader = Annotated[Principal, Depends(require(reports.REPORTS_READ))]
ReportsManager = Annotated[Principal, Depends(require(reports.REPORTS_MANAGE))]

# A stranger may send a report about once a minute from one address, with a burst of ten.
ReportLimit = Depends(rate_limit("counterfeit-report", limit=10, period=600.0))
# Photos plus the text fields; anything larger is refused before it is read.
MAX_BODY_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 256 * 1024
MAX_FILE_PARTS = 10
FORM_FIELDS = (
    "code",
    "where_bought",
    "province_code",
    "city_code",
    "price_fen",
    "price",
    "purchased_on",
    "phone",
    "description",
    "idempotency_key",
)


class ReportTooLarge(AppError):
    code = "report_too_large"
    status_code = 413
    default_message = "The report is too large: at most 3 photos of 5 MiB each."


class LengthRequired(AppError):
    code = "length_required"
    status_code = 411
    default_message = "Send the report with a Content-Length header (a plain multipart form)."


def photo_store(runtime: Runtime) -> PhotoStore:
    return photo_rules.local_store(runtime.settings.data_dir)


@dataclass(frozen=True)
class ReceivedReport:
    report: reports.CounterfeitReport
    created: bool


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed(f"The field '{name}' must be text, not a file.", field=name)
    if "\x00" in value:
        raise ValidationFailed("Text must not contain the NUL character.", field=name)
    return value


def _draft(form: FormData) -> reports.ReportDraft:
    price_fen: int | None = None
    if raw_fen := _text(form, "price_fen").strip():
        if not (raw_fen.isascii() and raw_fen.isdigit()) or len(raw_fen) > 12:
            raise ValidationFailed("price_fen is a whole number of fen (1 yuan = 100 fen).", field="price")
        price_fen = int(raw_fen)
    else:
        price_fen = reports.parse_price_yuan(_text(form, "price"))
    purchased_on: date | None = None
    if raw_date := _text(form, "purchased_on").strip():
        try:
            purchased_on = date.fromisoformat(raw_date)
        except ValueError as exc:
            raise ValidationFailed("The purchase date is a date like 2026-03-08.", field="purchased_on") from exc
    return reports.ReportDraft(
        code=_text(form, "code"),
        where_bought=_text(form, "where_bought"),
        province_code=_text(form, "province_code"),
        city_code=_text(form, "city_code"),
        price_fen=price_fen,
        purchased_on=purchased_on,
        phone=_text(form, "phone"),
        description=_text(form, "description"),
    )


def _uploads(form: FormData) -> list[UploadFile]:
    files: list[UploadFile] = []
    for name, value in form.multi_items():
        if isinstance(value, str):
            if name == "photos" and value:
                raise ValidationFailed("Photos must be sent as files (multipart/form-data).", field="photos")
            continue
        if name != "photos":
            raise ValidationFailed(f"Unexpected file field '{name}'; send photos as 'photos'.", field=name)
        if not value.filename and not value.size:
            continue  # a form's empty file input
        files.append(value)
    if len(files) > MAX_PHOTOS:
        raise TooManyPhotos(count=len(files), max_photos=MAX_PHOTOS)
    return files


async def _clean_photos(files: list[UploadFile]) -> list[CleanPhoto]:
    cleaned = []
    for index, upload in enumerate(files, start=1):
        if upload.size is not None and upload.size > MAX_PHOTO_BYTES:
            raise photo_rules.PhotoTooLarge(photo=index, size_bytes=upload.size, max_bytes=MAX_PHOTO_BYTES)
        raw = await upload.read(MAX_PHOTO_BYTES + 1)
        cleaned.append(await run_in_threadpool(photo_rules.check_photo, raw, index=index))
    return cleaned


async def read_report_form(request: Request) -> FormData:
    """The multipart (or url-encoded) form of a report, refused early when it is too large."""
    length = request.headers.get("content-length")
    if length is None:
        if request.headers.get("transfer-encoding"):
            raise LengthRequired()
    elif not length.isdigit():
        raise BadRequest("The Content-Length header is not a number.")
    elif int(length) > MAX_BODY_BYTES:
        raise ReportTooLarge(size_bytes=int(length), max_bytes=MAX_BODY_BYTES)
    try:
        return await request.form(max_files=MAX_FILE_PARTS, max_fields=len(FORM_FIELDS) + 10)
    except StarletteHTTPException as exc:
        if "files" in str(exc.detail).lower():
            raise TooManyPhotos(max_photos=MAX_PHOTOS) from exc
        raise BadRequest(f"The form could not be read: {exc.detail}") from exc


async def _signed_in_consumer(request: Request, session: Any, tenant: Tenant) -> uuid.UUID | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    principal = await consumers.authenticate_consumer(session, credential.strip())
    tenancy.scope_to_tenant(session, tenant.id)
    if principal is None:
        raise Unauthenticated("The consumer sign-in is unknown or expired; sign in again or report without it.")
    if principal.tenant_id != tenant.id:
        raise PermissionDenied("This consumer sign-in belongs to another brand.")
    return principal.id


async def active_tenant(session: Any, tenant_slug: str) -> Tenant:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    return tenant


async def receive_report(
    request: Request,
    session: Any,
    runtime: Runtime,
    tenant: Tenant,
    *,
    form: FormData,
    header_key: str | None = None,
) -> ReceivedReport:
    """Check everything (fields, then photos), then record: a refusal stores nothing."""
    consumer_id = await _signed_in_consumer(request, session, tenant)
    checked = reports.check_report(_draft(form))
    client_key = reports.check_idempotency_key(header_key or _text(form, "idempotency_key"))
    cleaned = await _clean_photos(_uploads(form))
    ip = request.client.host if request.client else None
    report, created = await reports.do_submit_report(
        session,
        crypto=runtime.crypto,
        store=photo_store(runtime),
        tenant_id=tenant.id,
        checked=checked,
        photos=cleaned,
        idempotency_key=client_key or reports.natural_key(checked, cleaned, ip),
        consumer_id=consumer_id,
    )
    return ReceivedReport(report, created)


# Public submission.


class ReportReceipt(BaseModel):
    id: uuid.UUID
    reference: str = Field(description="what the consumer quotes when the brand calls back")
    status: str
    code_status: str = Field(description="known, unknown (not a code of this brand), unreadable or none")
    photo_count: int
    created_at: datetime
    is_new: bool = Field(description="false when this repeats an earlier submission (same idempotency key)")


REPORT_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["where_bought"],
                    "properties": {
                        "code": {"type": "string", "description": "the Digital Link, serial or SSCC as read"},
                        "where_bought": {"type": "string", "maxLength": reports.MAX_WHERE},
                        "province_code": {"type": "string", "description": "GB/T 2260, e.g. 440000"},
                        "city_code": {"type": "string", "description": "GB/T 2260, e.g. 440300"},
                        "price_fen": {"type": "integer", "minimum": 1, "maximum": reports.MAX_PRICE_FEN},
                        "price": {"type": "string", "description": "alternatively the price in yuan, '128.50'"},
                        "purchased_on": {"type": "string", "format": "date"},
                        "phone": {"type": "string", "description": "optional, for a call back"},
                        "description": {"type": "string", "maxLength": reports.MAX_DESCRIPTION},
                        "idempotency_key": {"type": "string", "maxLength": 64},
                        "photos": {
                            "type": "array",
                            "maxItems": MAX_PHOTOS,
                            "items": {"type": "string", "format": "binary"},
                            "description": "JPEG, PNG or WebP, at most 5 MiB each",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/api/v1/public/{tenant_slug}/counterfeit-reports",
    response_model=ReportReceipt,
    status_code=201,
    dependencies=[ReportLimit],
    openapi_extra=REPORT_FORM_SCHEMA,
    responses={200: {"description": "the same report again (repeated idempotency key)"}},
)
async def submit_report(
    tenant_slug: str, request: Request, response: Response, session: DbSession, runtime: RuntimeDep
) -> ReportReceipt:
    """Report a suspected fake (multipart form). Repeating a request with the same `Idempotency-Key`
    header (or `idempotency_key` field) returns the first report with status 200."""
    tenant = await active_tenant(session, tenant_slug)
    form = await read_report_form(request)
    try:
        received = await receive_report(
            request, session, runtime, tenant, form=form, header_key=request.headers.get("idempotency-key")
        )
    finally:
        await form.close()
    if not received.created:
        response.status_code = 200
    report = received.report
    return ReportReceipt(
        id=report.id,
        reference=report.reference,
        status=report.status,
        code_status=report.code_status,
        photo_count=report.photo_count,
        created_at=report.created_at,
        is_new=received.created,
    )


# Operators.


class ReportPhotoOut(BaseModel):
    id: uuid.UUID
    position: int
    content_type: str
    size_bytes: int
    width: int
    height: int
    url: str


class ReportOut(BaseModel):
    id: uuid.UUID
    reference: str
    status: str
    code_text: str
    code_status: str
    code_key: str | None
    code_id: int | None
    product_id: uuid.UUID | None
    where_bought: str
    province_code: str | None
    city_code: str | None
    price_fen: int | None
    purchased_on: date | None
    description: str
    phone_masked: str | None
    consumer_id: uuid.UUID | None
    photo_count: int
    created_at: datetime
    updated_at: datetime
    handled_by: str | None
    resolution_note: str
    photos: list[ReportPhotoOut] | None = None

    @classmethod
    def of(
        cls, report: reports.CounterfeitReport, photos: list[reports.CounterfeitReportPhoto] | None = None
    ) -> ReportOut:
        return cls(
            id=report.id,
            reference=report.reference,
            status=report.status,
            code_text=report.code_text,
            code_status=report.code_status,
            code_key=report.code_key,
            code_id=report.code_id,
            product_id=report.product_id,
            where_bought=report.where_bought,
            province_code=report.province_code,
            city_code=report.city_code,
            price_fen=report.price_fen,
            purchased_on=report.purchased_on,
            description=report.description,
            phone_masked=report.phone_masked,
            consumer_id=report.consumer_id,
            photo_count=report.photo_count,
            created_at=report.created_at,
            updated_at=report.updated_at,
            handled_by=report.handled_by,
            resolution_note=report.resolution_note,
            photos=None
            if photos is None
            else [
                ReportPhotoOut(
                    id=p.id,
                    position=p.position,
                    content_type=p.content_type,
                    size_bytes=p.size_bytes,
                    width=p.width,
                    height=p.height,
                    url=f"/api/v1/authenticity/reports/{report.id}/photos/{p.id}",
                )
                for p in photos
            ],
        )


class StatusChange(RequestBody):
    status: str = Field(max_length=20, description="investigating, confirmed or dismissed")
    note: str = Field(default="", max_length=reports.MAX_NOTE, description="required to confirm, dismiss or reopen")
    expected_status: str | None = Field(
        default=None, max_length=20, description="the status you saw; refused with 409 if it changed since"
    )


@router.get("/api/v1/authenticity/reports", response_model=Paged[ReportOut])
async def list_reports(
    session: DbSession,
    _: ReportsReader,
    page: PageDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    product_id: uuid.UUID | None = None,
    code_status: Annotated[str | None, Query(max_length=20)] = None,
    since: Annotated[date | None, Query(description="first day (China time), inclusive")] = None,
    until: Annotated[date | None, Query(description="last day (China time), inclusive")] = None,
) -> Paged[ReportOut]:
    if status is not None and status not in reports.STATUSES:
        raise ValidationFailed(f"Unknown status '{status}'; use one of {', '.join(reports.STATUSES)}.", field="status")
    if code_status is not None and code_status not in reports.CODE_STATUSES:
        raise ValidationFailed(
            f"Unknown code status '{code_status}'; use one of {', '.join(reports.CODE_STATUSES)}.", field="code_status"
        )
    flt = reports.ReportFilter(status, product_id, code_status, since, until)
    rows, total = await reports.list_reports(session, flt, limit=page.per_page, offset=page.offset)
    return Paged(items=[ReportOut.of(r) for r, _p in rows], total=total, page=page.page, per_page=page.per_page)


@router.get("/api/v1/authenticity/reports/{report_id}", response_model=ReportOut)
async def get_report(report_id: uuid.UUID, session: DbSession, _: ReportsReader) -> ReportOut:
    report = await reports.get_report(session, report_id)
    return ReportOut.of(report, await reports.report_photos(session, report.id))


@router.get(
    "/api/v1/authenticity/reports/{report_id}/photos/{photo_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
)
async def get_report_photo(
    report_id: uuid.UUID, photo_id: uuid.UUID, session: DbSession, _: ReportsReader, runtime: RuntimeDep
) -> Response:
    photo = await reports.get_photo(session, report_id, photo_id)
    data = await photo_store(runtime).get(photo.storage_key)
    return Response(
        data,
        media_type=photo.content_type,
        headers={
            "cache-control": "private, max-age=3600",
            "content-disposition": f'inline; filename="{photo.id}.{photo_rules.EXTENSIONS[photo.content_type]}"',
        },
    )


@router.post("/api/v1/authenticity/reports/{report_id}/status", response_model=ReportOut)
async def change_report_status(
    report_id: uuid.UUID, body: StatusChange, session: DbSession, actor: ReportsManager, origin: Origin
) -> ReportOut:
    report = await reports.do_change_status(
        session,
        actor,
        report_id,
        status=body.status,
        note=body.note,
        expected=body.expected_status,
        origin=origin,
    )
    return ReportOut.of(report)
