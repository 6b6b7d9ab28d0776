"""Channel REST API under `/api/v1/channel`: dealers, stores, guides, partner accounts for operators
and integrations; sign-in and "my data" for partners."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile

from zhongtai.channel import importer, partners, places, rules, service
from zhongtai.channel.errors import InvalidFields, StoreNotFound
from zhongtai.channel.models import Dealer, Store
from zhongtai.channel.permissions import CHANNEL_MANAGE, CHANNEL_READ
from zhongtai.channel.schemas import (
    DealerCreate,
    DealerOut,
    DealerUpdate,
    GuideCreate,
    GuideOut,
    GuideUpdate,
    PartnerCreate,
    PartnerMeOut,
    PartnerOut,
    PartnerPassword,
    PartnerSessionOut,
    PartnerSignIn,
    PartnerUpdate,
    StoreCreate,
    StoreOut,
    StoreUpdate,
    TerritoryCheck,
    TerritoryCheckOut,
)
from zhongtai.core import tenancy
from zhongtai.core.consumers import get_active_tenant
from zhongtai.core.errors import PermissionDenied
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.schemas import OtpRequest, OtpSentOut, Paged
from zhongtai.core.web import (
    CurrentPrincipal,
    DbSession,
    Origin,
    PageDep,
    RuntimeDep,
    rate_limit,
    register_bearer_resolver,
    require,
)
from zhongtai.kit.crud import ImportReport, check_upload_size, read_upload, report_of
from zhongtai.kit.tabular import ImportHasErrors, ImportMode

router = APIRouter(prefix="/api/v1/channel", tags=["channel"])

register_bearer_resolver(partners.PARTNER_TOKEN_PREFIX + "_", partners.authenticate_partner)

ChannelReader = Annotated[Principal, Depends(require(CHANNEL_READ))]
ChannelManager = Annotated[Principal, Depends(require(CHANNEL_MANAGE))]
Text = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")]
Status = Annotated[str | None, Query(pattern="^(active|archived)$")]


async def current_partner(principal: CurrentPrincipal) -> Principal:
    if principal.kind is not PrincipalKind.PARTNER:
        raise PermissionDenied("This needs a partner sign-in.")
    return principal


CurrentPartner = Annotated[Principal, Depends(current_partner)]


def _sent(values: dict[str, Any], *, nullable: set[str]) -> dict[str, Any]:
    refused = sorted(name for name, value in values.items() if value is None and name not in nullable)
    if refused:
        raise InvalidFields([rules.Problem(refused[0], "This field cannot be null.")])
    return values


async def _store_out(session: DbSession, store: Store, dealer: Dealer | None = None) -> StoreOut:
    dealer = dealer or await service.get_dealer(session, store.dealer_id)
    return StoreOut.of(store, dealer, service.store_in_territory(dealer, store))


async def _stores_out(session: DbSession, stores: list[Store]) -> list[StoreOut]:
    dealers = await service.dealers_by_id(session, [s.dealer_id for s in stores])
    return [StoreOut.of(s, dealers[s.dealer_id], service.store_in_territory(dealers[s.dealer_id], s)) for s in stores]


# Dealers.


@router.get("/dealers", response_model=Paged[DealerOut])
async def list_dealers(
    session: DbSession, _: ChannelReader, page: PageDep, q: Text = None, status: Status = None
) -> Paged[DealerOut]:
    rows, total = await service.list_dealers(session, text=q, status=status, limit=page.per_page, offset=page.offset)
    return Paged(items=[DealerOut.of(r) for r in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/dealers", response_model=DealerOut, status_code=201)
async def create_dealer(
    body: DealerCreate, session: DbSession, actor: ChannelManager, runtime: RuntimeDep, origin: Origin
) -> DealerOut:
    draft = rules.DealerDraft(**body.model_dump())
    return DealerOut.of(await service.do_create_dealer(session, actor, runtime.crypto, draft, origin=origin))


@router.get("/dealers/{dealer_id}", response_model=DealerOut)
async def get_dealer(dealer_id: uuid.UUID, session: DbSession, _: ChannelReader) -> DealerOut:
    return DealerOut.of(await service.get_dealer(session, dealer_id))


@router.patch("/dealers/{dealer_id}", response_model=DealerOut)
async def update_dealer(
    dealer_id: uuid.UUID,
    body: DealerUpdate,
    session: DbSession,
    actor: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
) -> DealerOut:
    current = service.dealer_draft_of(await service.get_dealer(session, dealer_id), runtime.crypto)
    sent = _sent(body.model_dump(exclude_unset=True), nullable={"polygons"})
    draft = replace(current, **sent)
    return DealerOut.of(await service.do_update_dealer(session, actor, runtime.crypto, dealer_id, draft, origin=origin))


@router.post("/dealers/{dealer_id}/archive", response_model=DealerOut)
async def archive_dealer(dealer_id: uuid.UUID, session: DbSession, actor: ChannelManager, origin: Origin) -> DealerOut:
    return DealerOut.of(await service.do_set_dealer_archived(session, actor, dealer_id, archived=True, origin=origin))


@router.post("/dealers/{dealer_id}/unarchive", response_model=DealerOut)
async def unarchive_dealer(
    dealer_id: uuid.UUID, session: DbSession, actor: ChannelManager, origin: Origin
) -> DealerOut:
    return DealerOut.of(await service.do_set_dealer_archived(session, actor, dealer_id, archived=False, origin=origin))


@router.post("/dealers/{dealer_id}/territory-check", response_model=TerritoryCheckOut)
async def check_territory(
    dealer_id: uuid.UUID, body: TerritoryCheck, session: DbSession, _: ChannelReader
) -> TerritoryCheckOut:
    """Whether a point lies inside the dealer's territory, and the regions it lies in (changes nothing)."""
    latitude, longitude = body.latitude, body.longitude
    dealer = await service.get_dealer(session, dealer_id)
    place = places.locate(latitude, longitude)
    inside = places.territory_contains(
        list(dealer.territory_region_codes), list(dealer.territory_polygons), latitude, longitude
    )
    codes = [c for c in (place.province_code, place.city_code, place.county_code) if c] if place else []
    return TerritoryCheckOut(
        dealer_id=dealer.id,
        latitude=latitude,
        longitude=longitude,
        inside=inside,
        region_codes=codes,
        place=place.label if place else None,
    )


