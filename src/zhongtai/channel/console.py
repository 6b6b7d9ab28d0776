"""Console pages of the channel: dealers (with detail, territory and stores), stores (with guides),
shopping guides, partner accounts, import of dealers and stores, and a map of stores and territories.

Rules live in `channel.service` and `channel.rules`; these handlers parse forms, call the service,
and either redirect with a flash message or re-render the form with each message next to its field.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from markupsafe import Markup

from zhongtai.catalog.api import check_upload_size, read_upload
from zhongtai.catalog.console import import_error_message as catalog_import_error
from zhongtai.catalog.importer import MAX_BYTES, MAX_REPORTED_ERRORS, MAX_ROWS, ImportMode, ImportResult
from zhongtai.channel import importer, mapsvg, partners, places, rules, service
from zhongtai.channel.errors import DuplicateCode, DuplicatePhone, InvalidFields
from zhongtai.channel.models import PARTNER_ROLES, STATUSES, Dealer, Guide, Store
from zhongtai.channel.permissions import CHANNEL_MANAGE, CHANNEL_READ
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, RuntimeDep
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import PER_PAGE, error_field, localize_error, redirect_with_flash, render, tr

router = APIRouter(prefix="/console/channel", include_in_schema=False)

ChannelReader = Annotated[Principal, require_page(CHANNEL_READ)]
ChannelManager = Annotated[Principal, require_page(CHANNEL_MANAGE)]
Text = Annotated[str, Form(max_length=300)]
LongText = Annotated[str, Form(max_length=200_000)]

STATUS_LABELS = {"active": "Active", "archived": "Archived"}
ROLE_LABELS = {"dealer": "Dealer staff", "store": "Store clerk", "guide": "Shopping guide"}
MAP_STORE_LIMIT = 2_000


def _page(value: int) -> int:
    return max(1, min(value, 100_000))


def _errors(request: Request, error: AppError) -> dict[str, str]:
    if isinstance(error, InvalidFields):
        found: dict[str, str] = {}
        for problem in error.problems:
            found.setdefault(problem.field, tr(request, problem.template, **problem.values))
        return found
    if isinstance(error, DuplicateCode):
        return {"code": tr(request, "This code is already taken.")}
    if isinstance(error, DuplicatePhone):
        return {"phone": tr(request, "This phone number is already taken.")}
    return {error_field(error): localize_error(request, error)}


def _float(name: str, text: str, problems: list[rules.Problem]) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text.strip())
    except ValueError:
        problems.append(rules.Problem(name, "Not a number: '{value}'.", {"value": text.strip()[:40]}))
        return None


def _polygons(text: str, problems: list[rules.Problem]) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        problems.append(rules.Problem("polygons", "The territory drawing is not GeoJSON (JSON text)."))
        return None


def _region_codes(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").replace(";", " ").replace("，", " ").split() if part]


# Dealers.

EMPTY_DEALER = dict.fromkeys(("code", "name", "contact_name", "phone", "region_codes", "polygons"), "")


def _dealer_draft(form: dict[str, str]) -> rules.DealerDraft:
    problems: list[rules.Problem] = []
    draft = rules.DealerDraft(
        code=form["code"],
        name=form["name"],
        contact_name=form["contact_name"],
        phone=form["phone"],
        region_codes=_region_codes(form["region_codes"]),
        polygons=_polygons(form["polygons"], problems),
    )
    if problems:
        raise InvalidFields(problems)
    return draft


def _dealer_form_of(dealer: Dealer, phone: str | None) -> dict[str, str]:
    polygons = rules.as_geojson(list(dealer.territory_polygons))
    return {
        "code": dealer.code,
        "name": dealer.name,
        "contact_name": dealer.contact_name,
        "phone": phone or "",
        "region_codes": " ".join(dealer.territory_region_codes),
        "polygons": json.dumps(polygons, ensure_ascii=False) if polygons else "",
    }


@router.get("/dealers")
async def dealers_page(
    request: Request, session: DbSession, principal: ChannelReader, q: str = "", status: str = "", page: int = 1
) -> Response:
    page = _page(page)
    status = status if status in STATUSES else ""
    rows, total = await service.list_dealers(
        session, text=q[:100] or None, status=status or None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    return render(
        request,
        "channel/dealers.html",
        {
            "dealers": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "q": q,
            "status": status,
            "statuses": STATUS_LABELS,
            "can_manage": principal.can(CHANNEL_MANAGE),
            "region_label": places.region_label,
        },
    )


def _dealer_form(
    request: Request,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    dealer: Dealer | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "channel/dealer_form.html",
        {"form": form, "errors": errors or {}, "dealer": dealer, "max_vertices": rules.MAX_VERTICES},
        status_code=status_code,
    )


@router.get("/dealers/new")
async def new_dealer_page(request: Request, principal: ChannelManager) -> Response:
    return _dealer_form(request, form=dict(EMPTY_DEALER))


@router.post("/dealers")
async def create_dealer(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    code: Text = "",
    name: Text = "",
    contact_name: Text = "",
    phone: Text = "",
    region_codes: LongText = "",
    polygons: LongText = "",
) -> Response:
    form = {"code": code, "name": name, "contact_name": contact_name, "phone": phone}
    form |= {"region_codes": region_codes, "polygons": polygons}
    try:
        dealer = await service.do_create_dealer(session, principal, runtime.crypto, _dealer_draft(form), origin=origin)
    except AppError as exc:
        await session.rollback()
        return _dealer_form(request, form=form, errors=_errors(request, exc), status_code=exc.status_code)
    return redirect_with_flash(
        request, f"/console/channel/dealers/{dealer.id}", tr(request, "Dealer {name} was created.", name=dealer.name)
    )


@router.get("/dealers/{dealer_id}")
async def dealer_page(
    request: Request, session: DbSession, principal: ChannelReader, dealer_id: uuid.UUID, page: int = 1
) -> Response:
    dealer = await service.get_dealer(session, dealer_id)
    page = _page(page)
    stores, total = await service.list_stores(
        session, dealer_id=dealer.id, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    accounts, _count = await partners.list_partners(session, dealer_id=dealer.id, limit=50, offset=0)
    located = [s for s in stores if s.latitude is not None and s.longitude is not None]
    svg = mapsvg.render_map(
        [_map_store(s, dealer) for s in located],
        [mapsvg.MapTerritory(dealer.code, dealer.name, list(dealer.territory_polygons))],
        title=tr(request, "Stores and territory of {name}", name=dealer.name),
    )
    return render(
        request,
        "channel/dealer.html",
        {
            "dealer": dealer,
            "stores": stores,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "in_territory": {s.id: service.store_in_territory(dealer, s) for s in stores},
            "accounts": accounts,
            "role_labels": ROLE_LABELS,
            "region_label": places.region_label,
            "vertices": rules.vertex_count(list(dealer.territory_polygons)),
            "map_svg": Markup(svg),  # noqa: S704 - built by mapsvg with every text escaped
            "can_manage": principal.can(CHANNEL_MANAGE),
        },
    )


@router.get("/dealers/{dealer_id}/edit")
async def edit_dealer_page(
    request: Request, session: DbSession, principal: ChannelManager, runtime: RuntimeDep, dealer_id: uuid.UUID
) -> Response:
    dealer = await service.get_dealer(session, dealer_id)
    return _dealer_form(request, form=_dealer_form_of(dealer, service.phone_of(dealer, runtime.crypto)), dealer=dealer)


@router.post("/dealers/{dealer_id}")
async def update_dealer(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    dealer_id: uuid.UUID,
    code: Text = "",
    name: Text = "",
    contact_name: Text = "",
    phone: Text = "",
    region_codes: LongText = "",
    polygons: LongText = "",
) -> Response:
    await service.get_dealer(session, dealer_id)
    form = {"code": code, "name": name, "contact_name": contact_name, "phone": phone}
    form |= {"region_codes": region_codes, "polygons": polygons}
    try:
        dealer = await service.do_update_dealer(
            session, principal, runtime.crypto, dealer_id, _dealer_draft(form), origin=origin
        )
    except AppError as exc:
        await session.rollback()
        dealer = await service.get_dealer(session, dealer_id)
        return _dealer_form(
            request, form=form, errors=_errors(request, exc), dealer=dealer, status_code=exc.status_code
        )
    return redirect_with_flash(
        request, f"/console/channel/dealers/{dealer.id}", tr(request, "Dealer {name} was updated.", name=dealer.name)
    )


@router.post("/dealers/{dealer_id}/archive")
async def archive_dealer(
    request: Request, session: DbSession, principal: ChannelManager, origin: Origin, dealer_id: uuid.UUID
) -> Response:
    dealer = await service.do_set_dealer_archived(session, principal, dealer_id, archived=True, origin=origin)
    return redirect_with_flash(
        request, f"/console/channel/dealers/{dealer.id}", tr(request, "Dealer {name} was archived.", name=dealer.name)
    )


@router.post("/dealers/{dealer_id}/unarchive")
async def unarchive_dealer(
    request: Request, session: DbSession, principal: ChannelManager, origin: Origin, dealer_id: uuid.UUID
) -> Response:
    dealer = await service.do_set_dealer_archived(session, principal, dealer_id, archived=False, origin=origin)
    return redirect_with_flash(
        request,
        f"/console/channel/dealers/{dealer.id}",
        tr(request, "Dealer {name} is active again.", name=dealer.name),
    )


# Stores.

EMPTY_STORE = dict.fromkeys(
    ("code", "name", "dealer_code", "address", "contact_name", "phone", "latitude", "longitude"), ""
)


def _store_draft(form: dict[str, str]) -> rules.StoreDraft:
    problems: list[rules.Problem] = []
    draft = rules.StoreDraft(
        code=form["code"],
        name=form["name"],
        dealer_code=form["dealer_code"],
        address=form["address"],
        contact_name=form["contact_name"],
        phone=form["phone"],
        latitude=_float("latitude", form["latitude"], problems),
        longitude=_float("longitude", form["longitude"], problems),
    )
    if problems:
        raise InvalidFields(problems)
    return draft


def _map_store(store: Store, dealer: Dealer) -> mapsvg.MapStore:
    assert store.latitude is not None
    assert store.longitude is not None
    return mapsvg.MapStore(
        store.code, store.name, store.latitude, store.longitude, dealer.code, service.store_in_territory(dealer, store)
    )


@router.get("/stores")
async def stores_page(
    request: Request, session: DbSession, principal: ChannelReader, q: str = "", status: str = "", page: int = 1
) -> Response:
    page = _page(page)
    status = status if status in STATUSES else ""
    rows, total = await service.list_stores(
        session, text=q[:100] or None, status=status or None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    dealers = await service.dealers_by_id(session, [s.dealer_id for s in rows])
    return render(
        request,
        "channel/stores.html",
        {
            "stores": rows,
            "dealers": dealers,
            "in_territory": {s.id: service.store_in_territory(dealers[s.dealer_id], s) for s in rows},
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "q": q,
            "status": status,
            "statuses": STATUS_LABELS,
            "can_manage": principal.can(CHANNEL_MANAGE),
            "region_label": places.region_label,
        },
    )


async def _store_form(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    store: Store | None = None,
    status_code: int = 200,
) -> Response:
    guides: list[Guide] = []
    accounts: list[Any] = []
    if store is not None:
        guides, _total = await service.list_guides(session, store_id=store.id, limit=200, offset=0)
        accounts, _count = await partners.list_partners(session, store_id=store.id, limit=50, offset=0)
    return render(
        request,
        "channel/store_form.html",
        {
            "form": form,
            "errors": errors or {},
            "store": store,
            "guides": guides,
            "accounts": accounts,
            "role_labels": ROLE_LABELS,
            "region_label": places.region_label,
            "can_manage": principal.can(CHANNEL_MANAGE),
        },
        status_code=status_code,
    )


@router.get("/stores/new")
async def new_store_page(request: Request, session: DbSession, principal: ChannelManager, dealer: str = "") -> Response:
    return await _store_form(request, session, principal, form=dict(EMPTY_STORE, dealer_code=dealer[:40]))


@router.post("/stores")
async def create_store(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    code: Text = "",
    name: Text = "",
    dealer_code: Text = "",
    address: Text = "",
    contact_name: Text = "",
    phone: Text = "",
    latitude: Text = "",
    longitude: Text = "",
) -> Response:
    form = {"code": code, "name": name, "dealer_code": dealer_code, "address": address}
    form |= {"contact_name": contact_name, "phone": phone, "latitude": latitude, "longitude": longitude}
    try:
        store = await service.do_create_store(session, principal, runtime.crypto, _store_draft(form), origin=origin)
    except AppError as exc:
        await session.rollback()
        return await _store_form(
            request, session, principal, form=form, errors=_errors(request, exc), status_code=exc.status_code
        )
    return redirect_with_flash(
        request, f"/console/channel/stores/{store.id}", tr(request, "Store {name} was created.", name=store.name)
    )


@router.get("/stores/{store_id}")
async def edit_store_page(
    request: Request, session: DbSession, principal: ChannelReader, runtime: RuntimeDep, store_id: uuid.UUID
) -> Response:
    store = await service.get_store(session, store_id)
    draft = await service.store_draft_of(session, store, runtime.crypto)
    form = {
        "code": draft.code,
        "name": draft.name,
        "dealer_code": draft.dealer_code,
        "address": draft.address,
        "contact_name": draft.contact_name,
        "phone": draft.phone if principal.can(CHANNEL_MANAGE) else (store.phone_masked or ""),
        "latitude": "" if draft.latitude is None else repr(draft.latitude),
        "longitude": "" if draft.longitude is None else repr(draft.longitude),
    }
    return await _store_form(request, session, principal, form=form, store=store)


@router.post("/stores/{store_id}")
async def update_store(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    store_id: uuid.UUID,
    code: Text = "",
    name: Text = "",
    dealer_code: Text = "",
    address: Text = "",
    contact_name: Text = "",
    phone: Text = "",
    latitude: Text = "",
    longitude: Text = "",
) -> Response:
    await service.get_store(session, store_id)
    form = {"code": code, "name": name, "dealer_code": dealer_code, "address": address}
    form |= {"contact_name": contact_name, "phone": phone, "latitude": latitude, "longitude": longitude}
    try:
        store = await service.do_update_store(
            session, principal, runtime.crypto, store_id, _store_draft(form), origin=origin
        )
    except AppError as exc:
        await session.rollback()
        store = await service.get_store(session, store_id)
        return await _store_form(
            request,
            session,
            principal,
            form=form,
            errors=_errors(request, exc),
            store=store,
            status_code=exc.status_code,
        )
    return redirect_with_flash(
        request, f"/console/channel/stores/{store.id}", tr(request, "Store {name} was updated.", name=store.name)
    )


@router.post("/stores/{store_id}/archive")
async def archive_store(
    request: Request, session: DbSession, principal: ChannelManager, origin: Origin, store_id: uuid.UUID
) -> Response:
    store = await service.do_set_store_archived(session, principal, store_id, archived=True, origin=origin)
    return redirect_with_flash(
        request, f"/console/channel/stores/{store.id}", tr(request, "Store {name} was archived.", name=store.name)
    )


@router.post("/stores/{store_id}/unarchive")
async def unarchive_store(
    request: Request, session: DbSession, principal: ChannelManager, origin: Origin, store_id: uuid.UUID
) -> Response:
    store = await service.do_set_store_archived(session, principal, store_id, archived=False, origin=origin)
    return redirect_with_flash(
        request, f"/console/channel/stores/{store.id}", tr(request, "Store {name} is active again.", name=store.name)
    )


@router.post("/stores/{store_id}/guides")
async def create_guide(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    store_id: uuid.UUID,
    name: Text = "",
    phone: Text = "",
) -> Response:
    store = await service.get_store(session, store_id)
    try:
        guide = await service.do_create_guide(
            session, principal, runtime.crypto, store.id, rules.GuideDraft(name=name, phone=phone), origin=origin
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        message = next(iter(_errors(request, exc).values()))
        return redirect_with_flash(request, f"/console/channel/stores/{store_id}", message, "error")
    return redirect_with_flash(
        request, f"/console/channel/stores/{store_id}", tr(request, "Guide {name} was added.", name=guide.name)
    )


# Guides.


@router.get("/guides")
async def guides_page(
    request: Request, session: DbSession, principal: ChannelReader, q: str = "", status: str = "", page: int = 1
) -> Response:
    page = _page(page)
    status = status if status in STATUSES else ""
    rows, total = await service.list_guides(
        session, text=q[:100] or None, status=status or None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    stores = {s.id: s for s in [await service.get_store(session, sid) for sid in {g.store_id for g in rows}]}
    return render(
        request,
        "channel/guides.html",
        {
            "guides": rows,
            "stores": stores,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "q": q,
            "status": status,
            "statuses": STATUS_LABELS,
            "can_manage": principal.can(CHANNEL_MANAGE),
        },
    )


async def _guide_form(
    request: Request,
    session: DbSession,
    guide: Guide,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    store = await service.get_store(session, guide.store_id)
    return render(
        request,
        "channel/guide_form.html",
        {"guide": guide, "store": store, "form": form, "errors": errors or {}},
        status_code=status_code,
    )


@router.get("/guides/{guide_id}")
async def edit_guide_page(
    request: Request, session: DbSession, principal: ChannelManager, runtime: RuntimeDep, guide_id: uuid.UUID
) -> Response:
    guide = await service.get_guide(session, guide_id)
    store = await service.get_store(session, guide.store_id)
    form = {"name": guide.name, "phone": service.phone_of(guide, runtime.crypto) or "", "store_code": store.code}
    return await _guide_form(request, session, guide, form=form)


@router.post("/guides/{guide_id}")
async def update_guide(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    guide_id: uuid.UUID,
    name: Text = "",
    phone: Text = "",
    store_code: Text = "",
) -> Response:
    await service.get_guide(session, guide_id)
    form = {"name": name, "phone": phone, "store_code": store_code}
    try:
        store = await service.find_store_by_code(session, store_code)
        if store is None:
            raise InvalidFields([rules.Problem("store_code", "No store has the code {value}.", {"value": store_code})])
        guide = await service.do_update_guide(
            session,
            principal,
            runtime.crypto,
            guide_id,
            service.GuideChange(name=name, phone=phone, store_id=store.id),
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        guide = await service.get_guide(session, guide_id)
        return await _guide_form(
            request, session, guide, form=form, errors=_errors(request, exc), status_code=exc.status_code
        )
    return redirect_with_flash(
        request, f"/console/channel/stores/{guide.store_id}", tr(request, "Guide {name} was updated.", name=guide.name)
    )


@router.post("/guides/{guide_id}/archive")
async def archive_guide(
    request: Request, session: DbSession, principal: ChannelManager, origin: Origin, guide_id: uuid.UUID
) -> Response:
    guide = await service.do_set_guide_archived(session, principal, guide_id, archived=True, origin=origin)
    return redirect_with_flash(
        request, f"/console/channel/stores/{guide.store_id}", tr(request, "Guide {name} was archived.", name=guide.name)
    )


@router.post("/guides/{guide_id}/unarchive")
async def unarchive_guide(
    request: Request, session: DbSession, principal: ChannelManager, origin: Origin, guide_id: uuid.UUID
) -> Response:
    guide = await service.do_set_guide_archived(session, principal, guide_id, archived=False, origin=origin)
    return redirect_with_flash(
        request,
        f"/console/channel/stores/{guide.store_id}",
        tr(request, "Guide {name} is active again.", name=guide.name),
    )


# Partner accounts.


@router.post("/partners")
async def create_partner(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    role: Text = "",
    target_id: Text = "",
    phone: Text = "",
    display_name: Text = "",
    password: Text = "",
    back: Text = "/console/channel/dealers",
) -> Response:
    back = back if back.startswith("/console/channel/") else "/console/channel/dealers"
    try:
        target = uuid.UUID(target_id)
    except ValueError:
        return redirect_with_flash(request, back, tr(request, "Choose what the account acts for."), "error")
    draft = partners.PartnerDraft(role if role in PARTNER_ROLES else "", target, phone, display_name, password or None)
    try:
        account = await partners.do_create_partner(session, principal, runtime.crypto, draft, origin=origin)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        return redirect_with_flash(request, back, next(iter(_errors(request, exc).values())), "error")
    message = tr(request, "Partner account for {phone} was created.", phone=account.phone_masked)
    return redirect_with_flash(request, back, message)


@router.post("/partners/{partner_id}")
async def update_partner(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    origin: Origin,
    partner_id: uuid.UUID,
    action: Text = "",
    password: Text = "",
    back: Text = "/console/channel/dealers",
) -> Response:
    back = back if back.startswith("/console/channel/") else "/console/channel/dealers"
    try:
        account = await partners.do_update_partner(
            session,
            principal,
            partner_id,
            is_active={"disable": False, "enable": True}.get(action),
            password=password if action == "password" else None,
            origin=origin,
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()
        return redirect_with_flash(request, back, next(iter(_errors(request, exc).values())), "error")
    return redirect_with_flash(
        request, back, tr(request, "Partner account {phone} was updated.", phone=account.phone_masked)
    )


# Import.


def _import_page(
    request: Request,
    *,
    kind: str = "dealers",
    result: ImportResult | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    report = [
        {"row": e.row, "column": e.column, "message": tr(request, e.template, **e.values)}
        for e in (result.reported_errors if result else [])
    ]
    return render(
        request,
        "channel/import.html",
        {
            "kind": kind,
            "result": result,
            "report": report,
            "error": error,
            "max_rows": MAX_ROWS,
            "max_megabytes": MAX_BYTES // (1024 * 1024),
            "max_reported": MAX_REPORTED_ERRORS,
            "columns": {"dealers": importer.DEALER_COLUMNS, "stores": importer.STORE_COLUMNS},
            "required": importer.REQUIRED,
        },
        status_code=status_code,
    )


@router.get("/import")
async def import_page(request: Request, principal: ChannelManager) -> Response:
    return _import_page(request)


@router.post("/import", dependencies=[Depends(check_upload_size)])
async def import_upload(
    request: Request,
    session: DbSession,
    principal: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    file: Annotated[UploadFile, File()],
    kind: Text = "dealers",
    mode: Text = "all",
    dry_run: Text = "",
) -> Response:
    kind = "stores" if kind == "stores" else "dealers"
    chosen = ImportMode.VALID_ROWS if mode == ImportMode.VALID_ROWS else ImportMode.ALL
    try:
        result = await importer.do_import(
            session,
            principal,
            runtime.crypto,
            kind=kind,
            filename=file.filename or "",
            content=await read_upload(file),
            mode=chosen,
            dry_run=dry_run == "1",
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        return _import_page(request, kind=kind, error=catalog_import_error(request, exc), status_code=exc.status_code)
    refused = bool(result.errors) and chosen is ImportMode.ALL and dry_run != "1"
    return _import_page(request, kind=kind, result=result, status_code=422 if refused else 200)


# Map.


@router.get("/map")
async def map_page(request: Request, session: DbSession, principal: ChannelReader, dealer: str = "") -> Response:
    chosen = await service.find_dealer_by_code(session, dealer[:40]) if dealer else None
    stores, total = await service.list_stores(
        session, status="active", dealer_id=chosen.id if chosen else None, limit=MAP_STORE_LIMIT, offset=0
    )
    dealers = await service.dealers_by_id(session, [s.dealer_id for s in stores])
    if chosen is not None:
        dealers[chosen.id] = chosen
    located = [s for s in stores if s.latitude is not None and s.longitude is not None]
    map_stores = [_map_store(s, dealers[s.dealer_id]) for s in located]
    territories = [
        mapsvg.MapTerritory(d.code, d.name, list(d.territory_polygons))
        for d in dealers.values()
        if d.territory_polygons
    ]
    svg = mapsvg.render_map(map_stores, territories, title=tr(request, "Stores and territories"))
    counts = {
        "inside": sum(1 for s in map_stores if s.in_territory is True),
        "outside": sum(1 for s in map_stores if s.in_territory is False),
        "unknown": sum(1 for s in map_stores if s.in_territory is None),
        "unlocated": len(stores) - len(located),
    }
    colors = mapsvg.dealer_colors([t.dealer_code for t in territories] + [s.dealer_code for s in map_stores])
    return render(
        request,
        "channel/map.html",
        {
            "map_svg": Markup(svg),  # noqa: S704 - built by mapsvg with every text escaped
            "dealer": chosen,
            "dealer_code": dealer,
            "counts": counts,
            "total": total,
            "limit": MAP_STORE_LIMIT,
            "colors": colors,
            "dealers": sorted(dealers.values(), key=lambda d: d.code),
            "region_label": places.region_label,
        },
    )


# Diversion alerts and the per-dealer report (their own module, on this router).
from zhongtai.channel.scan_console import router as _scan_console_router  # noqa: E402

router.include_router(_scan_console_router)
