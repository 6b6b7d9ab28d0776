"""Channel use cases for dealers, stores and guides: `check_*` validates, `do_*` changes state and
audits, `get_*`/`list_*` read. Services take a session and flush; the boundary commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel import places, rules
from zhongtai.channel.errors import (
    DealerNotFound,
    DuplicateCode,
    DuplicatePhone,
    GuideNotFound,
    InvalidFields,
    PartnerArchived,
    StoreNotFound,
)
from zhongtai.channel.models import ACTIVE, ARCHIVED, STATUSES, Dealer, Guide, Store
from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto, mask_phone
from zhongtai.core.principals import Principal

PHONE_PURPOSE = "channel.phone"
KEEP = None  # a draft field left as None keeps the stored value on update

Row = TypeVar("Row", Dealer, Store, Guide)


# Checks.


def check_dealer(draft: rules.DealerDraft) -> dict[str, Any]:
    checked = rules.Checked()
    rules.check_code(draft.code, checked)
    rules.check_text("name", draft.name, checked, required=True)
    rules.check_text("contact_name", draft.contact_name, checked)
    rules.check_optional_phone(draft.phone, checked)
    codes = rules.check_region_code_format(list(draft.region_codes), checked)
    checked.problems.extend(places.check_region_codes(codes))
    checked.values["region_codes"] = codes
    rules.check_polygons(draft.polygons, checked)
    if not any(p.field == "polygons" for p in checked.problems):
        checked.problems.extend(places.check_polygon_shapes(checked.values["polygons"]))
    if checked.problems:
        raise InvalidFields(checked.problems)
    return checked.values


def check_store(draft: rules.StoreDraft) -> dict[str, Any]:
    checked = rules.Checked()
    rules.check_code(draft.code, checked)
    rules.check_text("name", draft.name, checked, required=True)
    rules.check_code(draft.dealer_code, checked, name="dealer_code")
    rules.check_text("address", draft.address, checked)
    rules.check_text("contact_name", draft.contact_name, checked)
    rules.check_optional_phone(draft.phone, checked)
    rules.check_location(draft.latitude, draft.longitude, checked)
    if checked.problems:
        raise InvalidFields(checked.problems)
    return checked.values


def check_guide(draft: rules.GuideDraft) -> dict[str, Any]:
    checked = rules.Checked()
    rules.check_text("contact_name", draft.name, checked)
    checked.values["name"] = checked.values.pop("contact_name")
    if not checked.values["name"]:
        checked.problems.append(rules.Problem("name", "Enter a name."))
    rules.check_optional_phone(draft.phone, checked, required=True)
    if checked.problems:
        raise InvalidFields(checked.problems)
    return checked.values


# Shared helpers.


def _like(text: str) -> str:
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def set_phone(row: Any, crypto: Crypto, e164: str | None) -> None:
    if e164 is None:
        row.phone_ciphertext = row.phone_hash = row.phone_masked = None
        return
    row.phone_ciphertext = crypto.pii.encrypt(e164, purpose=PHONE_PURPOSE)
    row.phone_hash = crypto.lookup_hash(e164, purpose=PHONE_PURPOSE)
    row.phone_masked = mask_phone(e164)


def phone_of(row: Any, crypto: Crypto) -> str | None:
    """The decrypted phone number, for forms an operator edits."""
    ciphertext = getattr(row, "phone_ciphertext", None)
    return crypto.pii.decrypt(ciphertext, purpose=PHONE_PURPOSE) if ciphertext else None


def _changes(row: Any, new: dict[str, Any]) -> dict[str, list[Any]]:
    changed: dict[str, list[Any]] = {}
    for name, value in new.items():
        if getattr(row, name) != value:
            changed[name] = [getattr(row, name), value]
    return changed


async def _flush(session: AsyncSession, kind: str, code: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if kind == "shopping guide":
            raise DuplicatePhone(kind) from exc
        raise DuplicateCode(kind, code) from exc


async def _set_archived(
    session: AsyncSession, actor: Principal, row: Row, *, archived: bool, action: str, origin: RequestOrigin | None
) -> Row:
    status = ARCHIVED if archived else ACTIVE
    if row.status == status:
        return row
    row.status = status
    row.archived_at = utcnow() if archived else None
    await session.flush()
    await audit.record(
        session,
        actor,
        f"{action}.{'archive' if archived else 'unarchive'}",
        target_type=action.rsplit(".", 1)[-1],
        target_id=row.id,
        data={"code": getattr(row, "code", None) or row.name},
        origin=origin,
    )
    return row


# Dealers.


def _dealer_filter(query: Select[Any], text: str | None, status: str | None) -> Select[Any]:
    if status in STATUSES:
        query = query.where(Dealer.status == status)
    if text and text.strip():
        pattern = _like(text)
        query = query.where(
            or_(
                Dealer.code.ilike(pattern, escape="\\"),
                Dealer.name.ilike(pattern, escape="\\"),
                Dealer.contact_name.ilike(pattern, escape="\\"),
            )
        )
    return query


async def list_dealers(
    session: AsyncSession, *, text: str | None = None, status: str | None = None, limit: int, offset: int
) -> tuple[list[Dealer], int]:
    total = await session.scalar(_dealer_filter(select(func.count()).select_from(Dealer), text, status))
    rows = await session.scalars(
        _dealer_filter(select(Dealer), text, status).order_by(Dealer.code).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_dealer(session: AsyncSession, dealer_id: uuid.UUID) -> Dealer:
    dealer = await session.get(Dealer, dealer_id)
    if dealer is None:
        raise DealerNotFound()
    return dealer


async def find_dealer_by_code(session: AsyncSession, code: str) -> Dealer | None:
    found: Dealer | None = await session.scalar(select(Dealer).where(Dealer.code == code.strip()))
    return found


def dealer_columns(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": values["code"],
        "name": values["name"],
        "contact_name": values["contact_name"],
        "territory_region_codes": values["region_codes"],
        "territory_polygons": values["polygons"],
    }


async def do_create_dealer(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    draft: rules.DealerDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Dealer:
    values = check_dealer(draft)
    if await find_dealer_by_code(session, values["code"]) is not None:
        raise DuplicateCode("dealer", values["code"])
    dealer = Dealer(**dealer_columns(values))
    set_phone(dealer, crypto, values["phone"])
    session.add(dealer)
    await _flush(session, "dealer", dealer.code)
    await audit.record(
        session,
        actor,
        "channel.dealer.create",
        target_type="dealer",
        target_id=dealer.id,
        data={
            "code": dealer.code,
            "name": dealer.name,
            "region_codes": dealer.territory_region_codes,
            "polygon_vertices": rules.vertex_count(dealer.territory_polygons),
        },
        origin=origin,
    )
    return dealer


def dealer_draft_of(dealer: Dealer, crypto: Crypto) -> rules.DealerDraft:
    return rules.DealerDraft(
        code=dealer.code,
        name=dealer.name,
        contact_name=dealer.contact_name,
        phone=phone_of(dealer, crypto) or "",
        region_codes=list(dealer.territory_region_codes),
        polygons=list(dealer.territory_polygons),
    )


async def do_update_dealer(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    dealer_id: uuid.UUID,
    draft: rules.DealerDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Dealer:
    """Replace the dealer's fields with `draft` (build it from `dealer_draft_of` for a partial change)."""
    dealer = await get_dealer(session, dealer_id)
    values = check_dealer(draft)
    if values["code"] != dealer.code:
        other = await find_dealer_by_code(session, values["code"])
        if other is not None:
            raise DuplicateCode("dealer", values["code"])
    changed = _changes(dealer, dealer_columns(values))
    phone_changed = values["phone"] != phone_of(dealer, crypto)
    if not changed and not phone_changed:
        return dealer
    for name, (_before, after) in changed.items():
        setattr(dealer, name, after)
    if phone_changed:
        set_phone(dealer, crypto, values["phone"])
    await _flush(session, "dealer", dealer.code)
    summary = {k: v for k, v in changed.items() if k != "territory_polygons"}
    if "territory_polygons" in changed:
        summary["polygon_vertices"] = [
            rules.vertex_count(changed["territory_polygons"][0]),
            rules.vertex_count(dealer.territory_polygons),
        ]
    if phone_changed:
        summary["phone"] = ["…", dealer.phone_masked]
    await audit.record(
        session,
        actor,
        "channel.dealer.update",
        target_type="dealer",
        target_id=dealer.id,
        data={"code": dealer.code, "changes": summary},
        origin=origin,
    )
    return dealer