# Stores.


@router.get("/stores", response_model=Paged[StoreOut])
async def list_stores(
    session: DbSession,
    _: ChannelReader,
    page: PageDep,
    q: Text = None,
    status: Status = None,
    dealer_id: uuid.UUID | None = None,
) -> Paged[StoreOut]:
    rows, total = await service.list_stores(
        session, text=q, status=status, dealer_id=dealer_id, limit=page.per_page, offset=page.offset
    )
    return Paged(items=await _stores_out(session, rows), total=total, page=page.page, per_page=page.per_page)


@router.post("/stores", response_model=StoreOut, status_code=201)
async def create_store(
    body: StoreCreate, session: DbSession, actor: ChannelManager, runtime: RuntimeDep, origin: Origin
) -> StoreOut:
    draft = rules.StoreDraft(**body.model_dump())
    return await _store_out(
        session, await service.do_create_store(session, actor, runtime.crypto, draft, origin=origin)
    )


@router.get("/stores/{store_id}", response_model=StoreOut)
async def get_store(store_id: uuid.UUID, session: DbSession, _: ChannelReader) -> StoreOut:
    return await _store_out(session, await service.get_store(session, store_id))


@router.patch("/stores/{store_id}", response_model=StoreOut)
async def update_store(
    store_id: uuid.UUID,
    body: StoreUpdate,
    session: DbSession,
    actor: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
) -> StoreOut:
    current = await service.store_draft_of(session, await service.get_store(session, store_id), runtime.crypto)
    sent = _sent(body.model_dump(exclude_unset=True), nullable={"latitude", "longitude"})
    store = await service.do_update_store(
        session, actor, runtime.crypto, store_id, replace(current, **sent), origin=origin
    )
    return await _store_out(session, store)


