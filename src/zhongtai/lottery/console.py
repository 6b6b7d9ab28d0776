"""Console pages of lotteries: sessions (create, stock per store, watch entries, publish, close,
draw) and the pick-up store list."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from zhongtai.catalog import queries as catalog_queries
from zhongtai.core import audit
from zhongtai.core.errors import AppError
from zhongtai.core.models import Tenant
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, RuntimeDep
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import error_field, localize_error, redirect_with_flash, render, tr
from zhongtai.lottery import service
from zhongtai.lottery.models import LotterySession
from zhongtai.lottery.permissions import LOTTERY_READ, LOTTERY_WRITE

router = APIRouter(prefix="/console/lottery", include_in_schema=False)

LotteryReader = Annotated[Principal, require_page(LOTTERY_READ)]
LotteryWriter = Annotated[Principal, require_page(LOTTERY_WRITE)]
Text = Annotated[str, Form(max_length=200)]
CHINA = timezone(timedelta(hours=8))  # the console's times are China Standard Time

STATUS_LABELS = {"draft": "Draft", "committed": "Published", "closed": "Closed", "drawn": "Drawn"}


def _parse_local(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=CHINA)
    except ValueError:
        return None


async def _sessions_page(
    request: Request,
    session: DbSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tomorrow = (datetime.now(CHINA) + timedelta(days=1)).date()
    default = {
        "title": "",
        "opens_at": f"{tomorrow}T09:00",
        "closes_at": f"{tomorrow}T10:00",
        "payment_hours": "24",
        "beacon_source": "",
    }
    return render(
        request,
        "lottery/sessions.html",
        {
            "sessions": await service.list_sessions(session),
            "status_labels": STATUS_LABELS,
            "form": form or default,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("")
async def sessions_page(request: Request, session: DbSession, _: LotteryReader) -> Response:
    return await _sessions_page(request, session)


@router.post("")
async def create_session(
    request: Request,
    session: DbSession,
    principal: LotteryWriter,
    runtime: RuntimeDep,
    origin: Origin,
    title: Text = "",
    opens_at: Text = "",
    closes_at: Text = "",
    payment_hours: Text = "24",
    beacon_source: Text = "",
) -> Response:
    form = {"title": title, "opens_at": opens_at, "closes_at": closes_at, "payment_hours": payment_hours}
    form["beacon_source"] = beacon_source
    errors: dict[str, str] = {}
    opens, closes = _parse_local(opens_at), _parse_local(closes_at)
    if not title.strip():
        errors["title"] = tr(request, "Give the session a title.")
    if opens is None:
        errors["opens_at"] = tr(request, "Enter a date and time.")
    if closes is None:
        errors["closes_at"] = tr(request, "Enter a date and time.")
    hours = int(payment_hours) if payment_hours.strip().isdigit() else 0
    if not 1 <= hours <= 720:
        errors["payment_hours"] = tr(request, "1 to 720 hours.")
    if errors or opens is None or closes is None:
        return await _sessions_page(request, session, form=form, errors=errors, status_code=422)
    try:
        lottery = await service.do_create_session(
            session,
            runtime.crypto,
            title=title,
            opens_at=opens,
            closes_at=closes,
            payment_hours=hours,
            beacon_source=beacon_source,
        )
    except AppError as exc:
        await session.rollback()
        return await _sessions_page(
            request, session, form=form, errors={error_field(exc): localize_error(request, exc)}, status_code=422
        )
    await audit.record(
        session, principal, "lottery.session_create", target_type="lottery_session", target_id=lottery.id, origin=origin
    )
    return redirect_with_flash(
        request,
        f"/console/lottery/{lottery.id}",
        tr(request, "The session was created. Set its stock, then publish it."),
    )


async def _detail_context(session: DbSession, lottery: LotterySession) -> dict[str, Any]:
    stores = {s.id: s for s in await service.list_stores(session)}
    stock = await service.stock_of(session, lottery.id)
    named = await catalog_queries.product_briefs(session, {line.product_id for line in stock})
    counts = await service.entry_counts(session, lottery.id)
    lines = [
        {
            "store": stores.get(line.store_id),
            "product": named.get(line.product_id),
            "quantity": line.quantity,
            "entries": counts.get((line.store_id, line.product_id), 0),
        }
        for line in stock
    ]
    wins = await service.wins_of(session, lottery.id) if lottery.status == "drawn" else []
    tenant = await session.get(Tenant, lottery.tenant_id)
    return {
        "principal_tenant_slug": tenant.slug if tenant else "",
        "lottery": lottery,
        "lines": lines,
        "total_entries": sum(counts.values()),
        "total_stock": sum(line["quantity"] for line in lines),
        "stores": list(stores.values()),
        "products": await catalog_queries.product_choices(session),
        "wins": wins,
        "win_counts": {
            status: sum(1 for w in wins if w.status == status) for status in ("pending_payment", "paid", "forfeited")
        },
        "status_labels": STATUS_LABELS,
        "china_time": lambda value: value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else "—",
    }


async def _detail_page(
    request: Request,
    session: DbSession,
    session_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    lottery = await service.get_session(session, session_id)
    context = await _detail_context(session, lottery)
    context.update(errors=errors or {}, form=form or {"stock": "", "product_id": "", "beacon": ""})
    return render(request, "lottery/session.html", context, status_code=status_code)


@router.get("/stores")
async def stores_page(request: Request, session: DbSession, _: LotteryReader) -> Response:
    return render(request, "lottery/stores.html", {"stores": await service.list_stores(session), "form": {}})


@router.post("/stores")
async def create_store(
    request: Request,
    session: DbSession,
    principal: LotteryWriter,
    origin: Origin,
    code: Text = "",
    name: Text = "",
    city: Text = "",
    latitude: Text = "",
    longitude: Text = "",
) -> Response:
    form = {"code": code, "name": name, "city": city, "latitude": latitude, "longitude": longitude}
    errors: dict[str, str] = {}
    try:
        lat, lon = float(latitude), float(longitude)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError
    except ValueError:
        errors["latitude"] = tr(request, "Latitude −90…90 and longitude −180…180, in decimal degrees.")
        lat = lon = 0.0
    if not code.strip() or not name.strip():
        errors["code"] = tr(request, "A store needs a code and a name.")
    if not errors:
        try:
            store = await service.do_create_store(session, code=code, name=name, city=city, latitude=lat, longitude=lon)
        except AppError as exc:
            await session.rollback()
            errors[error_field(exc)] = localize_error(request, exc)
        else:
            await audit.record(
                session,
                principal,
                "lottery.store_create",
                target_type="lottery_store",
                target_id=store.id,
                origin=origin,
            )
            return redirect_with_flash(
                request, "/console/lottery/stores", tr(request, "Store {code} was added.", code=store.code)
            )
    return render(
        request,
        "lottery/stores.html",
        {"stores": await service.list_stores(session), "form": form, "errors": errors},
        status_code=422,
    )


@router.get("/{session_id}")
async def session_page(request: Request, session: DbSession, _: LotteryReader, session_id: uuid.UUID) -> Response:
    return await _detail_page(request, session, session_id)


@router.get("/{session_id}/live")
async def session_live(request: Request, session: DbSession, _: LotteryReader, session_id: uuid.UUID) -> Response:
    """The entries counts, refreshed by the page every few seconds while the window is open."""
    lottery = await service.get_session(session, session_id)
    return render(request, "lottery/_live.html", await _detail_context(session, lottery))


@router.post("/{session_id}/stock")
async def set_stock(
    request: Request,
    session: DbSession,
    principal: LotteryWriter,
    origin: Origin,
    session_id: uuid.UUID,
    product_id: Text = "",
    stock: Annotated[str, Form(max_length=200_000)] = "",
) -> Response:
    """Lines of `store code, quantity` for one product; replaces the product's stock."""
    lottery = await service.get_session(session, session_id)
    form = {"product_id": product_id, "stock": stock, "beacon": ""}
    stores = {s.code: s for s in await service.list_stores(session)}
    errors: dict[str, str] = {}
    try:
        product = uuid.UUID(product_id)
    except ValueError:
        errors["product_id"] = tr(request, "Choose a product.")
        product = uuid.UUID(int=0)
    items: list[service.StockItem] = []
    for number, line in enumerate(stock.splitlines(), 1):
        if not line.strip():
            continue
        code, _, quantity = line.replace("，", ",").partition(",")
        store = stores.get(code.strip())
        if store is None or not quantity.strip().isdigit() or int(quantity) < 1:
            errors["stock"] = tr(
                request, "Line {number}: write a known store code, a comma and a quantity of 1 or more.", number=number
            )
            break
        items.append(service.StockItem(store.id, product, int(quantity)))
    if not items and "stock" not in errors:
        errors["stock"] = tr(request, "Write one line per store: store code, quantity.")
    if not errors:
        kept = [
            service.StockItem(s.store_id, s.product_id, s.quantity)
            for s in await service.stock_of(session, session_id)
            if s.product_id != product
        ]
        try:
            await service.do_set_stock(session, lottery, kept + items)
        except AppError as exc:
            await session.rollback()
            errors[error_field(exc) if error_field(exc) != "items" else "stock"] = localize_error(request, exc)
    if errors:
        return await _detail_page(request, session, session_id, errors=errors, form=form, status_code=422)
    await audit.record(
        session,
        principal,
        "lottery.stock_set",
        target_type="lottery_session",
        target_id=session_id,
        data={"lines": len(items)},
        origin=origin,
    )
    return redirect_with_flash(request, f"/console/lottery/{session_id}", tr(request, "The stock was saved."))


