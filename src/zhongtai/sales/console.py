"""Console pages of sales: orders (filter, detail with history, payments, settlement, items),
settlement rules and daily statements per store or dealer (with CSV)."""

from __future__ import annotations

import uuid
from datetime import date
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from zhongtai.core.clock import utcnow
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, PageDep
from zhongtai.i18n import translate
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import format_time, render, request_locale, templates
from zhongtai.members.panels import MemberPanelContext
from zhongtai.sales import payments, pickup, rules, service, settlement
from zhongtai.sales.permissions import SALES_READ

router = APIRouter(prefix="/console/sales", include_in_schema=False)

SalesReader = Annotated[Principal, require_page(SALES_READ)]
STATE_LABELS = {
    "pending_payment": "Pending payment",
    "paid": "Paid",
    "ready_for_pickup": "Ready for pickup",
    "picked_up": "Picked up",
    "expired": "Expired",
    "refunded": "Refunded",
}


@router.get("/orders")
async def orders_page(
    request: Request,
    session: DbSession,
    _: SalesReader,
    page: PageDep,
    state: Annotated[str, Query(max_length=20)] = "",
    source: Annotated[str, Query(max_length=20)] = "",
    order_no: Annotated[str, Query(max_length=24)] = "",
) -> Response:
    orders, total = await service.list_orders(
        session,
        state=state if state in rules.STATES else None,
        source=source or None,
        order_no=order_no or None,
        limit=page.per_page,
        offset=page.offset,
    )
    return render(
        request,
        "sales/orders.html",
        {
            "orders": orders,
            "total": total,
            "page": page,
            "filters": {"state": state, "source": source, "order_no": order_no},
            "state_labels": STATE_LABELS,
        },
    )


@router.get("/orders/{order_id}")
async def order_page(request: Request, order_id: uuid.UUID, session: DbSession, _: SalesReader) -> Response:
    order = await service.get_order(session, order_id)
    return render(
        request,
        "sales/order.html",
        {
            "order": order,
            "history": await service.history(session, order.id),
            "payments": await payments.payments_of(session, order.id),
            "settlement": await settlement.settlement_of(session, order.id),
            "items": await pickup.items_of(session, order.id),
            "state_labels": STATE_LABELS,
        },
    )


@router.get("/settlement")
async def settlement_page(
    request: Request,
    session: DbSession,
    _: SalesReader,
    by: Annotated[str, Query(pattern="^(store|dealer)$")] = "store",
    day_from: date | None = None,
    day_to: date | None = None,
    format: Annotated[str, Query(pattern="^(html|csv)$")] = "html",
) -> Response:
    end = day_to or settlement.business_day(utcnow())
    start = day_from or end
    start = min(start, end)
    lines = await settlement.statement(session, by=by, day_from=start, day_to=end)
    if format == "csv":
        return Response(
            settlement.statement_csv(lines, by=by, names={}),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="statement-{by}-{start}-{end}.csv"'},
        )
    return render(
        request,
        "sales/settlement.html",
        {
            "rules": await settlement.list_rules(session),
            "lines": lines,
            "by": by,
            "day_from": start.isoformat(),
            "day_to": end.isoformat(),
        },
    )


async def member_orders_panel(context: MemberPanelContext) -> str | None:
    """The member 360 view's orders: the member's consumer accounts' latest orders (sales readers only)."""
    principal = getattr(context.request.state, "principal", None)
    if principal is None or not principal.can(SALES_READ):
        return None
    orders, total = await service.list_orders(context.session, consumer_ids=context.consumer_ids, limit=10)
    locale = request_locale(context.request)
    return templates.get_template("sales/member_panel.html").render(
        {
            "_": partial(translate, locale),
            "fmt_time": partial(format_time, locale=locale),
            "orders": orders,
            "total": total,
            "state_labels": STATE_LABELS,
        }
    )
