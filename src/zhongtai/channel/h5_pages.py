"""Partner H5 pages: sign-in by phone and password or one-time code, and the signed-in partner's
page (who they are, their dealer and store). The scanning app comes on top of these."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhongtai.console.rendering import render, request_locale
from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession
from zhongtai.i18n import translate

router = APIRouter(prefix="/h5", include_in_schema=False)

# What the partner sign-in API may answer, so that the page shows it in the partner's language.
PARTNER_MESSAGES: tuple[str, ...] = (
    "This is not a phone number.",
    "This phone number is not valid; check the digits.",
    "A code was just sent to this number; wait a minute.",
    "Too many codes for this number today.",
    "Too many codes requested from this network.",
    "No valid code for this number; request a new one.",
    "Too many wrong codes; request a new one.",
    "The code is wrong.",
    "Phone number or password is wrong, or the account is disabled.",
    "This account is temporarily locked after repeated failed sign-ins.",
    "Too many sign-in attempts from this address.",
    "Too many requests. Wait a moment and try again.",
)
PARTNER_ERROR_CODES: dict[str, str] = {
    "validation_error": "Check the phone number and the code.",
    "rate_limited": "Too many requests. Wait a moment and try again.",
    "not_found": "This brand is not available.",
    "network": "The network is not available. Try again.",
}
ROLE_WORDS = {"dealer": "Dealer staff", "store": "Store clerk", "guide": "Shopping guide"}


def _messages(locale: str) -> dict[str, dict[str, str]]:
    return {
        "details": {message: translate(locale, message) for message in PARTNER_MESSAGES},
        "codes": {code: translate(locale, message) for code, message in PARTNER_ERROR_CODES.items()},
        "roles": {role: translate(locale, word) for role, word in ROLE_WORDS.items()},
    }


@router.get("/{tenant_slug}/partner")
async def partner_sign_in_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(
        request, "channel/h5_partner.html", {"tenant": tenant, "messages": _messages(request_locale(request))}
    )


@router.get("/{tenant_slug}/partner/me")
async def partner_me_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    """The page is public; its data comes from `GET /api/v1/channel/partner/me` with the partner's token."""
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(
        request, "channel/h5_partner_me.html", {"tenant": tenant, "messages": _messages(request_locale(request))}
    )