@router.post("/stores/{store_id}/archive", response_model=StoreOut)
async def archive_store(store_id: uuid.UUID, session: DbSession, actor: ChannelManager, origin: Origin) -> StoreOut:
    store = await service.do_set_store_archived(session, actor, store_id, archived=True, origin=origin)
    return await _store_out(session, store)


@router.post("/stores/{store_id}/unarchive", response_model=StoreOut)
async def unarchive_store(store_id: uuid.UUID, session: DbSession, actor: ChannelManager, origin: Origin) -> StoreOut:
    store = await service.do_set_store_archived(session, actor, store_id, archived=False, origin=origin)
    return await _store_out(session, store)


# Guides.


@router.get("/guides", response_model=Paged[GuideOut])
async def list_guides(
    session: DbSession,
    _: ChannelReader,
    page: PageDep,
    store_id: uuid.UUID | None = None,
    q: Text = None,
    status: Status = None,
) -> Paged[GuideOut]:
    rows, total = await service.list_guides(
        session, store_id=store_id, text=q, status=status, limit=page.per_page, offset=page.offset
    )
    return Paged(items=[GuideOut.of(g) for g in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/stores/{store_id}/guides", response_model=GuideOut, status_code=201)
async def create_guide(
    store_id: uuid.UUID,
    body: GuideCreate,
    session: DbSession,
    actor: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
) -> GuideOut:
    draft = rules.GuideDraft(name=body.name, phone=body.phone)
    return GuideOut.of(await service.do_create_guide(session, actor, runtime.crypto, store_id, draft, origin=origin))


@router.get("/guides/{guide_id}", response_model=GuideOut)
async def get_guide(guide_id: uuid.UUID, session: DbSession, _: ChannelReader) -> GuideOut:
    return GuideOut.of(await service.get_guide(session, guide_id))


@router.patch("/guides/{guide_id}", response_model=GuideOut)
async def update_guide(
    guide_id: uuid.UUID,
    body: GuideUpdate,
    session: DbSession,
    actor: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
) -> GuideOut:
    change = service.GuideChange(**_sent(body.model_dump(exclude_unset=True), nullable=set()))
    return GuideOut.of(await service.do_update_guide(session, actor, runtime.crypto, guide_id, change, origin=origin))


@router.post("/guides/{guide_id}/archive", response_model=GuideOut)
async def archive_guide(guide_id: uuid.UUID, session: DbSession, actor: ChannelManager, origin: Origin) -> GuideOut:
    return GuideOut.of(await service.do_set_guide_archived(session, actor, guide_id, archived=True, origin=origin))


@router.post("/guides/{guide_id}/unarchive", response_model=GuideOut)
async def unarchive_guide(guide_id: uuid.UUID, session: DbSession, actor: ChannelManager, origin: Origin) -> GuideOut:
    return GuideOut.of(await service.do_set_guide_archived(session, actor, guide_id, archived=False, origin=origin))


# Import.


IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "the file is larger than 5 MB or has more than 50,000 rows"},
    422: {"description": "some rows have errors and mode is `all`: nothing was imported; `data` is the report"},
}
ImportFile = Annotated[UploadFile, File(description="CSV (UTF-8 or GB18030) or XLSX; first row names the columns")]
ImportModeForm = Annotated[ImportMode, Form(description="`all`: nothing unless every row is valid")]
DryRun = Annotated[bool, Form(description="check only, write nothing")]


