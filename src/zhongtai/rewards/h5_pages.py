"""Rewards on phones: the partner's wallet page in the partner H5 app (balance, held for review,
withdrawing, reward history, pending items, withdrawal requests), the consumer's wallet page (the red
packets of their bottles, the ones this phone received before signing in claimed on load, withdrawals),
and the red-packet panel of the consumer's scan page (the red packet this code's first open earned, or
nothing)."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhongtai.authenticity.panels import PanelContext
from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession, get_runtime
from zhongtai.i18n import translate
from zhongtai.kit.rendering import render, request_locale, templates
from zhongtai.rewards import grants, rules
from zhongtai.rewards.models import HELD

router = APIRouter(prefix="/h5", include_in_schema=False)

WALLET_WORDS: dict[str, str] = {
    "paid": "Paid",
    "held": "Held for review",
    "released": "Released",
    "rejected": "Rejected",
    "refused": "Not paid",
    "requested": "Requested",
    "in_batch": "Being paid",
    "failed": "Failed",
    "dealer_receive": "Dealer receives",
    "store_receive": "Store receives",
    "case_open": "Case opened",
    "sale": "Sale",
    "consumer_open": "Consumer opens",
    "withdraw_done": "Withdrawal requested: {amount} yuan.",
    "nothing": "No rewards yet.",
    "network": "The network is not available. Try again.",
    "amount": "Enter an amount in yuan, such as 50 or 12.50.",
}


CONSUMER_WALLET_WORDS: dict[str, str] = WALLET_WORDS | {
    "nothing": "No red packets yet.",
    "no_withdrawals": "No withdrawals yet.",
    "claimed": "{count} red packets this phone received were added to your wallet: {amount} yuan.",
    "below_min": "You can withdraw once your balance reaches {amount} yuan.",
    "over_balance": "That is more than your balance.",
    "unknown_bottle": "A bottle",
}


def _words(locale: str, words: dict[str, str] = WALLET_WORDS) -> dict[str, str]:
    return {key: translate(locale, text) for key, text in words.items()}


@router.get("/{tenant_slug}/partner/wallet")
async def partner_wallet_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    """The page is public; its data comes from `GET /api/v1/rewards/partner/wallet` with the partner's
    token (the one the partner sign-in page keeps)."""
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(request, "rewards/h5_wallet.html", {"tenant": tenant, "words": _words(request_locale(request))})


@router.get("/{tenant_slug}/wallet")
async def consumer_wallet_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    """The consumer's wallet. The page is a public shell — the scan page's red packet panel promises that
    signing in keeps the packet; this is where it is kept. Its script claims this phone's anonymous red
    packets, then reads `GET /api/v1/rewards/consumer/wallet`, with the consumer's token (the one the
    sign-in page keeps)."""
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    words = _words(request_locale(request), CONSUMER_WALLET_WORDS)
    return render(request, "rewards/h5_consumer_wallet.html", {"tenant": tenant, "words": words})


async def red_packet_panel(context: PanelContext) -> str | None:
    """The scan page's reward box: the red packet granted for this code's consumer open, if any."""
    ref = context.resolved.ref
    page_session = getattr(context.request.state, "db", None)
    if page_session is not None:  # the scan page's own unit of work (SQLite has one writer at a time)
        scope = tenancy.current_scope(page_session)
        tenancy.scope_to_tenant(page_session, ref.tenant_id)
        try:
            packet = await grants.consumer_packet(page_session, ref.code_id)
        finally:
            if scope is None:
                tenancy.clear_scope(page_session)
            elif scope == tenancy.ALL_TENANTS:
                tenancy.scope_all_tenants(page_session)
            else:
                tenancy.scope_to_tenant(page_session, scope)  # type: ignore[arg-type]
    else:
        async with get_runtime(context.request).db.read_only(tenant_id=ref.tenant_id) as session:
            packet = await grants.consumer_packet(session, ref.code_id)
    if packet is None:
        return None
    locale = request_locale(context.request)
    return templates.get_template("rewards/panel.html").render(
        {
            "_": partial(translate, locale),
            "amount": rules.yuan(packet.amount_fen),
            "held": packet.status == HELD,
            "anonymous": packet.party.startswith("device:") and packet.claimed_at is None,
            "login": f"/h5/{context.resolved.tenant.slug}/login",
            "wallet": f"/h5/{context.resolved.tenant.slug}/wallet",
        }
    )
