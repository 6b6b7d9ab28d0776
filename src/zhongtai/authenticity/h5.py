"""The resolver at the root and the consumer's scan page.

`GET /01/{gtin}/21/{serial}`, `/01/{gtin}/10/{lot}/21/{serial}` and `/00/{sscc}` answer by content
negotiation: a browser gets the H5 page, `Accept: application/json` the code's public data,
`?linkType=all` the GS1 linkset (RFC 9264, `application/linkset+json`), `?linkType=gs1:…` a redirect to
that link. The legacy short URLs `/s/{serial}` and `/c/{serial}` redirect to the Digital Link. Unknown,
malformed and foreign codes get a 404/400 page or JSON. The page's PIN form posts to the same address
and works without JavaScript; with it, `static/scan.js` posts to the JSON API and asks the browser for
its location first.

Other modules add panels to the page (reward box, member sign-up) with `zhongtai.kit.panels` in the
slot `authenticity.panels.SCAN_PAGE`; a panel renders only when its provider answers with HTML.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import api, hot, resolver, service, verification
from zhongtai.authenticity import models as m
from zhongtai.authenticity.panels import SCAN_PAGE, PanelContext
from zhongtai.authenticity.resolver import Resolved
from zhongtai.codes import rules as code_rules
from zhongtai.codes.errors import UnreadableCodeError
from zhongtai.core.errors import AppError
from zhongtai.core.web import DbSession, RuntimeDep, writes_on_get
from zhongtai.i18n import LOCALE_COOKIE, LOCALES, translate
from zhongtai.kit.panels import render_panels
from zhongtai.kit.rendering import render, request_locale

router = APIRouter(include_in_schema=False, dependencies=[Depends(api.scan_rate_limit)])

LINKSET_TYPE = "application/linkset+json"
GS1_VOC = "https://gs1.org/voc/"
CLIENT_COOKIE_DAYS = 365


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return ("application/json" in accept or LINKSET_TYPE in accept) and "text/html" not in accept


def _apply_lang(request: Request) -> str | None:
    """`?lang=en` or `?lang=zh-CN` switches the page's language (kept in a cookie)."""
    lang = request.query_params.get("lang")
    if lang in LOCALES:
        request.state.locale = lang
        return lang
    return None


