"""Console shell: sign-in and sign-out, language, the home dashboard, and error pages."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from zhongtai.console import admin_pages, ops_pages
from zhongtai.core import jobs, signin
from zhongtai.core import permissions as perms
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import constant_time_equals
from zhongtai.core.errors import AppError, CsrfFailed, RateLimited, Unauthenticated
from zhongtai.core.principals import PrincipalKind
from zhongtai.core.web import DbSession, MaybePrincipal, Origin, RuntimeDep
from zhongtai.i18n import LOCALE_COOKIE, LOCALES
from zhongtai.kit.home import Window, home_sections
from zhongtai.kit.page_deps import ConsoleOperator, console_operator, require_page
from zhongtai.kit.rendering import localize_error, render, tr

router = APIRouter(prefix="/console", include_in_schema=False)

LOGIN_CSRF_COOKIE = "zt_login_csrf"

__all__ = ["ConsoleOperator", "console_operator", "render_error_page", "require_page", "router"]


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/console") and not value.startswith("//"):
        return value
    return "/console"


async def render_error_page(request: Request, error: AppError) -> Response:
    if isinstance(error, Unauthenticated) and request.url.path.startswith("/console"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
    return render(
        request,
        "console/error.html",
        {"error": error, "message": localize_error(request, error)},
        status_code=error.status_code,
    )


@router.get("/login")
async def login_page(request: Request, principal: MaybePrincipal, next: str | None = None) -> Response:
    if principal is not None and principal.kind is PrincipalKind.OPERATOR:
        return RedirectResponse(_safe_next(next), status_code=303)
    token = secrets.token_urlsafe(24)
    response = render(request, "console/login.html", {"next": _safe_next(next), "login_csrf": token, "error": None})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console/login")
    return response


@router.post("/login")
async def login_submit(
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    origin: Origin,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=500)] = "/console",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not constant_time_equals(expected, csrf_token):
        raise CsrfFailed()
    try:
        signed = await signin.do_login(
            session,
            runtime.limiter,
            runtime.crypto.secret_key,
            email=email,
            password=password,
            origin=origin,
            session_hours=runtime.settings.session_hours,
        )
    except AppError as exc:
        if exc.status_code not in (401, 429):
            raise
        token = secrets.token_urlsafe(24)
        response: Response = render(
            request,
            "console/login.html",
            {
                "next": _safe_next(next),
                "login_csrf": token,
                "email": email,
                "error": localize_error(request, exc),
            },
            status_code=exc.status_code,
        )
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console/login")
        if isinstance(exc, RateLimited):
            response.headers["retry-after"] = str(exc.retry_after)
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        signin.SESSION_COOKIE,
        signed.cookie_value,
        max_age=signed.max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=bool(runtime.settings.cookie_secure),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(session: DbSession, principal: ConsoleOperator, origin: Origin) -> Response:
    await signin.do_logout(session, principal, origin)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(signin.SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{locale}")
async def switch_language(locale: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if locale in LOCALES:
        response.set_cookie(LOCALE_COOKIE, locale, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("")
async def home(request: Request, session: DbSession, principal: ConsoleOperator) -> Response:
    """Today and the last 30 days of every module the operator may read (kit.home), charted."""
    window = Window.ending(utcnow())
    sections = await home_sections(session, principal, window)
    job_counts = await jobs.status_counts(session) if principal.can(perms.JOBS_READ) else None
    chart_data = {
        section.key: {
            "days": [day.strftime("%m-%d") for day in window.days],
            "series": [
                {"name": tr(request, s.label), "data": [v / 100 for v in s.values] if s.money else s.values}
                for s in section.series
            ],
        }
        for section in sections
        if section.series
    }
    return render(
        request,
        "console/home.html",
        {"sections": sections, "window": window, "chart_data": chart_data, "job_counts": job_counts},
    )


router.include_router(admin_pages.router)
router.include_router(ops_pages.router)
