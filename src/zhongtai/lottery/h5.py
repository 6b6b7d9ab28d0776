"""Member H5 page of lotteries: open sessions, enter with a store (nearest first), receipts, results."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession
from zhongtai.i18n import translate
from zhongtai.kit.rendering import render, request_locale

router = APIRouter(prefix="/h5", include_in_schema=False)

# Answers of the lottery API by error code, shown in the member's language.
LOTTERY_ERROR_MESSAGES: dict[str, str] = {
    "not_verified": "Verify your real name first.",
    "under_age": "You must be 18 or older to take part.",
    "lottery_not_open": "The lottery session is not open for entries now.",
    "lottery_already_entered": "You already entered this product in this session.",
    "lottery_not_offered": "This store has no stock of this product in this session.",
    "unauthenticated": "Sign in first.",
    "rate_limited": "Too many requests. Wait a moment and try again.",
    "network": "The network is not available. Try again.",
}
RESULT_LABELS: dict[str, str] = {
    "pending": "Waiting for the draw",
    "won": "You won — pay before the deadline",
    "not_drawn": "Not drawn this time",
    "excluded": "Excluded from the draw",
}


@router.get("/{tenant_slug}/lottery")
async def lottery_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    locale = request_locale(request)
    messages = {
        "errors": {code: translate(locale, text) for code, text in LOTTERY_ERROR_MESSAGES.items()},
        "results": {code: translate(locale, text) for code, text in RESULT_LABELS.items()},
    }
    return render(request, "lottery/h5_lottery.html", {"tenant": tenant, "messages": messages})
