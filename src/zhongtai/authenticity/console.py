"""Console pages of authenticity: the counterfeit-report queue and a report's triage page (with the
code's scans beside it), scan statistics with a server-rendered chart, the clone-alert queue and an
alert's evidence and triage, and a code's full scan history.

Photos are shown from the operators' API (`/api/v1/authenticity/reports/…/photos/…`), which accepts
the console session for GET and checks the same permission.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import models as am
from zhongtai.authenticity import reports, stats, triage
from zhongtai.authenticity import service as scans_service
from zhongtai.authenticity.permissions import AUTHENTICITY_MANAGE, AUTHENTICITY_READ
from zhongtai.catalog import service as catalog_service
from zhongtai.catalog.rules import display_gtin
from zhongtai.codes import service as codes_service
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import (
    PER_PAGE,
    error_field,
    localize_error,
    redirect_with_flash,
    render,
    request_locale,
    tr,
)

router = APIRouter(prefix="/console/authenticity", include_in_schema=False)

ReportsReader = Annotated[Principal, require_page(reports.REPORTS_READ)]
ReportsManager = Annotated[Principal, require_page(reports.REPORTS_MANAGE)]
ScansReader = Annotated[Principal, require_page(AUTHENTICITY_READ)]
AlertsManager = Annotated[Principal, require_page(AUTHENTICITY_MANAGE)]

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
ALERT_STATUS_LABELS = {
    am.ALERT_OPEN: "Open",
    am.ALERT_INVESTIGATING: "Investigating",
    am.ALERT_CONFIRMED: "Confirmed clone",
    am.ALERT_DISMISSED: "Dismissed",
}
ALERT_ACTION_LABELS = {
    am.ALERT_INVESTIGATING: "Start investigating",
    am.ALERT_CONFIRMED: "Confirm the clone",
    am.ALERT_DISMISSED: "Dismiss",
}
KIND_LABELS = {am.KIND_VIEW: "Opened the page", am.KIND_PIN_OK: "PIN verified", am.KIND_PIN_BAD: "Wrong PIN"}
VERDICT_LABELS = {
    am.GENUINE: "Genuine",
    am.VERIFIED_BEFORE: "Verified before",
    am.SUSPICIOUS: "Suspicious",
    am.WRONG_PIN: "Wrong PIN",
    am.LOCKED: "Locked",
}
REASON_LABELS = {
    am.REASON_NOT_COMMISSIONED: "never commissioned",
    am.REASON_VOIDED: "voided",
    am.REASON_TOO_MANY: "too many verifications",
    am.REASON_CLONE: "seen at distant places",
}
SCANS_BESIDE_REPORT = 20
SCANS_PER_PAGE = 50
DEFAULT_STATS_DAYS = 30


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
    scans = None
    scan_total = 0
    if report.code_id is not None and principal.can(AUTHENTICITY_READ):
        scans = await scans_service.scan_history(session, report.code_id, limit=SCANS_BESIDE_REPORT)
        scan_total = await scans_service.count_scans(session, report.code_id)
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
            "city_name": reports.city_name(report.city_code),
            "display_gtin": display_gtin,
            "form": form or {"note": ""},
            "errors": errors or {},
            "scans": scans,
            "scan_total": scan_total,
            "scan_code": report.code_key,
            **_scan_labels(request),
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


# Scans: the labels every scan table uses.


def _scan_labels(request: Request) -> dict[str, object]:
    locale = request_locale(request)

    def place(province_code: str | None, city_name: str | None) -> str:
        names = [reports.province_name(province_code, locale), city_name or ""]
        return " · ".join(name for name in names if name) or "—"

    def coordinates(latitude: float | None, longitude: float | None) -> str:
        if latitude is None or longitude is None:
            return ""
        return f"{latitude:.2f}, {longitude:.2f}"

    return {
        "kind_labels": KIND_LABELS,
        "verdict_labels": VERDICT_LABELS,
        "reason_labels": REASON_LABELS,
        "place": place,
        "coordinates": coordinates,
    }


@router.get("/scans")
async def code_scans_page(
    request: Request, session: DbSession, _: ScansReader, code: str = "", before: int | None = None
) -> Response:
    """A code's full scan history, newest first, 50 at a time (`before` = the last scan id shown)."""
    context: dict[str, object] = {"code": code[:300], "view": None, "error": None, **_scan_labels(request)}
    if code.strip():
        try:
            view = await codes_service.lookup(session, code)
        except AppError as exc:
            context["error"] = localize_error(request, exc)
        else:
            scans = await scans_service.scan_history(session, view.code.id, limit=SCANS_PER_PAGE, before_id=before)
            context |= {
                "view": view,
                "scans": scans,
                "scan_total": await scans_service.count_scans(session, view.code.id),
                "summary": await scans_service.summary_of(session, view.code.id),
                "next_before": scans[-1].id if len(scans) == SCANS_PER_PAGE else None,
                "reports": await reports.reports_of_code(session, view.code.id),
                "display_gtin": display_gtin,
            }
    return render(request, "console/authenticity/scans.html", context)