def _finish(request: Request, response: Response) -> Response:
    lang = _apply_lang(request)
    if lang:
        response.set_cookie(LOCALE_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    if verification.CLIENT_COOKIE not in request.cookies:
        response.set_cookie(
            verification.CLIENT_COOKIE,
            secrets.token_urlsafe(16),
            max_age=CLIENT_COOKIE_DAYS * 86400,
            samesite="lax",
            httponly=True,
            path="/",
        )
    return response


def _error_page(request: Request, error: AppError) -> Response:
    _apply_lang(request)
    if _wants_json(request):
        return JSONResponse(error.to_dict(), status_code=error.status_code)
    return render(request, "authenticity/h5/scan_error.html", {"error": error}, status_code=error.status_code)


def _links(request: Request, resolved: Resolved) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    page = base + resolved.path
    return {
        "pip": page,
        "verificationService": f"{base}/api/v1/authenticity/verify",
        "traceability": f"{base}/h5/{resolved.tenant.slug}/trace-data?code={quote(resolved.uri, safe='')}",
        "defaultLink": page,
    }


LINK_TITLES = {
    "pip": "Product information and authenticity",
    "verificationService": "Verify with the hidden PIN (POST JSON: code, pin)",
    "traceability": "Trace with log proofs",
    "defaultLink": "Product information and authenticity",
}
LINK_MEDIA = {
    "pip": "text/html",
    "verificationService": "application/json",
    "traceability": "application/json",
    "defaultLink": "text/html",
}


def linkset(request: Request, resolved: Resolved) -> dict[str, Any]:
    """RFC 9264 linkset of the code with GS1 link types (https://gs1.org/voc/…)."""
    links = _links(request, resolved)
    entry: dict[str, Any] = {"anchor": resolved.uri, "itemDescription": resolved.batch.product_name}
    for name, href in links.items():
        entry[GS1_VOC + name] = [
            {"href": href, "title": LINK_TITLES[name], "type": LINK_MEDIA[name], "hreflang": ["zh-CN", "en"]}
        ]
    return {"linkset": [entry]}


def code_json(request: Request, resolved: Resolved, counts: service.ViewCounts) -> dict[str, Any]:
    return {
        "code": api.code_out(resolved).model_dump(),
        "product": api.product_out(resolved).model_dump(),
        "lot": resolved.lot_number,
        "brand": {"slug": resolved.tenant.slug, "name": resolved.tenant.name},
        "scans": {
            "views": counts.view_count,
            "verifications": counts.verify_count,
            "first_verified_at": counts.first_verified_at.isoformat() if counts.first_verified_at else None,
            "first_verified_city": counts.first_city_name,
        },
        "links": _links(request, resolved),
    }


async def _resolve(session: AsyncSession, text: str) -> Resolved:
    return await resolver.resolve(session, resolver.parse(text))


async def _page(
    request: Request,
    resolved: Resolved,
    counts: service.ViewCounts | None,
    answer: verification.Answer | None = None,
    contact: str = "",
    status_code: int = 200,
    form_error: str | None = None,
) -> Response:
    _apply_lang(request)
    locale = request_locale(request)
    context = {
        "form_error": form_error,
        "tenant": resolved.tenant,
        "code": resolved.uri,
        "resolved": resolved,
        "counts": counts,
        "answer": answer,
        "answer_title": translate(locale, api.VERDICT_TITLES[answer.verdict]) if answer else None,
        "answer_text": api.answer_text(answer, locale) if answer else None,
        "contact": contact,
        "first_time": api.local_time(counts.first_verified_at, locale) if counts and counts.first_verified_at else None,
        "panels": await render_panels(SCAN_PAGE, PanelContext(request, resolved, answer)),
        "lang_links": {lang: f"{resolved.path}?lang={lang}" for lang in LOCALES},
        "messages": json.dumps(_script_messages(locale), ensure_ascii=False),
    }
    return _finish(request, render(request, "authenticity/h5/scan.html", context, status_code=status_code))


def _script_messages(locale: str) -> dict[str, str]:
    return {
        key: translate(locale, text)
        for key, text in {
            "checking": "Checking…",
            "network": "The network is not available. Try again.",
            "locating": "Asking for your location…",
        }.items()
    }


async def _serve(request: Request, session: AsyncSession, runtime: Any, text: str) -> Response:
    try:
        resolved = await _resolve(session, text)
    except AppError as error:
        return _error_page(request, error)
    link_type = request.query_params.get("linkType")
    if link_type == "all":
        return JSONResponse(linkset(request, resolved), media_type=LINKSET_TYPE)
    if link_type:
        name = link_type.removeprefix("gs1:").removeprefix(GS1_VOC)
        target = _links(request, resolved).get(name, _links(request, resolved)["defaultLink"])
        return RedirectResponse(target, status_code=307)
    if request.query_params.get("part") == "panels":
        return await _panels_fragment(request, resolved)
    ctx = verification.check_context(request, runtime)
    counts = await service.do_record_view(session, resolved.ref, ctx)
    if hot.enabled(runtime):  # verifications are counted in Redis first (hot.py)
        counts = await hot.overlay(runtime, resolved.ref.code_id, counts) or counts
    if _wants_json(request):
        return _finish(request, JSONResponse(code_json(request, resolved, counts)))
    return await _page(request, resolved, counts)


async def _panels_fragment(request: Request, resolved: Resolved) -> Response:
    """`?part=panels`: the page's panels alone (HTML, not a view of the code) — what the page's script
    fetches after a PIN check, so that a red packet the check earned shows without a reload (on
    PostgreSQL + Redis it is granted a moment later by the scan stream worker)."""
    _apply_lang(request)
    html = "".join(await render_panels(SCAN_PAGE, PanelContext(request, resolved, None)))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _checked(gtin: str | None, serial: str | None, sscc: str | None, lot: str | None = None) -> str:
    return resolver.check_path_code(gtin, serial, sscc, lot)


async def _serve_path(
    request: Request, session: AsyncSession, runtime: Any, gtin: str | None, serial: str | None, sscc: str | None
) -> Response:
    try:
        text = _checked(gtin, serial, sscc)
    except AppError as error:
        return _error_page(request, error)
    return await _serve(request, session, runtime, text)


@router.get("/01/{gtin}/21/{serial}")
@writes_on_get
async def item_page(request: Request, gtin: str, serial: str, session: DbSession, runtime: RuntimeDep) -> Response:
    return await _serve_path(request, session, runtime, gtin, serial, None)


@router.get("/01/{gtin}/10/{lot}/21/{serial}")
@writes_on_get
async def item_lot_page(
    request: Request, gtin: str, lot: str, serial: str, session: DbSession, runtime: RuntimeDep
) -> Response:
    return await _serve_path(request, session, runtime, gtin, serial, None)


@router.get("/00/{sscc}")
@writes_on_get
async def sscc_page(request: Request, sscc: str, session: DbSession, runtime: RuntimeDep) -> Response:
    return await _serve_path(request, session, runtime, None, None, sscc)


@router.get("/s/{serial}")
@router.get("/c/{serial}")
async def short_link(request: Request, serial: str, session: DbSession) -> Response:
    """Legacy short URLs: a permanent redirect to the code's Digital Link on this resolver."""
    try:
        if not code_rules.SERIAL_RE.match(serial.upper()):
            raise UnreadableCodeError("A short link carries a 16-character serial.")
        resolved = await _resolve(session, serial)
    except AppError as error:
        return _error_page(request, error)
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(resolved.path + query, status_code=301)


@router.get("/01/{rest:path}")
@router.get("/00/{rest:path}")
async def unreadable_link(request: Request, rest: str) -> Response:
    """Any other path under a GS1 key: not a code this resolver can name."""
    return _error_page(
        request, UnreadableCodeError("The link names no serialised item (AI 21) or logistic unit (AI 00).")
    )


Coordinate = Annotated[str, Form(max_length=40)]


def _number(value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise verification.InvalidLocation("The location is not a number.") from exc


async def _verify_form(
    request: Request, session: AsyncSession, runtime: Any, text: str, pin: str, lat: str, lon: str, acc: str
) -> Response:
    try:
        resolved = await _resolve(session, text)
    except AppError as error:
        return _error_page(request, error)
    try:
        answer, contact = await api.check(
            request,
            session,
            runtime,
            resolved,
            pin,
            latitude=_number(lat),
            longitude=_number(lon),
            accuracy=_number(acc),
        )
    except AppError as error:
        counts = await _current_counts(runtime, session, resolved)
        message = translate(request_locale(request), error.message)
        return await _page(request, resolved, counts, status_code=error.status_code, form_error=message)
    counts = await _current_counts(runtime, session, resolved)
    status = 429 if answer.verdict == m.LOCKED else 200
    return await _page(request, resolved, counts, answer, contact, status_code=status)


async def _current_counts(runtime: Any, session: AsyncSession, resolved: Resolved) -> service.ViewCounts | None:
    counts = _counts_of(await service.summary_of(session, resolved.ref.code_id))
    if hot.enabled(runtime):
        counts = await hot.overlay(runtime, resolved.ref.code_id, counts)
    return counts


def _counts_of(summary: m.CodeSummary | None) -> service.ViewCounts | None:
    if summary is None:
        return None
    return service.ViewCounts(
        0,
        summary.view_count,
        summary.verify_count,
        summary.first_verified_at,
        summary.first_city_name,
        summary.suspicious_reason,
    )


@router.post("/01/{gtin}/21/{serial}")
async def item_verify_form(
    request: Request,
    gtin: str,
    serial: str,
    session: DbSession,
    runtime: RuntimeDep,
    pin: Annotated[str, Form(max_length=20)],
    latitude: Coordinate = "",
    longitude: Coordinate = "",
    accuracy: Coordinate = "",
) -> Response:
    try:
        text = _checked(gtin, serial, None)
    except AppError as error:
        return _error_page(request, error)
    return await _verify_form(request, session, runtime, text, pin, latitude, longitude, accuracy)


@router.post("/01/{gtin}/10/{lot}/21/{serial}")
async def item_lot_verify_form(
    request: Request,
    gtin: str,
    lot: str,
    serial: str,
    session: DbSession,
    runtime: RuntimeDep,
    pin: Annotated[str, Form(max_length=20)],
    latitude: Coordinate = "",
    longitude: Coordinate = "",
    accuracy: Coordinate = "",
) -> Response:
    try:
        text = _checked(gtin, serial, None)
    except AppError as error:
        return _error_page(request, error)
    return await _verify_form(request, session, runtime, text, pin, latitude, longitude, accuracy)
