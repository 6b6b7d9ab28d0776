"""Console pages of the ledger: the accounts with their balances, and one account's movements."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import PER_PAGE, render, templates
from zhongtai.ledger import service
from zhongtai.ledger.permissions import LEDGER_READ

router = APIRouter(prefix="/console/ledger", include_in_schema=False)

LedgerReader = Annotated[Principal, require_page(LEDGER_READ)]

KIND_LABELS = {
    "brand_funding": "Brand funding",
    "fee_pool": "Fee pool",
    "partner_wallet": "Partner wallet",
    "consumer_wallet": "Consumer wallet",
    "payouts_in_transit": "Payouts in transit",
    "payouts_paid": "Payouts paid",
    "brand_revenue": "Brand revenue",
    "penalties": "Penalties",
    "points": "Points",
    "points_issued": "Points issued",
    "suspense": "Suspense",
    "payment_clearing": "Payment clearing",
}
assert set(KIND_LABELS) == service.ACCOUNT_KINDS

templates.env.filters["money"] = service.format_amount


@router.get("/accounts")
async def accounts_page(
    request: Request,
    session: DbSession,
    _: LedgerReader,
    kind: Annotated[str | None, Query(max_length=30)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    kind = kind if kind in KIND_LABELS else None
    rows, total = await service.list_accounts(session, kind=kind, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(
        request,
        "ledger/accounts.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "kind": kind,
            "kinds": KIND_LABELS,
            "totals": await service.balance_totals(session),
        },
    )


@router.get("/accounts/{account_id}")
async def account_page(
    request: Request,
    account_id: uuid.UUID,
    session: DbSession,
    _: LedgerReader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    account = await service.get_account(session, account_id)
    balance = await service.balance_of(session, account_id)
    rows, total = await service.account_lines(session, account_id, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(
        request,
        "ledger/account.html",
        {
            "account": account,
            "balance": balance,
            "rows": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "kinds": KIND_LABELS,
        },
    )