async def _import(
    kind: str,
    session: DbSession,
    actor: Principal,
    runtime: RuntimeDep,
    origin: Origin,
    file: UploadFile,
    mode: ImportMode,
    dry_run: bool,
) -> ImportReport:
    content = await read_upload(file)
    result = await importer.do_import(
        session,
        actor,
        runtime.crypto,
        kind=kind,
        filename=file.filename or "",
        content=content,
        mode=mode,
        dry_run=dry_run,
        origin=origin,
    )
    report = report_of(result)
    if result.errors and mode is ImportMode.ALL and not dry_run:
        raise ImportHasErrors(
            f"{result.invalid_rows} of {result.rows} rows have errors; nothing was imported. "
            "Fix them, or import only the valid rows.",
            **report.model_dump(mode="json"),
        )
    return report


@router.post(
    "/import/dealers",
    response_model=ImportReport,
    dependencies=[Depends(check_upload_size)],
    responses=IMPORT_RESPONSES,
)
async def import_dealers(
    session: DbSession,
    actor: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    file: ImportFile,
    mode: ImportModeForm = ImportMode.ALL,
    dry_run: DryRun = False,
) -> ImportReport:
    """Dealers from a file, matched by code: code, name, contact, phone, region codes (`;`-separated)."""
    return await _import("dealers", session, actor, runtime, origin, file, mode, dry_run)


@router.post(
    "/import/stores",
    response_model=ImportReport,
    dependencies=[Depends(check_upload_size)],
    responses=IMPORT_RESPONSES,
)
async def import_stores(
    session: DbSession,
    actor: ChannelManager,
    runtime: RuntimeDep,
    origin: Origin,
    file: ImportFile,
    mode: ImportModeForm = ImportMode.ALL,
    dry_run: DryRun = False,
) -> ImportReport:
    """Stores from a file, matched by code: code, name, dealer code, address, contact, phone, latitude,
    longitude (WGS-84). Import the dealers first."""
    return await _import("stores", session, actor, runtime, origin, file, mode, dry_run)


# Partner accounts (operators).