# Statistics.


@router.get("/stats")
async def stats_page(
    request: Request, session: DbSession, _: ScansReader, since: str = "", until: str = "", product_id: str = ""
) -> Response:
    today = reports.china_today()
    last = _date_or_none(until) or today
    first = _date_or_none(since) or last - timedelta(days=DEFAULT_STATS_DAYS - 1)
    error = None
    if first > last:
        error = tr(request, "The first day is after the last day.")
        first = last - timedelta(days=DEFAULT_STATS_DAYS - 1)
    if (last - first).days >= stats.MAX_DAYS:
        error = tr(request, "Choose at most 366 days.")
        first = last - timedelta(days=stats.MAX_DAYS - 1)
    chosen_product = _uuid_or_none(product_id)
    result = await stats.scan_stats(session, since=first, until=last, product_id=chosen_product)
    products, _count = await catalog_service.list_products(session, limit=PRODUCT_CHOICES, offset=0)
    locale = request_locale(request)
    return render(
        request,
        "console/authenticity/stats.html",
        {
            "stats": result,
            "chart": stats.day_chart(result.days, title=tr(request, "Checks per day")),
            "since": first.isoformat(),
            "until": last.isoformat(),
            "product_id": str(chosen_product) if chosen_product else "",
            "products": products,
            "error": error,
            "province_name": lambda code: reports.province_name(code, locale) if code else tr(request, "Unknown place"),
            "display_gtin": display_gtin,
        },
    )


# Clone alerts.


@router.get("/alerts")
async def alerts_page(
    request: Request, session: DbSession, _: ScansReader, status: str = "", page: int = 1
) -> Response:
    page = _page_number(page)
    chosen = status if status in am.ALERT_STATUSES else None
    rows, total, counts = await triage.list_alerts(session, status=chosen, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(
        request,
        "console/authenticity/alerts.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "status": chosen or "",
            "counts": counts,
            "all_count": sum(counts.values()),
            "alert_status_labels": ALERT_STATUS_LABELS,
        },
    )


async def _alert_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    alert_id: uuid.UUID,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    alert = await triage.get_alert(session, alert_id)
    first, second = await triage.alert_scans(session, alert)
    actions = [
        (target, REOPEN_LABEL if alert.status in triage.ALERT_CLOSED else ALERT_ACTION_LABELS[target])
        for target in (am.ALERT_INVESTIGATING, am.ALERT_CONFIRMED, am.ALERT_DISMISSED)
        if target in triage.ALERT_TRANSITIONS[alert.status]
    ]
    return render(
        request,
        "console/authenticity/alert.html",
        {
            "alert": alert,
            "first": first,
            "second": second,
            "evidence": alert.evidence or {},
            "hours_between": alert.seconds_between / 3600,
            "history": await triage.alert_history(session, alert.id),
            "actions": actions if principal.can(AUTHENTICITY_MANAGE) else [],
            "alert_status_labels": ALERT_STATUS_LABELS,
            "form": form or {"note": ""},
            "errors": errors or {},
            **_scan_labels(request),
        },
        status_code=status_code,
    )


@router.get("/alerts/{alert_id}")
async def alert_page(request: Request, session: DbSession, principal: ScansReader, alert_id: uuid.UUID) -> Response:
    return await _alert_page(request, session, principal, alert_id)


@router.post("/alerts/{alert_id}/status")
async def change_alert_status(
    request: Request,
    session: DbSession,
    principal: AlertsManager,
    origin: Origin,
    alert_id: uuid.UUID,
    status: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=triage.MAX_ALERT_NOTE)] = "",
    expected: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        alert = await triage.do_triage_alert(
            session, principal, alert_id, status=status, note=note, expected=expected or None, origin=origin
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        errors = {"note" if error_field(exc) == "note" else "_form": localize_error(request, exc)}
        return await _alert_page(
            request, session, principal, alert_id, form={"note": note}, errors=errors, status_code=exc.status_code
        )
    message = tr(
        request,
        "The alert on {serial} is now: {status}.",
        serial=alert.serial,
        status=tr(request, ALERT_STATUS_LABELS[alert.status]),
    )
    return redirect_with_flash(request, f"/console/authenticity/alerts/{alert_id}", message)