async def _transition(
    request: Request,
    session: DbSession,
    principal: Principal,
    origin: Any,
    session_id: uuid.UUID,
    verb: str,
    action: Any,
    done: str,
) -> Response:
    try:
        await action(await service.get_session(session, session_id))
    except AppError as exc:
        await session.rollback()
        return await _detail_page(
            request, session, session_id, errors={"_form": localize_error(request, exc)}, status_code=exc.status_code
        )
    await audit.record(
        session, principal, f"lottery.{verb}", target_type="lottery_session", target_id=session_id, origin=origin
    )
    return redirect_with_flash(request, f"/console/lottery/{session_id}", done)


@router.post("/{session_id}/commit")
async def commit_session(
    request: Request, session: DbSession, principal: LotteryWriter, origin: Origin, session_id: uuid.UUID
) -> Response:
    async def act(lottery: LotterySession) -> None:
        await service.do_commit(session, lottery)

    done = tr(request, "The commitment is published. Entries open at the start of the window.")
    return await _transition(request, session, principal, origin, session_id, "commit", act, done)


@router.post("/{session_id}/close")
async def close_session(
    request: Request, session: DbSession, principal: LotteryWriter, origin: Origin, session_id: uuid.UUID
) -> Response:
    async def act(lottery: LotterySession) -> None:
        await service.do_close(session, lottery)

    done = tr(request, "The entries are frozen and their root is published.")
    return await _transition(request, session, principal, origin, session_id, "close", act, done)


@router.post("/{session_id}/draw")
async def draw_session(
    request: Request,
    session: DbSession,
    principal: LotteryWriter,
    runtime: RuntimeDep,
    origin: Origin,
    session_id: uuid.UUID,
    beacon: Text = "",
) -> Response:
    async def act(lottery: LotterySession) -> None:
        await service.do_draw(session, runtime.crypto, lottery, beacon=beacon)

    done = tr(request, "The winners are drawn and the server seed is revealed.")
    return await _transition(request, session, principal, origin, session_id, "draw", act, done)
