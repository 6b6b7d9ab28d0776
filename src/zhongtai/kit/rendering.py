"""Page rendering shared by every console and H5 page (the kit, below every domain): locale,
translation, the signed-in operator, navigation, flash messages after POST-redirect-GET, and
operator-facing wording of service errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from zhongtai.core import permissions as perms
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.i18n import LOCALE_COOKIE, catalog, pick_locale, translate

PACKAGE_DIR = Path(__file__).parent.parent
# The console's and H5's shared layouts first, then each domain's own `templates/` folder (pages live
# inside their domain; see docs/adr/0012).
DOMAIN_TEMPLATE_DIRS = sorted(
    path for path in PACKAGE_DIR.glob("*/templates") if path.is_dir() and path.parent.name not in ("console", "h5")
)
TEMPLATE_DIRS = [PACKAGE_DIR / "console" / "templates", PACKAGE_DIR / "h5" / "templates", *DOMAIN_TEMPLATE_DIRS]
templates = Jinja2Templates(directory=TEMPLATE_DIRS)

FLASH_COOKIE = "zt_flash"
FLASH_MAX_AGE_SECONDS = 60
PER_PAGE = 20


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    icon: str
    permission: str | None = None
    platform_only: bool = False
    group: str = ""  # a key of NAV_GROUPS; "" stands alone at the top (Home)


# The menu's areas, in menu order: each shows as a collapsible heading, open on the current page's area.
NAV_GROUPS: dict[str, str] = {
    "codes": "Codes and trace",
    "authenticity": "Authenticity",
    "channel": "Channel",
    "rewards": "Rewards",
    "members": "Consumers and members",
    "sales": "Sales",
    "settings": "Settings",
}


# Later modules append their entries (products, code batches, channel, members, sales …).
NAV: list[NavItem] = [
    NavItem("/console", "Home", "home"),
    NavItem("/console/users", "Users", "users", perms.USERS_READ, group="settings"),
    NavItem("/console/tokens", "API tokens", "key", perms.TOKENS_READ, group="settings"),
    NavItem("/console/consumers", "Consumers", "user", perms.CONSUMERS_READ, group="members"),
    NavItem("/console/audit", "Audit log", "list", perms.AUDIT_READ, group="settings"),
    NavItem("/console/jobs", "Jobs", "cog", perms.JOBS_READ, group="settings"),
    NavItem(
        "/console/platform/tenants", "Tenants", "building", perms.PLATFORM_TENANTS, platform_only=True, group="settings"
    ),
    NavItem("/console/catalog/products", "Products", "box", "catalog.read", group="codes"),
    NavItem("/console/catalog/import", "Import products", "upload", "catalog.write", group="codes"),
    NavItem("/console/codes/batches", "Code batches", "qr", "codes.read", group="codes"),
    NavItem("/console/codes/lookup", "Code lookup", "search", "codes.read", group="codes"),
    NavItem("/console/codes/settings", "Code settings", "cog", "codes.settings", group="settings"),
    NavItem("/console/trace", "Trace", "truck", "trace.read", group="codes"),
    NavItem("/console/channel/dealers", "Dealers", "building", "channel.read", group="channel"),
    NavItem("/console/channel/stores", "Stores", "store", "channel.read", group="channel"),
    NavItem("/console/channel/guides", "Shopping guides", "users", "channel.read", group="channel"),
    NavItem("/console/channel/map", "Channel map", "globe", "channel.read", group="channel"),
    NavItem("/console/channel/diversion", "Diversion alerts", "alert", "channel.read", group="channel"),
    NavItem("/console/members", "Members", "users", "members.read", group="members"),
    NavItem("/console/members/duplicates", "Duplicate review", "copy", "members.read", group="members"),
    NavItem("/console/members/segments", "Segments and lifecycle", "chart", "members.segments.read", group="members"),
    NavItem("/console/members/identities", "Verified members", "user", "members.read", group="members"),
    NavItem("/console/members/import", "Import members", "upload", "members.import", group="members"),
    NavItem("/console/ledger/accounts", "Ledger", "chart", "ledger.read", group="rewards"),
    NavItem("/console/rewards/rules", "Reward rules", "gift", "rewards.read", group="rewards"),
    NavItem("/console/rewards/pools", "Fee pools", "chart", "rewards.read", group="rewards"),
    NavItem("/console/rewards/review", "Reward review", "alert", "rewards.read", group="rewards"),
    NavItem("/console/rewards/payouts", "Payouts", "list", "rewards.read", group="rewards"),
    NavItem("/console/sales/orders", "Orders", "list", "sales.read", group="sales"),
    NavItem("/console/flashsale", "Flash sales", "tag", "flashsale.read", group="sales"),
    NavItem("/console/lottery", "Lotteries", "gift", "lottery.read", group="sales"),
    NavItem("/console/authenticity/alerts", "Clone alerts", "alert", "authenticity.read", group="authenticity"),
    NavItem("/console/authenticity/stats", "Scan statistics", "chart", "authenticity.read", group="authenticity"),
    NavItem("/console/authenticity/scans", "Scan history", "search", "authenticity.read", group="authenticity"),
    NavItem(
        "/console/authenticity/reports",
        "Counterfeit reports",
        "alert",
        "authenticity.reports.read",
        group="authenticity",
    ),
]

ROLE_LABELS: dict[str, str] = {role.value: english for role, (english, _zh) in perms.ROLE_LABELS.items()}


def role_label(locale: str, role: str) -> str:
    return translate(locale, ROLE_LABELS.get(role, role))


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


def tr(request: Request, message: str, **values: object) -> str:
    """Translate an English source string for the request's locale (see `tests/test_i18n.py`)."""
    return translate(request_locale(request), message, **values)