async def do_set_dealer_archived(
    session: AsyncSession,
    actor: Principal,
    dealer_id: uuid.UUID,
    *,
    archived: bool,
    origin: RequestOrigin | None = None,
) -> Dealer:
    dealer = await get_dealer(session, dealer_id)
    return await _set_archived(session, actor, dealer, archived=archived, action="channel.dealer", origin=origin)


# Stores.


def _store_filter(query: Select[Any], text: str | None, status: str | None, dealer_id: uuid.UUID | None) -> Select[Any]:
    if status in STATUSES:
        query = query.where(Store.status == status)
    if dealer_id is not None:
        query = query.where(Store.dealer_id == dealer_id)
    if text and text.strip():
        pattern = _like(text)
        conditions: list[ColumnElement[bool]] = [
            Store.code.ilike(pattern, escape="\\"),
            Store.name.ilike(pattern, escape="\\"),
            Store.address.ilike(pattern, escape="\\"),
        ]
        query = query.where(or_(*conditions))
    return query


async def list_stores(
    session: AsyncSession,
    *,
    text: str | None = None,
    status: str | None = None,
    dealer_id: uuid.UUID | None = None,
    limit: int,
    offset: int,
) -> tuple[list[Store], int]:
    total = await session.scalar(_store_filter(select(func.count()).select_from(Store), text, status, dealer_id))
    rows = await session.scalars(
        _store_filter(select(Store), text, status, dealer_id).order_by(Store.code).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_store(session: AsyncSession, store_id: uuid.UUID) -> Store:
    store = await session.get(Store, store_id)
    if store is None:
        raise StoreNotFound()
    return store


async def find_store_by_code(session: AsyncSession, code: str) -> Store | None:
    found: Store | None = await session.scalar(select(Store).where(Store.code == code.strip()))
    return found


def place_columns(latitude: float | None, longitude: float | None) -> dict[str, Any]:
    """Location columns with the regions the point lies in (resolved offline)."""
    place = places.locate(latitude, longitude) if latitude is not None and longitude is not None else None
    return {
        "latitude": latitude,
        "longitude": longitude,
        "province_code": place.province_code if place else None,
        "city_code": place.city_code if place else None,
        "county_code": place.county_code if place else None,
    }


def store_columns(values: dict[str, Any], dealer: Dealer) -> dict[str, Any]:
    return {
        "code": values["code"],
        "name": values["name"],
        "dealer_id": dealer.id,
        "address": values["address"],
        "contact_name": values["contact_name"],
        **place_columns(values["latitude"], values["longitude"]),
    }


async def _supplying_dealer(session: AsyncSession, code: str, *, current: uuid.UUID | None = None) -> Dealer:
    dealer = await find_dealer_by_code(session, code)
    if dealer is None:
        raise InvalidFields([rules.Problem("dealer_code", "No dealer has the code {value}.", {"value": code})])
    if dealer.is_archived and dealer.id != current:
        raise InvalidFields(
            [rules.Problem("dealer_code", "Dealer {value} is archived; choose an active dealer.", {"value": code})]
        )
    return dealer


async def do_create_store(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    draft: rules.StoreDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Store:
    values = check_store(draft)
    dealer = await _supplying_dealer(session, values["dealer_code"])
    if await find_store_by_code(session, values["code"]) is not None:
        raise DuplicateCode("store", values["code"])
    store = Store(**store_columns(values, dealer))
    set_phone(store, crypto, values["phone"])
    session.add(store)
    await _flush(session, "store", store.code)
    await audit.record(
        session,
        actor,
        "channel.store.create",
        target_type="store",
        target_id=store.id,
        data={"code": store.code, "name": store.name, "dealer": dealer.code, "regions": store.region_codes},
        origin=origin,
    )
    return store


async def store_draft_of(session: AsyncSession, store: Store, crypto: Crypto) -> rules.StoreDraft:
    dealer = await get_dealer(session, store.dealer_id)
    return rules.StoreDraft(
        code=store.code,
        name=store.name,
        dealer_code=dealer.code,
        address=store.address,
        contact_name=store.contact_name,
        phone=phone_of(store, crypto) or "",
        latitude=store.latitude,
        longitude=store.longitude,
    )


async def do_update_store(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    store_id: uuid.UUID,
    draft: rules.StoreDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Store:
    store = await get_store(session, store_id)
    values = check_store(draft)
    dealer = await _supplying_dealer(session, values["dealer_code"], current=store.dealer_id)
    if values["code"] != store.code and await find_store_by_code(session, values["code"]) is not None:
        raise DuplicateCode("store", values["code"])
    changed = _changes(store, store_columns(values, dealer))
    phone_changed = values["phone"] != phone_of(store, crypto)
    if not changed and not phone_changed:
        return store
    for name, (_before, after) in changed.items():
        setattr(store, name, after)
    if phone_changed:
        set_phone(store, crypto, values["phone"])
    await _flush(session, "store", store.code)
    summary: dict[str, Any] = {k: [str(a), str(b)] if k == "dealer_id" else [a, b] for k, (a, b) in changed.items()}
    if phone_changed:
        summary["phone"] = ["…", store.phone_masked]
    await audit.record(
        session,
        actor,
        "channel.store.update",
        target_type="store",
        target_id=store.id,
        data={"code": store.code, "changes": summary},
        origin=origin,
    )
    return store


async def do_set_store_archived(
    session: AsyncSession, actor: Principal, store_id: uuid.UUID, *, archived: bool, origin: RequestOrigin | None = None
) -> Store:
    store = await get_store(session, store_id)
    return await _set_archived(session, actor, store, archived=archived, action="channel.store", origin=origin)


def store_in_territory(dealer: Dealer, store: Store) -> bool | None:
    """Whether the store lies inside its dealer's territory; None when either is unknown."""
    if store.latitude is None or store.longitude is None:
        return None
    return places.territory_contains(
        list(dealer.territory_region_codes), list(dealer.territory_polygons), store.latitude, store.longitude
    )


async def dealers_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Dealer]:
    if not ids:
        return {}
    return {d.id: d for d in await session.scalars(select(Dealer).where(Dealer.id.in_(set(ids))))}


# Guides.


async def list_guides(
    session: AsyncSession,
    *,
    store_id: uuid.UUID | None = None,
    text: str | None = None,
    status: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[Guide], int]:
    def filtered(query: Select[Any]) -> Select[Any]:
        if store_id is not None:
            query = query.where(Guide.store_id == store_id)
        if status in STATUSES:
            query = query.where(Guide.status == status)
        if text and text.strip():
            query = query.where(Guide.name.ilike(_like(text), escape="\\"))
        return query

    total = await session.scalar(filtered(select(func.count()).select_from(Guide)))
    rows = await session.scalars(filtered(select(Guide)).order_by(Guide.name, Guide.id).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def get_guide(session: AsyncSession, guide_id: uuid.UUID) -> Guide:
    guide = await session.get(Guide, guide_id)
    if guide is None:
        raise GuideNotFound()
    return guide


async def do_create_guide(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    store_id: uuid.UUID,
    draft: rules.GuideDraft,
    *,
    origin: RequestOrigin | None = None,
) -> Guide:
    store = await get_store(session, store_id)
    if store.is_archived:
        raise PartnerArchived("store")
    values = check_guide(draft)
    guide = Guide(store_id=store.id, name=values["name"])
    set_phone(guide, crypto, values["phone"])
    if await session.scalar(select(Guide.id).where(Guide.phone_hash == guide.phone_hash)) is not None:
        raise DuplicatePhone("shopping guide")
    session.add(guide)
    await _flush(session, "shopping guide", "")
    await audit.record(
        session,
        actor,
        "channel.guide.create",
        target_type="guide",
        target_id=guide.id,
        data={"name": guide.name, "store": store.code, "phone": guide.phone_masked},
        origin=origin,
    )
    return guide


@dataclass(frozen=True)
class GuideChange:
    name: str | None = None
    phone: str | None = None
    store_id: uuid.UUID | None = None


async def do_update_guide(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    guide_id: uuid.UUID,
    change: GuideChange,
    *,
    origin: RequestOrigin | None = None,
) -> Guide:
    guide = await get_guide(session, guide_id)
    values = check_guide(
        rules.GuideDraft(
            name=guide.name if change.name is None else change.name,
            phone=(phone_of(guide, crypto) or "") if change.phone is None else change.phone,
        )
    )
    changes: dict[str, Any] = {}
    if change.store_id is not None and change.store_id != guide.store_id:
        store = await get_store(session, change.store_id)
        if store.is_archived:
            raise PartnerArchived("store")
        changes["store_id"] = [str(guide.store_id), str(store.id)]
        guide.store_id = store.id
    if values["name"] != guide.name:
        changes["name"] = [guide.name, values["name"]]
        guide.name = values["name"]
    if values["phone"] != phone_of(guide, crypto):
        set_phone(guide, crypto, values["phone"])
        taken = await session.scalar(select(Guide.id).where(Guide.phone_hash == guide.phone_hash, Guide.id != guide.id))
        if taken is not None:
            raise DuplicatePhone("shopping guide")
        changes["phone"] = ["…", guide.phone_masked]
    if not changes:
        return guide
    await _flush(session, "shopping guide", "")
    await audit.record(
        session,
        actor,
        "channel.guide.update",
        target_type="guide",
        target_id=guide.id,
        data={"name": guide.name, "changes": changes},
        origin=origin,
    )
    return guide


async def do_set_guide_archived(
    session: AsyncSession, actor: Principal, guide_id: uuid.UUID, *, archived: bool, origin: RequestOrigin | None = None
) -> Guide:
    guide = await get_guide(session, guide_id)
    return await _set_archived(session, actor, guide, archived=archived, action="channel.guide", origin=origin)
