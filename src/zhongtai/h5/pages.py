"""Consumer H5 pages: sign-in by phone and one-time code; the development SMS inbox."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from zhongtai.core import consumers, tenancy
from zhongtai.core.errors import NotFound
from zhongtai.core.models import SandboxMessage
from zhongtai.core.web import DbSession, RuntimeDep
from zhongtai.i18n import translate
from zhongtai.kit.rendering import render, request_locale

router = APIRouter(prefix="/h5", include_in_schema=False)

# What the sign-in API may answer, so that the page can show it in the consumer's language.
CONSUMER_MESSAGES: tuple[str, ...] = (
    "This is not a phone number.",
    "This phone number is not valid; check the digits.",
    "A code was just sent to this number; wait a minute.",
    "Too many codes for this number today.",
    "Too many codes requested from this network.",
    "No valid code for this number; request a new one.",
    "Too many wrong codes; request a new one.",
    "The code is wrong.",
    "Too many requests. Wait a moment and try again.",
)
# Fallbacks by error code, for answers whose wording carries values.
CONSUMER_ERROR_CODES: dict[str, str] = {
    "validation_error": "Check the phone number and the code.",
    "rate_limited": "Too many requests. Wait a moment and try again.",
    "not_found": "This brand is not available.",
    "network": "The network is not available. Try again.",
}


def _consumer_messages(locale: str) -> dict[str, dict[str, str]]:
    return {
        "details": {message: translate(locale, message) for message in CONSUMER_MESSAGES},
        "codes": {code: translate(locale, message) for code, message in CONSUMER_ERROR_CODES.items()},
    }


@router.get("/{tenant_slug}/login")
async def consumer_login_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    messages = _consumer_messages(request_locale(request))
    return render(request, "h5/login.html", {"tenant": tenant, "messages": messages})


@router.get("/{tenant_slug}/dev/sms")
async def sandbox_inbox(request: Request, tenant_slug: str, session: DbSession, runtime: RuntimeDep) -> Response:
    """What the sandbox SMS sender would have sent — only in development."""
    if runtime.settings.env != "development":
        raise NotFound()
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    messages = await session.scalars(select(SandboxMessage).order_by(SandboxMessage.created_at.desc()).limit(50))
    return render(request, "h5/dev_sms.html", {"tenant": tenant, "messages": list(messages)})
