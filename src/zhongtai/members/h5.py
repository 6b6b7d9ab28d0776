"""The member centre (H5): profile, consents, tier and points, bottles, orders and lottery entries,
export and erasure. A static page; its script calls the consumer APIs with the member's token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession
from zhongtai.i18n import translate
from zhongtai.kit.rendering import render, request_locale
from zhongtai.members.consent import PURPOSE_LABELS

router = APIRouter(prefix="/h5", include_in_schema=False)

CONSENT_TEXT_VERSION = "member-centre-1"
# What the page's script shows, in the member's language.
MESSAGES: dict[str, str] = {
    "saved": "Saved.",
    "failed": "Something went wrong. Try again.",
    "network": "The network is not available. Try again.",
    "not_member": "You are not a member yet: fill in your profile or scan a bottle to join.",
    "no_bottles": "No bottles checked yet.",
    "no_orders": "No orders yet.",
    "no_entries": "No lottery entries yet.",
    "kept_verified": "A verified value was kept; contact the brand to change it.",
    "erase_confirm": "Erase your personal data? Your account is closed and this cannot be undone.",
    "erased": "Your personal data was erased and you are signed out.",
    "points_expiring": "{points} points expire on {date}",
    "points_none": "No points yet.",
    "tier_next": "{missing} more to reach {tier}",
    "claimed": "{bottles} bottles you checked on this phone are now yours: +{points} points.",
    "discount": "{percent}% off",
    "birthday_gift": "Birthday gift",
    "free_shipping": "Free shipping",
    "signed_in_today": "Signed in: day {streak} in a row, +{earned} points.",
    "signed_in_already": "Already signed in today (day {streak} in a row).",
    "points_earn": "earned",
    "points_redeem": "redeemed",
    "points_expire": "expired",
    "points_reverse": "taken back (refund)",
    "points_transfer": "moved (member records merged)",
    "genuine": "Genuine",
    "repeat": "Checked before",
    "suspicious": "Suspicious",
}


@router.get("/{tenant_slug}/me")
async def member_centre(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    locale = request_locale(request)
    return render(
        request,
        "members/h5_member.html",
        {
            "tenant": tenant,
            "purposes": [(p.value, translate(locale, label)) for p, label in PURPOSE_LABELS.items()],
            "messages": {key: translate(locale, text) for key, text in MESSAGES.items()}
            | {"text_version": CONSENT_TEXT_VERSION},
        },
    )
