"""The consumer's counterfeit-report form (H5): a plain HTML form that works without JavaScript.

`GET /h5/{brand}/report?code=…` shows the form (the scan page links to it through the
`h5/_report_link.html` partial); `POST` records the report and redirects to a receipt page, or shows
the form again with the refusal next to its field and the 4xx status of the refusal.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from zhongtai.authenticity import reports
from zhongtai.authenticity.photos import MAX_PHOTO_BYTES, MAX_PHOTOS
from zhongtai.authenticity.reports_api import ReportLimit, active_tenant, read_report_form, receive_report
from zhongtai.core.errors import AppError
from zhongtai.core.models import Tenant
from zhongtai.core.web import DbSession, RuntimeDep, rate_limit
from zhongtai.kit.rendering import error_field, localize_error, render, request_locale

router = APIRouter(prefix="/h5", include_in_schema=False)

PageLimit = Depends(rate_limit("counterfeit-report-page", limit=60, period=60.0))
REFERENCE_RE = re.compile(r"^R\d{6}-[2-9A-HJ-NP-Z]{6}$")
KEPT_FIELDS = ("code", "where_bought", "province_code", "price", "purchased_on", "phone", "description")


def _form_page(
    request: Request,
    tenant: Tenant,
    form: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    locale = request_locale(request)
    provinces = [(code, reports.province_name(code, locale)) for code in reports.provinces()]
    context: dict[str, Any] = {
        "tenant": tenant,
        "form": form,
        "errors": errors or {},
        "provinces": provinces,
        "max_photos": MAX_PHOTOS,
        "max_photo_mib": MAX_PHOTO_BYTES // (1024 * 1024),
        "today": reports.china_today().isoformat(),
    }
    response = render(request, "h5/report_form.html", context, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/{tenant_slug}/report", dependencies=[PageLimit])
async def report_form(request: Request, tenant_slug: str, session: DbSession, code: str = "") -> Response:
    tenant = await active_tenant(session, tenant_slug)
    form = {"code": code[: reports.MAX_CODE_TEXT], "idempotency_key": secrets.token_urlsafe(16)}
    return _form_page(request, tenant, form)


@router.post("/{tenant_slug}/report", dependencies=[ReportLimit])
async def submit_report_form(request: Request, tenant_slug: str, session: DbSession, runtime: RuntimeDep) -> Response:
    tenant = await active_tenant(session, tenant_slug)
    try:
        form = await read_report_form(request)
    except AppError as error:
        kept = {"idempotency_key": secrets.token_urlsafe(16)}
        return _form_page(
            request, tenant, kept, errors={"photos": localize_error(request, error)}, status_code=error.status_code
        )
    try:
        received = await receive_report(request, session, runtime, tenant, form=form)
    except AppError as error:
        kept = {name: value for name in (*KEPT_FIELDS, "idempotency_key") if isinstance(value := form.get(name), str)}
        field = "photos" if error.code.startswith(("photo", "too_many_photos")) else error_field(error)
        if error.status_code >= 500:
            raise
        # Every refusal comes before the first write (see `receive_report`): nothing to roll back.
        return _form_page(
            request, tenant, kept, errors={field: localize_error(request, error)}, status_code=error.status_code
        )
    finally:
        await form.close()
    return RedirectResponse(f"/h5/{tenant.slug}/report/done?ref={received.report.reference}", status_code=303)


@router.get("/{tenant_slug}/report/done", dependencies=[PageLimit])
async def report_done(request: Request, tenant_slug: str, session: DbSession, ref: str = "") -> Response:
    tenant = await active_tenant(session, tenant_slug)
    reference = ref if REFERENCE_RE.match(ref) else ""
    return render(request, "h5/report_done.html", {"tenant": tenant, "reference": reference})
