"""Template rendering shared by console pages: locale, translation, the signed-in operator, navigation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from zhongtai.core import permissions as perms
from zhongtai.core.principals import Principal
from zhongtai.i18n import LOCALE_COOKIE, pick_locale, translate

TEMPLATE_DIRS = [Path(__file__).parent / "templates", Path(__file__).parent.parent / "h5" / "templates"]
templates = Jinja2Templates(directory=TEMPLATE_DIRS)


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    icon: str
    permission: str | None = None
    platform_only: bool = False


# Later modules append their entries (products, code batches, channel, members, sales …).
NAV: list[NavItem] = [
    NavItem("/console", "Home", "home"),
    NavItem("/console/users", "Users", "users", perms.USERS_READ),
    NavItem("/console/tokens", "API tokens", "key", perms.TOKENS_READ),
    NavItem("/console/consumers", "Consumers", "user", perms.CONSUMERS_READ),
    NavItem("/console/audit", "Audit log", "list", perms.AUDIT_READ),
    NavItem("/console/jobs", "Jobs", "cog", perms.JOBS_READ),
    NavItem("/console/platform/tenants", "Tenants", "building", perms.PLATFORM_TENANTS, platform_only=True),
]


def request_locale(request: Request) -> str:
    cached: str | None = getattr(request.state, "locale", None)
    if cached:
        return cached
    runtime = request.app.state.runtime
    locale = pick_locale(
        request.cookies.get(LOCALE_COOKIE),
        request.headers.get("accept-language"),
        runtime.settings.default_locale,
    )
    request.state.locale = locale
    return locale


def format_time(value: datetime | None, locale: str) -> str:
    if value is None:
        return "—"
    local = value.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S")


def page_url(request: Request, **changes: Any) -> str:
    params = dict(request.query_params)
    params.update({k: v for k, v in changes.items() if v is not None})
    return f"{request.url.path}?{urlencode(params)}"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    principal: Principal | None = None,
) -> HTMLResponse:
    locale = request_locale(request)
    principal = principal or getattr(request.state, "principal", None)
    nav = [
        item
        for item in NAV
        if principal is not None
        and (item.permission is None or principal.can(item.permission))
        and (not item.platform_only or principal.is_platform)
    ]
    ctx: dict[str, Any] = {
        "request": request,
        "_": partial(translate, locale),
        "locale": locale,
        "principal": principal,
        "csrf_token": principal.csrf_token if principal else None,
        "nav": nav,
        "current_path": request.url.path,
        "fmt_time": partial(format_time, locale=locale),
        "page_url": partial(page_url, request),
        "settings": request.app.state.runtime.settings,
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, template, ctx, status_code=status_code)
