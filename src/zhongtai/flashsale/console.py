"""Console pages of flash sales: the list and the new-sale form, a sale's page (schedule, end) and its
live figures (accepted, refused by reason, stock left, rate, a per-second chart), refreshed by htmx."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from zhongtai.catalog import queries as catalog_queries
from zhongtai.catalog.queries import ProductChoice
from zhongtai.core import audit
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, RuntimeDep
from zhongtai.flashsale import rules, service
from zhongtai.flashsale.fastpath import state_of
from zhongtai.flashsale.models import FlashSale
from zhongtai.flashsale.permissions import FLASHSALE_READ, FLASHSALE_WRITE
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import error_field, localize_error, redirect_with_flash, render, tr

router = APIRouter(prefix="/console/flashsale", include_in_schema=False)

SaleReader = Annotated[Principal, require_page(FLASHSALE_READ)]
SaleWriter = Annotated[Principal, require_page(FLASHSALE_WRITE)]
Text = Annotated[str, Form(max_length=200)]
CHINA = timezone(timedelta(hours=8))  # the console's times are China Standard Time
STATUS_LABELS = {"draft": "Draft", "scheduled": "Scheduled", "ended": "Ended"}
REASON_LABELS = {
    "sold_out": "Sold out",
    "limit_reached": "Per-member limit reached",
    "sale_not_open": "Sale not open",
    "pass_invalid": "No valid sale pass",
    "rate_limited": "Too many requests",
    "bad_request": "Invalid request",
    "gate_unavailable": "Gate unavailable",
}
CHART_WIDTH, CHART_HEIGHT = 600, 120


def _parse_local(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=CHINA)
    except ValueError:
        return None


def _china_time(value: datetime | None) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else "—"


async def _products(session: DbSession) -> list[ProductChoice]:
    return await catalog_queries.product_choices(session, active_only=True)


async def _sales_page(
    request: Request,
    session: DbSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    sales, _total = await service.list_sales(session, limit=100)
    products = await _products(session)
    start = (datetime.now(CHINA) + timedelta(days=1)).replace(hour=10, minute=0)
    default = {
        "title": "",
        "product_id": "",
        "price": "",
        "stock": "",
        "per_member_limit": "1",
        "starts_at": f"{start:%Y-%m-%dT%H:%M}",
        "ends_at": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M}",
        "payment_minutes": "15",
        "minimum_age": "18",
        "requires_verification": "on",
    }
    return render(
        request,
        "flashsale/sales.html",
        {
            "sales": sales,
            "products": products,
            "product_names": {p.id: p.name for p in products},
            "status_labels": STATUS_LABELS,
            "form": form or default,
            "errors": errors or {},
            "china_time": _china_time,
            "price": rules.format_price,
        },
        status_code=status_code,
    )


@router.get("")
async def sales_page(request: Request, session: DbSession, _: SaleReader) -> Response:
    return await _sales_page(request, session)


def _number(value: str, field: str, errors: dict[str, str], message: str) -> int:
    if value.strip().isdigit():
        return int(value.strip())
    errors[field] = message
    return 0


@router.post("")
async def create_sale(
    request: Request,
    session: DbSession,
    principal: SaleWriter,
    origin: Origin,
    title: Text = "",
    product_id: Text = "",
    price: Text = "",
    stock: Text = "",
    per_member_limit: Text = "1",
    starts_at: Text = "",
    ends_at: Text = "",
    payment_minutes: Text = "15",
    minimum_age: Text = "18",
    requires_verification: Text = "",
) -> Response:
    form = {
        "title": title,
        "product_id": product_id,
        "price": price,
        "stock": stock,
        "per_member_limit": per_member_limit,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "payment_minutes": payment_minutes,
        "minimum_age": minimum_age,
        "requires_verification": requires_verification,
    }
    errors: dict[str, str] = {}
    whole = tr(request, "Enter a whole number.")
    try:
        product = uuid.UUID(product_id)
    except ValueError:
        errors["product_id"] = tr(request, "Choose a product.")
        product = uuid.UUID(int=0)
    try:
        price_fen = rules.price_fen(Decimal(price.strip()))
    except (InvalidOperation, AppError):
        errors["price"] = tr(request, "Enter the price in yuan, e.g. 1499.00.")
        price_fen = 0
    units = _number(stock, "stock", errors, whole)
    limit = _number(per_member_limit, "per_member_limit", errors, whole)
    minutes = _number(payment_minutes, "payment_minutes", errors, whole)
    age = _number(minimum_age, "minimum_age", errors, whole)
    starts, ends = _parse_local(starts_at), _parse_local(ends_at)
    if starts is None:
        errors["starts_at"] = tr(request, "Enter a date and time.")
    if ends is None:
        errors["ends_at"] = tr(request, "Enter a date and time.")
    if errors or starts is None or ends is None:
        return await _sales_page(request, session, form=form, errors=errors, status_code=422)
    draft = rules.SaleDraft(
        title=title,
        product_id=product,
        price_fen=price_fen,
        stock=units,
        starts_at=starts,
        ends_at=ends,
        per_member_limit=limit,
        payment_minutes=minutes,
        requires_verification=bool(requires_verification),
        minimum_age=age,
    )
    try:
        sale = await service.do_create_sale(session, draft)
    except AppError as exc:
        await session.rollback()
        problems = exc.data.get("errors")
        if isinstance(problems, list) and problems:
            errors = {p["field"]: tr(request, p["problem"]) for p in problems}
        else:
            errors = {error_field(exc) if error_field(exc) != "_form" else "product_id": localize_error(request, exc)}
        return await _sales_page(request, session, form=form, errors=errors, status_code=422)
    await audit.record(
        session, principal, "flashsale.create", target_type="flashsale", target_id=sale.id, origin=origin
    )
    return redirect_with_flash(
        request,
        f"/console/flashsale/{sale.id}",
        tr(request, "The sale was created. Schedule it to open it at its start."),
    )


def _chart(per_second: list[tuple[int, int]]) -> dict[str, Any]:
    """Bars of accepted units per second over the last minute, as SVG rectangles."""
    peak = max((n for _s, n in per_second), default=0)
    width = CHART_WIDTH / max(1, len(per_second))
    bars = []
    for index, (second, count) in enumerate(per_second):
        height = 0.0 if peak == 0 else (CHART_HEIGHT - 14) * count / peak
        bars.append(
            {
                "x": round(index * width, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "width": round(max(1.0, width - 1), 1),
                "height": round(height, 1),
                "title": f"{datetime.fromtimestamp(second, CHINA):%H:%M:%S} · {count}",
            }
        )
    return {"bars": bars, "peak": peak, "width": CHART_WIDTH, "height": CHART_HEIGHT}


async def _detail_context(session: DbSession, runtime: Any, sale: FlashSale) -> dict[str, Any]:
    figures = await service.live_figures(session, state_of(runtime), sale)
    product = await catalog_queries.product_brief(session, sale.product_id)
    return {
        "sale": sale,
        "product": product,
        "figures": figures,
        "chart": _chart(figures.per_second),
        "reason_labels": REASON_LABELS,
        "status_labels": STATUS_LABELS,
        "china_time": _china_time,
        "price": rules.format_price,
    }


async def _detail_page(
    request: Request,
    session: DbSession,
    runtime: Any,
    sale_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    sale = await service.get_sale(session, sale_id)
    context = await _detail_context(session, runtime, sale)
    context["errors"] = errors or {}
    return render(request, "flashsale/sale.html", context, status_code=status_code)


@router.get("/{sale_id}")
async def sale_page(
    request: Request, session: DbSession, runtime: RuntimeDep, _: SaleReader, sale_id: uuid.UUID
) -> Response:
    return await _detail_page(request, session, runtime, sale_id)


@router.get("/{sale_id}/live")
async def sale_live(
    request: Request, session: DbSession, runtime: RuntimeDep, _: SaleReader, sale_id: uuid.UUID
) -> Response:
    """The live figures, refreshed by the page every two seconds while the sale is scheduled."""
    sale = await service.get_sale(session, sale_id)
    return render(request, "flashsale/_live.html", await _detail_context(session, runtime, sale))


@router.post("/{sale_id}/schedule")
async def schedule_sale(
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    principal: SaleWriter,
    origin: Origin,
    sale_id: uuid.UUID,
) -> Response:
    try:
        sale = await service.get_sale(session, sale_id)
        await service.do_schedule_sale(session, state_of(runtime), sale)
    except AppError as exc:
        await session.rollback()
        errors = {"_form": localize_error(request, exc)}
        return await _detail_page(request, session, runtime, sale_id, errors=errors, status_code=exc.status_code)
    await audit.record(
        session, principal, "flashsale.schedule", target_type="flashsale", target_id=sale_id, origin=origin
    )
    return redirect_with_flash(
        request,
        f"/console/flashsale/{sale_id}",
        tr(request, "The sale is scheduled: buys are accepted from its start."),
    )


@router.post("/{sale_id}/end")
async def end_sale(
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    principal: SaleWriter,
    origin: Origin,
    sale_id: uuid.UUID,
) -> Response:
    sale = await service.get_sale(session, sale_id)
    await service.do_end_sale(session, state_of(runtime), sale)
    await audit.record(session, principal, "flashsale.end", target_type="flashsale", target_id=sale_id, origin=origin)
    return redirect_with_flash(
        request, f"/console/flashsale/{sale_id}", tr(request, "The sale is ended: no more buys.")
    )
