"""Channel scans, inventory and diversion over HTTP (mounted on the channel router, `/api/v1/channel`).

Partners (`ztp_` tokens): `POST /partner/scans`, `GET /partner/scans`, `GET /partner/inventory`.
Operators (`channel.read`; triage needs `channel.manage`): scans, inventory, custody of a code,
diversion alerts and their workflow, the per-dealer report.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from zhongtai.channel import diversion, inventory, scans
from zhongtai.channel.errors import DealerNotFound, StoreNotFound
from zhongtai.channel.models import Dealer, Store
from zhongtai.channel.permissions import CHANNEL_MANAGE, CHANNEL_READ
from zhongtai.channel.scan_models import ALERT_KINDS, ALERT_STATUSES, ChannelScan, Custody, DiversionAlert
from zhongtai.codes import service as codes_service
from zhongtai.codes.errors import CodeNotFound
from zhongtai.codes.states import STATE_NAMES
from zhongtai.core.errors import PermissionDenied, RateLimited
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.web import CurrentPrincipal, DbSession, Origin, PageDep, RuntimeDep, require

router = APIRouter()  # included by the channel router, which carries the /api/v1/channel prefix

ChannelReader = Annotated[Principal, Depends(require(CHANNEL_READ))]
ChannelManager = Annotated[Principal, Depends(require(CHANNEL_MANAGE))]
IdempotencyKey = Annotated[str | None, Header(max_length=80, description="retry-safe key")]
SCANS_PER_MINUTE = 120


async def _partner(principal: CurrentPrincipal) -> Principal:
    if principal.kind is not PrincipalKind.PARTNER:
        raise PermissionDenied("This needs a partner sign-in.")
    return principal


Partner = Annotated[Principal, Depends(_partner)]


class ScanIn(BaseModel):
    action: Literal["dealer_receive", "ship", "store_receive", "case_open", "sale"]
    codes: list[Annotated[str, Field(max_length=300)]] = Field(min_length=1, max_length=scans.MAX_CODES)
    to_store_id: uuid.UUID | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=1_000_000)
    device_id: str | None = Field(default=None, max_length=100)


def scan_out(scan: ChannelScan) -> dict[str, Any]:
    return {
        "id": scan.id,
        "action": scan.action,
        "role": scan.role,
        "partner_account_id": str(scan.partner_account_id),
        "dealer_id": str(scan.dealer_id) if scan.dealer_id else None,
        "store_id": str(scan.store_id) if scan.store_id else None,
        "to_store_id": str(scan.to_store_id) if scan.to_store_id else None,
        "codes": scan.codes,
        "item_count": scan.item_count,
        "alert_count": scan.alert_count,
        "latitude": scan.latitude,
        "longitude": scan.longitude,
        "occurred_at": scan.occurred_at.isoformat(),
    }


@router.post("/partner/scans", tags=["partner"])
async def partner_scan(
    body: ScanIn, principal: Partner, session: DbSession, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Record a channel step for the scanned codes (a case or pallet stands for its contents)."""
    decision = await runtime.limiter.hit(f"rl:channel-scan:{principal.id}", limit=SCANS_PER_MINUTE, period=60.0)
    if not decision.allowed:
        raise RateLimited(retry_after=decision.retry_after)
    request = scans.ScanRequest(
        action=body.action,
        codes=body.codes,
        to_store_id=body.to_store_id,
        latitude=body.latitude,
        longitude=body.longitude,
        accuracy_m=body.accuracy_m,
        device_id=body.device_id,
        idempotency_key=idempotency_key,
    )
    return await scans.do_scan(session, principal, runtime.crypto, request)


@router.get("/partner/scans", tags=["partner"])
async def partner_scans(principal: Partner, session: DbSession, page: PageDep) -> dict[str, Any]:
    rows = await scans.list_scans(session, partner_account_id=principal.id, limit=page.per_page, offset=page.offset)
    return {"items": [scan_out(r) | {"rewards": r.response.get("rewards", [])} for r in rows]}


@router.get("/partner/inventory", tags=["partner"])
async def partner_inventory(principal: Partner, session: DbSession) -> dict[str, Any]:
    """What the partner's dealer or store holds per product: received − shipped − sold."""
    actor = await scans.actor_of(session, principal)
    if actor.store is not None:
        rows = await inventory.store_inventory(session, actor.store.id)
        holder = {"kind": "store", "id": str(actor.store.id), "code": actor.store.code, "name": actor.store.name}
    else:
        rows = await inventory.dealer_inventory(session, actor.dealer.id)
        holder = {"kind": "dealer", "id": str(actor.dealer.id), "code": actor.dealer.code, "name": actor.dealer.name}
    return {"holder": holder, "items": [r.as_dict() for r in rows]}


# Operators.