@router.get("/partners", response_model=Paged[PartnerOut])
async def list_partners(
    session: DbSession,
    _: ChannelReader,
    page: PageDep,
    dealer_id: uuid.UUID | None = None,
    store_id: uuid.UUID | None = None,
) -> Paged[PartnerOut]:
    rows, total = await partners.list_partners(
        session, dealer_id=dealer_id, store_id=store_id, limit=page.per_page, offset=page.offset
    )
    return Paged(items=[PartnerOut.of(a) for a in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/partners", response_model=PartnerOut, status_code=201)
async def create_partner(
    body: PartnerCreate, session: DbSession, actor: ChannelManager, runtime: RuntimeDep, origin: Origin
) -> PartnerOut:
    draft = partners.PartnerDraft(**body.model_dump())
    return PartnerOut.of(await partners.do_create_partner(session, actor, runtime.crypto, draft, origin=origin))


@router.patch("/partners/{partner_id}", response_model=PartnerOut)
async def update_partner(
    partner_id: uuid.UUID, body: PartnerUpdate, session: DbSession, actor: ChannelManager, origin: Origin
) -> PartnerOut:
    account = await partners.do_update_partner(
        session, actor, partner_id, is_active=body.is_active, password=body.password, origin=origin
    )
    return PartnerOut.of(account)


# Partner sign-in (public, per brand) and the signed-in partner.

PublicPartnerLimit = Depends(rate_limit("partner-signin", limit=30, period=60.0))


@router.post(
    "/public/{tenant_slug}/partner/otp",
    response_model=OtpSentOut,
    status_code=202,
    tags=["partner"],
    dependencies=[PublicPartnerLimit],
)
async def request_partner_otp(
    tenant_slug: str, body: OtpRequest, session: DbSession, runtime: RuntimeDep, origin: Origin
) -> OtpSentOut:
    tenancy.scope_all_tenants(session)
    tenant = await get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    sent = await partners.do_request_partner_otp(
        session,
        crypto=runtime.crypto,
        limiter=runtime.limiter,
        sms=runtime.sms,
        tenant=tenant,
        phone=body.phone,
        ip=origin.ip,
        ttl_seconds=runtime.settings.otp_ttl_seconds,
    )
    return OtpSentOut(
        challenge_id=sent.challenge_id, expires_in_seconds=sent.expires_in_seconds, phone_masked=sent.phone_masked
    )


@router.post(
    "/public/{tenant_slug}/partner/sessions",
    response_model=PartnerSessionOut,
    status_code=201,
    tags=["partner"],
    dependencies=[PublicPartnerLimit],
)
async def partner_sign_in(
    tenant_slug: str, body: PartnerSignIn, session: DbSession, runtime: RuntimeDep, origin: Origin
) -> PartnerSessionOut:
    if (body.password is None) == (body.code is None):
        raise InvalidFields([rules.Problem("password", "Send either a password or a one-time code.")])
    tenancy.scope_all_tenants(session)
    tenant = await get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    if body.password is not None:
        signed = await partners.do_password_sign_in(
            session,
            crypto=runtime.crypto,
            limiter=runtime.limiter,
            tenant=tenant,
            phone=body.phone,
            password=body.password,
            origin=origin,
        )
    else:
        signed = await partners.do_otp_sign_in(session, crypto=runtime.crypto, phone=body.phone, code=body.code or "")
    return PartnerSessionOut(token=signed.token, partner=PartnerOut.of(signed.account))


@router.get("/partner/me", response_model=PartnerMeOut, tags=["partner"])
async def partner_me(principal: CurrentPartner, session: DbSession) -> PartnerMeOut:
    scope = await partners.partner_scope(session, principal)
    dealer = await service.get_dealer(session, scope.dealer_id)
    store = await service.get_store(session, scope.store_id) if scope.store_id else None
    return PartnerMeOut(
        partner=PartnerOut.of(scope.account),
        dealer=DealerOut.of(dealer),
        store=await _store_out(session, store, dealer) if store else None,
    )


@router.get("/partner/stores", response_model=Paged[StoreOut], tags=["partner"])
async def partner_stores(principal: CurrentPartner, session: DbSession, page: PageDep) -> Paged[StoreOut]:
    """The partner's own store, or every store its dealer supplies."""
    scope = await partners.partner_scope(session, principal)
    if scope.store_id is not None:
        rows = [await service.get_store(session, scope.store_id)]
        return Paged(items=await _stores_out(session, rows), total=1, page=1, per_page=page.per_page)
    rows, total = await service.list_stores(session, dealer_id=scope.dealer_id, limit=page.per_page, offset=page.offset)
    return Paged(items=await _stores_out(session, rows), total=total, page=page.page, per_page=page.per_page)


@router.get("/partner/stores/{store_id}", response_model=StoreOut, tags=["partner"])
async def partner_store(store_id: uuid.UUID, principal: CurrentPartner, session: DbSession) -> StoreOut:
    scope = await partners.partner_scope(session, principal)
    store = await service.get_store(session, store_id)
    if not scope.may_see_store(store):
        raise StoreNotFound()  # as if it did not exist: a partner learns nothing of others
    return await _store_out(session, store)


@router.put("/partner/password", status_code=204, tags=["partner"])
async def partner_set_password(body: PartnerPassword, principal: CurrentPartner, session: DbSession) -> Response:
    """Set or change the partner's own password (signs out its other sessions)."""
    await partners.do_set_own_password(session, principal, body.password)
    return Response(status_code=204)


@router.delete("/partner/session", status_code=204, tags=["partner"])
async def partner_sign_out(principal: CurrentPartner, session: DbSession) -> Response:
    await partners.do_sign_out_partner(session, principal)
    return Response(status_code=204)


# Scans, inventory and diversion (their own module, on this router).
from zhongtai.channel.scan_api import router as _scan_router  # noqa: E402

router.include_router(_scan_router)
