"""Console pages of authenticity: the counterfeit-report queue and a report's triage page.

Photos are shown from the operators' API (`/api/v1/authenticity/reports/…/photos/…`), which accepts
the console session for GET and checks the same permission.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import reports
from zhongtai.catalog import service as catalog_service
from zhongtai.catalog.rules import display_gtin
from zhongtai.console.deps import require_page
from zhongtai.console.rendering import (
    PER_PAGE,
    error_field,
    localize_error,
    redirect_with_flash,
    render,
    request_locale,
    tr,
)
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin

router = APIRouter(prefix="/console/authenticity", include_in_schema=False)

ReportsReader = Annotated[Principal, require_page(reports.REPORTS_READ)]
ReportsManager = Annotated[Principal, require_page(reports.REPORTS_MANAGE)]

STATUS_LABELS = {
    reports.NEW: "New",
    reports.INVESTIGATING: "Investigating",
    reports.CONFIRMED: "Confirmed fake",
    reports.DISMISSED: "Dismissed",
}
ACTION_LABELS = {
    reports.INVESTIGATING: "Start investigating",
    reports.CONFIRMED: "Confirm as fake",
    reports.DISMISSED: "Dismiss",
}
REOPEN_LABEL = "Reopen"
CODE_STATUS_LABELS = {
    reports.CODE_KNOWN: "Code of this brand",
    reports.CODE_UNKNOWN: "Unknown code",
    reports.CODE_UNREADABLE: "Unreadable code",
    reports.CODE_NONE: "No code",
}
PRODUCT_CHOICES = 1_000


def _page_number(value: int) -> int:
    return max(1, min(value, 100_000))


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _date_or_none(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def yuan(fen: int | None) -> str:
    if fen is None:
        return "—"
    return f"¥{fen // 100:,}.{fen % 100:02d}"


@router.get("")
async def authenticity_home(_: ReportsReader) -> Response:
    return RedirectResponse("/console/authenticity/reports", status_code=303)


@router.get("/reports")
async def reports_page(
    request: Request,
    session: DbSession,
    _: ReportsReader,
    status: str = "",
    product_id: str = "",
    code_status: str = "",
    since: str = "",
    until: str = "",
    page: int = 1,
) -> Response:
    page = _page_number(page)
    flt = reports.ReportFilter(
        status=status if status in reports.STATUSES else None,
        product_id=_uuid_or_none(product_id),
        code_status=code_status if code_status in reports.CODE_STATUSES else None,
        since=_date_or_none(since),
        until=_date_or_none(until),
    )
    rows, total = await reports.list_reports(session, flt, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    counts = await reports.status_counts(session)
    products, _count = await catalog_service.list_products(session, limit=PRODUCT_CHOICES, offset=0)
    return render(
        request,
        "console/authenticity/reports.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "counts": counts,
            "all_count": sum(counts.values()),
            "products": products,
            "flt": flt,
            "filter_form": {
                "status": flt.status or "",
                "product_id": str(flt.product_id) if flt.product_id else "",
                "code_status": flt.code_status or "",
                "since": flt.since.isoformat() if flt.since else "",
                "until": flt.until.isoformat() if flt.until else "",
            },
            "status_labels": STATUS_LABELS,
            "code_status_labels": CODE_STATUS_LABELS,
            "yuan": yuan,
            "province_name": lambda code: reports.province_name(code, request_locale(request)),
            "display_gtin": display_gtin,
        },
    )


async def _report_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    report_id: uuid.UUID,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    report = await reports.get_report(session, report_id)
    photos = await reports.report_photos(session, report.id)
    product = await reports.report_product(session, report)
    history = await reports.report_history(session, report.id)
    actions = [
        (target, REOPEN_LABEL if report.status in reports.CLOSED else ACTION_LABELS[target])
        for target in (reports.INVESTIGATING, reports.CONFIRMED, reports.DISMISSED)
        if target in reports.TRANSITIONS[report.status]
    ]
    return render(
        request,
        "console/authenticity/report.html",
        {
            "report": report,
            "photos": photos,
            "product": product,
            "history": history,
            "actions": actions if principal.can(reports.REPORTS_MANAGE) else [],
            "status_labels": STATUS_LABELS,
            "code_status_labels": CODE_STATUS_LABELS,
            "yuan": yuan,
            "province_name": reports.province_name(report.province_code, request_locale(request)),
            "display_gtin": display_gtin,
            "form": form or {"note": ""},
            "errors": errors or {},
            "scans": None,
        },
        status_code=status_code,
    )


@router.get("/reports/{report_id}")
async def report_page(request: Request, session: DbSession, principal: ReportsReader, report_id: uuid.UUID) -> Response:
    return await _report_page(request, session, principal, report_id)


@router.post("/reports/{report_id}/status")
async def change_status(
    request: Request,
    session: DbSession,
    principal: ReportsManager,
    origin: Origin,
    report_id: uuid.UUID,
    status: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=reports.MAX_NOTE)] = "",
    expected: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        report = await reports.do_change_status(
            session, principal, report_id, status=status, note=note, expected=expected or None, origin=origin
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        field = error_field(exc)
        errors = {"note" if field == "note" else "_form": localize_error(request, exc)}
        return await _report_page(
            request, session, principal, report_id, form={"note": note}, errors=errors, status_code=exc.status_code
        )
    message = tr(
        request,
        "Report {reference} is now: {status}.",
        reference=report.reference,
        status=tr(request, STATUS_LABELS[report.status]),
    )
    return redirect_with_flash(request, f"/console/authenticity/reports/{report_id}", message)