@router.get("/scans")
async def list_channel_scans(
    session: DbSession,
    _: ChannelReader,
    page: PageDep,
    dealer_id: uuid.UUID | None = None,
    store_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    rows = await scans.list_scans(
        session, dealer_id=dealer_id, store_id=store_id, limit=page.per_page, offset=page.offset
    )
    return {"items": [scan_out(r) for r in rows]}


@router.get("/inventory")
async def channel_inventory(
    session: DbSession, _: ChannelReader, dealer_id: uuid.UUID | None = None, store_id: uuid.UUID | None = None
) -> dict[str, Any]:
    if (dealer_id is None) == (store_id is None):
        raise scans.InvalidScan("Give dealer_id or store_id.", field="dealer_id")
    if dealer_id is not None:
        if await session.scalar(select(Dealer.id).where(Dealer.id == dealer_id)) is None:
            raise DealerNotFound()
        rows = await inventory.dealer_inventory(session, dealer_id)
    else:
        if await session.scalar(select(Store.id).where(Store.id == store_id)) is None:
            raise StoreNotFound()
        assert store_id is not None
        rows = await inventory.store_inventory(session, store_id)
    return {"items": [r.as_dict() for r in rows]}


@router.get("/custody")
async def code_custody(
    session: DbSession, _: ChannelReader, code: Annotated[str, Query(min_length=1, max_length=300)]
) -> dict[str, Any]:
    """Who holds a code now (an item; a case or pallet answers for its first item)."""
    view = await codes_service.lookup(session, code)
    held = await session.scalar(select(Custody).where(Custody.code_id == view.code.id))
    if held is None:
        raise CodeNotFound("No dealer has received this code yet.")
    return {
        "code": view.code.serial,
        "state": STATE_NAMES[view.code.state],
        "holder": held.holder,
        "dealer_id": str(held.dealer_id),
        "store_id": str(held.store_id) if held.store_id else None,
        "received_at": held.received_at.isoformat(),
        "shipped_at": held.shipped_at.isoformat() if held.shipped_at else None,
    }


def alert_out(alert: DiversionAlert) -> dict[str, Any]:
    return {
        "id": str(alert.id),
        "kind": alert.kind,
        "severity": alert.severity,
        "status": alert.status,
        "dealer_id": str(alert.dealer_id),
        "store_id": str(alert.store_id) if alert.store_id else None,
        "code": alert.serial,
        "item_count": alert.item_count,
        "product_id": str(alert.product_id) if alert.product_id else None,
        "lot_id": str(alert.lot_id) if alert.lot_id else None,
        "latitude": alert.latitude,
        "longitude": alert.longitude,
        "place": alert.place_label,
        "province_code": alert.province_code,
        "city_code": alert.city_code,
        "distance_km": alert.distance_km,
        "actor_kind": alert.actor_kind,
        "actor": alert.actor_label,
        "occurred_at": alert.occurred_at.isoformat(),
        "evidence": alert.evidence,
        "penalty_amount": alert.penalty_amount,
        "note": alert.note,
        "history": alert.history,
    }


@router.get("/diversion/alerts")
async def list_diversion_alerts(
    session: DbSession,
    _: ChannelReader,
    page: PageDep,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(ALERT_STATUSES) + ")$")] = None,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(ALERT_KINDS) + ")$")] = None,
    dealer_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    rows, total = await diversion.list_alerts(
        session, status=status, kind=kind, dealer_id=dealer_id, limit=page.per_page, offset=page.offset
    )
    return {"items": [alert_out(a) for a in rows], "total": total, "page": page.page, "per_page": page.per_page}


@router.get("/diversion/alerts/{alert_id}")
async def get_diversion_alert(alert_id: uuid.UUID, session: DbSession, _: ChannelReader) -> dict[str, Any]:
    return alert_out(await diversion.get_alert(session, alert_id))


class TransitionIn(BaseModel):
    status: Literal["confirmed", "penalized", "dismissed"]
    note: str = Field(default="", max_length=500)
    penalty_amount: int | None = Field(default=None, description="fen, for status=penalized")


@router.post("/diversion/alerts/{alert_id}/status")
async def move_diversion_alert(
    alert_id: uuid.UUID, body: TransitionIn, session: DbSession, actor: ChannelManager, origin: Origin
) -> dict[str, Any]:
    """open → confirmed → penalized, or → dismissed (with a note); a penalty publishes DiversionPenalized."""
    alert, results = await diversion.do_transition(
        session, actor, alert_id, body.status, note=body.note, penalty_amount=body.penalty_amount, origin=origin
    )
    return alert_out(alert) | {"penalty_results": diversion.plain_json(results)}


@router.post("/diversion/sweep")
async def sweep_consumer_scans(session: DbSession, actor: ChannelManager) -> dict[str, Any]:
    """Check the consumer scans since the last sweep now (the outbox does it every five minutes)."""
    read = await diversion.sweep_consumer_scans(session, actor.tenant_id)
    return {"scans_read": read}


@router.get("/dealers/{dealer_id}/report")
async def dealer_report(
    dealer_id: uuid.UUID,
    session: DbSession,
    _: ChannelReader,
    stale_days: Annotated[int, Query(ge=1, le=365)] = inventory.STALE_DAYS,
) -> dict[str, Any]:
    if await session.scalar(select(Dealer.id).where(Dealer.id == dealer_id)) is None:
        raise DealerNotFound()
    report = await inventory.dealer_report(session, dealer_id, stale_days=stale_days)
    return {
        "received": report.received,
        "shipped": report.shipped,
        "store_received": report.store_received,
        "sold": report.sold,
        "out_of_territory": report.out_of_territory,
        "alerts": report.alerts,
        "in_transit": report.in_transit,
        "on_hand": report.on_hand,
        "stores": report.stores,
        "checks": [
            {"name": c.name, "ok": c.ok, "message": c.message.format(**c.values), "values": c.values}
            for c in report.checks
        ],
    }