# Service errors are English sentences, some with values in them. These templates let the console show
# them translated: a message that matches a template is translated as the template, values kept.
ERROR_TEMPLATES: tuple[str, ...] = (
    "This page needs the permission '{permission}'.",
    "This needs the permission '{permission}'.",
    "A {actor_role} cannot assign the role {role}.",
    "An operator with email {email} already exists.",
    "A tenant with code '{slug}' already exists.",
    "No brand with code '{slug}'.",
    "Email address is not valid: {reason}",
    "Password refused: {problem}",
    "Use at least {count} characters.",
    "Unknown role '{role}'; use one of {roles}.",
    "Unknown scopes: {scopes}.",
    "A token cannot have scopes its creator lacks: {scopes}.",
    "Job {job_id} was not found.",
    "Only dead or cancelled jobs can be retried; job {job_id} is {status}.",
    "Only pending or dead jobs can be cancelled; job {job_id} is {status}.",
    "Unknown status '{status}'; use one of {statuses}.",
    "The request is not valid — {summary}.",
    "A batch holds 1 to {limit} codes.",
    "The company prefix {prefix} has no room for {count} more SSCCs.",
    "Positions run from 1 to {count}, first ≤ last.",
    "Not a GS1 Digital Link: {reason}",
    "A store with code {code} already exists.",
    "Unknown store: {store}.",
    "Unknown product: {product}.",
)


@cache
def _template_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in ERROR_TEMPLATES:
        parts = re.split(r"\{(\w+)\}", template)
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
        patterns.append((re.compile(f"^{regex}$", re.DOTALL), template))
    return patterns


def localize_message(locale: str, message: str) -> str:
    """An English service message in the operator's language, as far as the catalog knows it."""
    if locale == "en":
        return message
    known = catalog(locale)
    if message in known:
        return known[message]
    for pattern, template in _template_patterns():
        match = pattern.match(message)
        if match and template in known:
            values = {key: localize_message(locale, value) for key, value in match.groupdict().items()}
            return known[template].format(**values)
    return message


def localize_error(request: Request, error: AppError) -> str:
    return localize_message(request_locale(request), error.message)


def error_field(error: AppError) -> str:
    field = error.data.get("field")
    return field if isinstance(field, str) else "_form"


def format_time(value: datetime | None, locale: str) -> str:
    if value is None:
        return "—"
    local = value.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S")


def page_url(request: Request, **changes: Any) -> str:
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return f"{request.url.path}?{urlencode(params)}" if params else request.url.path


def _flash_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.runtime.crypto.secret_key, salt="zt-console-flash")


def redirect_with_flash(request: Request, url: str, message: str, kind: str = "ok") -> RedirectResponse:
    """POST-redirect-GET: the next page shows `message` (already translated) once."""
    response = RedirectResponse(url, status_code=303)
    value = _flash_serializer(request).dumps({"m": message, "k": kind})
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=bool(request.app.state.runtime.settings.cookie_secure),
        path="/console",
    )
    return response


def _read_flash(request: Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = _flash_serializer(request).loads(raw, max_age=FLASH_MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), str):
        return None
    kind = data.get("k")
    return data["m"], kind if kind in ("ok", "error", "warn") else "ok"


def _pretty_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


templates.env.filters["pretty_json"] = _pretty_json


def _active_href(nav: list[NavItem], path: str) -> str | None:
    """The menu entry of this page: the longest entry the path starts with (/console/members/duplicates
    is "Duplicate review", not also "Members")."""
    matching = [i.href for i in nav if path == i.href or (i.href != "/console" and path.startswith(i.href + "/"))]
    return max(matching, key=len, default=None)


@dataclass(frozen=True)
class NavGroup:
    key: str
    label: str
    items: list[NavItem]
    open: bool  # the current page is in it


def nav_groups(nav: list[NavItem], active: str | None) -> list[NavGroup]:
    """The visible entries by area, in NAV_GROUPS order; an area with no entry the operator may open is
    left out, and the current page's area is open."""
    groups = []
    for key, label in NAV_GROUPS.items():
        items = [item for item in nav if item.group == key]
        if items:
            groups.append(NavGroup(key, label, items, any(item.href == active for item in items)))
    return groups


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
    nav_active = _active_href(nav, request.url.path)
    flash = _read_flash(request)
    ctx: dict[str, Any] = {
        "request": request,
        "_": partial(translate, locale),
        "locale": locale,
        "principal": principal,
        "csrf_token": principal.csrf_token if principal else None,
        "nav": nav,
        "nav_active": nav_active,
        "nav_groups": nav_groups(nav, nav_active),
        "current_path": request.url.path,
        "current_url": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "fmt_time": partial(format_time, locale=locale),
        "page_url": partial(page_url, request),
        "role_label": partial(role_label, locale),
        "settings": request.app.state.runtime.settings,
        "flash": flash[0] if flash else None,
        "flash_kind": flash[1] if flash else None,
        "errors": {},
        "form": {},
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/console")
    return response
