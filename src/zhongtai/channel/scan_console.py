"""Console pages of diversion control and channel flow: the alert queue, an alert with its evidence on a
map and its workflow, and the per-dealer report with its data-health checks."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select

from zhongtai.catalog import queries as catalog_queries
from zhongtai.channel import diversion, inventory, mapsvg, scans, service
from zhongtai.channel.models import Dealer, Store
from zhongtai.channel.permissions import CHANNEL_MANAGE, CHANNEL_READ
from zhongtai.channel.scan_models import ALERT_KINDS, ALERT_STATUSES
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import localize_error, redirect_with_flash, render, tr

router = APIRouter()  # included by the channel console router (/console/channel)

ChannelReader = Annotated[Principal, require_page(CHANNEL_READ)]
ChannelManager = Annotated[Principal, require_page(CHANNEL_MANAGE)]

KIND_LABELS = {
    "store_outside_territory": "Store outside the territory",
    "foreign_store": "Store not supplied by the dealer",
    "consumer_outside_territory": "Consumer outside the territory",
}
STATUS_LABELS = {"open": "Open", "confirmed": "Confirmed", "penalized": "Penalized", "dismissed": "Dismissed"}
SEVERITY_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}
CHECK_LABELS = {
    "shipped_not_received": "Shipped, not received",
    "stock_matches_custody": "Dealer stock against custody",
    "stores_match_shipments": "Shipments against store receipts",
    "store_stock_matches_custody": "Store stock against custody",
}
CHECK_MESSAGES = (
    "{count} items shipped more than {days} days ago are not received by their store (oldest {oldest}).",
    "Received less shipped ({expected}) against the items the dealer holds ({held}).",
    "Shipped less received by stores ({expected}) against the items in transit ({transit}).",
    "Received by stores less sold ({expected}) against the items in its stores ({held}).",
)
PER_PAGE = 50


def _labels(request: Request) -> dict[str, dict[str, str]]:
    return {
        "kinds": {k: tr(request, v) for k, v in KIND_LABELS.items()},
        "statuses": {k: tr(request, v) for k, v in STATUS_LABELS.items()},
        "severities": {k: tr(request, v) for k, v in SEVERITY_LABELS.items()},
    }


@router.get("/diversion")
async def alerts_page(
    request: Request, session: DbSession, principal: ChannelReader, status: str = "open", kind: str = "", page: int = 1
) -> Response:
    page = max(1, min(page, 100_000))
    status = status if status in ALERT_STATUSES else ""
    kind = kind if kind in ALERT_KINDS else ""
    rows, total = await diversion.list_alerts(
        session, status=status or None, kind=kind or None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    dealers = await service.dealers_by_id(session, list({a.dealer_id for a in rows}))
    return render(
        request,
        "channel/diversion.html",
        {
            "alerts": rows,
            "dealers": dealers,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "status": status,
            "kind": kind,
            **_labels(request),
        },
    )


@router.get("/diversion/{alert_id}")
async def alert_page(request: Request, alert_id: uuid.UUID, session: DbSession, principal: ChannelReader) -> Response:
    alert = await diversion.get_alert(session, alert_id)
    dealer = await session.scalar(select(Dealer).where(Dealer.id == alert.dealer_id))
    assert dealer is not None
    store = await session.scalar(select(Store).where(Store.id == alert.store_id)) if alert.store_id else None
    product = await catalog_queries.product_brief(session, alert.product_id)
    lot = await catalog_queries.lot_brief(session, alert.lot_id)
    stores, _total = await service.list_stores(session, status="active", dealer_id=dealer.id, limit=500, offset=0)
    located = [s for s in stores if s.latitude is not None and s.longitude is not None]
    map_stores = [
        mapsvg.MapStore(
            s.code, s.name, s.latitude or 0, s.longitude or 0, dealer.code, service.store_in_territory(dealer, s)
        )
        for s in located
    ]
    marks = (
        [mapsvg.MapMark(tr(request, "Seen here"), alert.latitude, alert.longitude)]
        if alert.latitude is not None and alert.longitude is not None
        else []
    )
    territories = (
        [mapsvg.MapTerritory(dealer.code, dealer.name, list(dealer.territory_polygons))]
        if dealer.territory_polygons
        else []
    )
    svg = mapsvg.render_map(map_stores, territories, title=tr(request, "Where the goods were seen"), marks=marks)
    return render(
        request,
        "channel/diversion_alert.html",
        {
            "alert": alert,
            "dealer": dealer,
            "store": store,
            "product": product,
            "lot": lot,
            "map_svg": Markup(svg),  # noqa: S704 - built by mapsvg with every text escaped
            "territory": diversion.territory_of(dealer),
            "next_statuses": diversion.TRANSITIONS[alert.status],
            "can_manage": principal.can(CHANNEL_MANAGE),
            **_labels(request),
        },
    )


def _fen(text: str) -> int | None:
    """Yuan as typed (e.g. 500 or 500.50) to fen; None when empty or not a number."""
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return int((value * 100).to_integral_value())


@router.post("/diversion/{alert_id}/status")
async def move_alert(
    request: Request,
    alert_id: uuid.UUID,
    session: DbSession,
    principal: ChannelManager,
    origin: Origin,
    status: Annotated[str, Form(max_length=20)],
    note: Annotated[str, Form(max_length=500)] = "",
    penalty_yuan: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    url = f"/console/channel/diversion/{alert_id}"
    await diversion.get_alert(session, alert_id)  # another brand's or a missing alert is a 404, not a flash
    try:
        await diversion.do_transition(
            session, principal, alert_id, status, note=note, penalty_amount=_fen(penalty_yuan), origin=origin
        )
    except AppError as error:
        await session.rollback()
        return redirect_with_flash(request, url, localize_error(request, error), "error")
    return redirect_with_flash(
        request, url, tr(request, "The alert is now {status}.", status=tr(request, STATUS_LABELS.get(status, status)))
    )


@router.get("/dealers/{dealer_id}/report")
async def dealer_report_page(
    request: Request, dealer_id: uuid.UUID, session: DbSession, principal: ChannelReader, stale_days: int = 7
) -> Response:
    dealer = await service.get_dealer(session, dealer_id)
    stale_days = max(1, min(stale_days, 365))
    report = await inventory.dealer_report(session, dealer.id, stale_days=stale_days)
    stock = await inventory.dealer_inventory(session, dealer.id)
    checks = [
        {"name": tr(request, CHECK_LABELS[c.name]), "ok": c.ok, "message": tr(request, c.message, **c.values)}
        for c in report.checks
    ]
    return render(
        request,
        "channel/dealer_report.html",
        {"dealer": dealer, "report": report, "checks": checks, "stock": stock, "stale_days": stale_days},
    )


ACTION_LABELS = {
    "dealer_receive": "Receive from the brand",
    "ship": "Ship to a store",
    "store_receive": "Receive goods",
    "case_open": "Open a case",
    "sale": "Record a sale",
}


@router.get("/stores/{store_id}/stock")
async def store_stock_page(
    request: Request, store_id: uuid.UUID, session: DbSession, principal: ChannelReader
) -> Response:
    """A store's stock per product (received − sold) and its latest scans."""
    store = await service.get_store(session, store_id)
    dealer = await service.get_dealer(session, store.dealer_id)
    stock = await inventory.store_inventory(session, store.id)
    recent = await scans.list_scans(session, store_id=store.id, limit=50)
    return render(
        request,
        "channel/store_stock.html",
        {
            "store": store,
            "dealer": dealer,
            "stock": stock,
            "scans": recent,
            "actions": {k: tr(request, v) for k, v in ACTION_LABELS.items()},
        },
    )
