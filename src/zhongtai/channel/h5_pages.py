"""Partner H5 pages: sign-in by phone and password or one-time code, and the signed-in partner's
page (who they are, their dealer and store). The scanning app comes on top of these."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession
from zhongtai.i18n import translate
from zhongtai.kit.rendering import render, request_locale

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


# The scanning app: choose a step, scan with the camera or type, see each answer and the stock.
SCAN_WORDS: tuple[str, ...] = (
    "Receive from the brand",
    "Ship to a store",
    "Receive goods",
    "Open a case",
    "Record a sale",
    "Recorded",
    "Refused",
    "Already recorded",
    "{count} items",
    "Reward",
    "Choose the store you ship to.",
    "Scan or type a code.",
    "The camera is not available; type the code instead.",
    "This browser cannot read codes from the camera; type the code instead.",
    "Sending…",
    "Too many requests. Wait a moment and try again.",
    "The network is not available. Try again.",
    "Your session has ended; sign in again.",
)
REFUSAL_REASONS: dict[str, str] = {
    "unknown": "No such code.",
    "foreign": "This code belongs to another brand.",
    "unreadable": "This is not a code of this brand.",
    "not_commissioned": "This code was never put into circulation.",
    "voided": "This code is voided.",
    "decommissioned": "This code is decommissioned.",
    "in_channel": "This item was already received into the channel.",
    "not_received": "Receive this item first.",
    "not_yours": "This item is held by another dealer.",
    "already_shipped": "This item was already shipped to another store.",
    "not_in_channel": "No dealer has received this item yet.",
    "not_shipped_to_you": "This item was not shipped to your store; its dealer still holds it.",
    "shipped_elsewhere": "This item was shipped to another store.",
    "at_another_store": "This item was received by another store.",
    "not_at_your_store": "This item is not in your store.",
    "sold": "This item is already sold.",
    "not_a_case": "This is not a case; open a case.",
    "opened_elsewhere": "This case was opened at another store.",
    "empty": "This case or pallet holds no items.",
    "listed_twice": "This code is inside another code of the same scan.",
    "scan_not_allowed": "Your account cannot record this step.",
}


def _scan_messages(locale: str) -> dict[str, dict[str, str]]:
    return {
        **_messages(locale),
        "words": {word: translate(locale, word) for word in SCAN_WORDS},
        "reasons": {code: translate(locale, text) for code, text in REFUSAL_REASONS.items()},
    }


@router.get("/{tenant_slug}/partner/scan")
async def partner_scan_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    """The page is public; it scans through `POST /api/v1/channel/partner/scans` with the partner's token."""
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(
        request,
        "channel/h5_partner_scan.html",
        {"tenant": tenant, "messages": _scan_messages(request_locale(request))},
    )
