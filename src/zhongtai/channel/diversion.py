"""Diversion control (防窜货): goods that dealer D received found outside D's territory, or at a store
D does not supply.

Three ways an alert is raised, each with its evidence (code, lot, dealer, expected territory, actual
place and actor, time), a severity, and the workflow open → confirmed → penalized, or → dismissed:

- a store receives goods that D shipped to it although D does not supply it (`foreign_store`, high);
- a store (or its guide) scans D's goods at a place outside D's territory (`store_outside_territory`):
  the browser's location when it sent one, else the store's registered location (on receipt);
- a consumer checks a bottle of D's outside D's territory (`consumer_outside_territory`): found by a
  sweep over the consumer scans (`authenticity_scans`) that the outbox runs every few minutes, so the
  consumer's verification path does not change at all. One alert per bottle.

The territory test is offline (`zhongtai.geo`). Boundaries are generalised, so the evidence carries
the distance to the dealer's nearest store for the operator to judge a point near a border.

Penalising an alert publishes `DiversionPenalized` (channel.events) in the same transaction, so
that the rewards module can deduct the amount from the dealer's rewards through the ledger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai import geo
from zhongtai.authenticity import queries as authenticity_queries
from zhongtai.channel import places
from zhongtai.channel.actor import Actor
from zhongtai.channel.events import DiversionPenalized, DiversionResolved
from zhongtai.channel.models import Dealer, Store
from zhongtai.channel.scan_models import (
    ALERT_CONFIRMED,
    ALERT_DISMISSED,
    ALERT_OPEN,
    ALERT_PENALIZED,
    ALERT_STATUSES,
    CASE_OPEN,
    KIND_CONSUMER_OUTSIDE,
    KIND_FOREIGN_STORE,
    KIND_STORE_OUTSIDE,
    SALE,
    STORE_RECEIVE,
    ChannelScan,
    Custody,
    DiversionAlert,
    DiversionCursor,
)
from zhongtai.core import audit, jobs, sql
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.domain_events import publish
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed
from zhongtai.core.principals import Principal

SWEEP_TOPIC = "channel.diversion_sweep"
SWEEP_EVERY_SECONDS = 300
SWEEP_BATCH = 2000
SWEEP_OVERLAP = 1000
FAR_KM = 300.0  # beyond this distance from the dealer's nearest store, an alert is one level more severe
MANY_ITEMS = 12  # a store scanning this many of another territory's items at once is a high alert

TRANSITIONS = {
    ALERT_OPEN: (ALERT_CONFIRMED, ALERT_DISMISSED),
    ALERT_CONFIRMED: (ALERT_PENALIZED, ALERT_DISMISSED),
    ALERT_PENALIZED: (),
    ALERT_DISMISSED: (),
}


class AlertNotFound(NotFound):
    code = "diversion_alert_not_found"
    default_message = "No such diversion alert."


class AlertTransitionRefused(Conflict):
    code = "diversion_transition_refused"


class InvalidPenalty(ValidationFailed):
    code = "invalid_penalty"


@dataclass(frozen=True)
class Seen:
    """Where and by whom goods were seen."""

    latitude: float | None
    longitude: float | None
    source: str  # "browser", "store address", "consumer"


def _bump(severity: str) -> str:
    return {"low": "medium", "medium": "high"}.get(severity, "high")


async def _nearest_store_km(session: AsyncSession, dealer: Dealer, latitude: float, longitude: float) -> float | None:
    """Distance to the dealer's nearest active store inside its territory (any store when it has none)."""
    rows = (
        await session.execute(
            select(Store.latitude, Store.longitude).where(
                Store.dealer_id == dealer.id, Store.latitude.isnot(None), Store.status == "active"
            )
        )
    ).all()
    located = [(lat, lon) for lat, lon in rows if lat is not None and lon is not None]
    inside = [(lat, lon) for lat, lon in located if not outside_territory(dealer, lat, lon)]
    here = geo.Point(latitude, longitude)
    distances = [geo.distance_km(here, geo.Point(lat, lon)) for lat, lon in inside or located]
    return round(min(distances), 1) if distances else None


def territory_of(dealer: Dealer) -> dict[str, Any]:
    return {
        "region_codes": list(dealer.territory_region_codes or []),
        "regions": [places.region_label(code) for code in dealer.territory_region_codes or []],
        "polygons": len(dealer.territory_polygons or []),
    }


def outside_territory(dealer: Dealer, latitude: float, longitude: float) -> bool:
    """True only when the dealer has a territory and the point is not in it."""
    inside = places.territory_contains(
        list(dealer.territory_region_codes or []), list(dealer.territory_polygons or []), latitude, longitude
    )
    return inside is False


async def _insert_alert(session: AsyncSession, values: dict[str, Any]) -> DiversionAlert | None:
    """Insert unless an alert with this source already exists (retries, re-run sweeps)."""
    statement = (
        sql.insert_ignore(session, DiversionAlert, "tenant_id", "source_ref")
        .values(**values)
        .returning(DiversionAlert.id)
    )
    alert_id = (await session.execute(statement)).scalar()
    if alert_id is None:
        return None
    return await session.scalar(select(DiversionAlert).where(DiversionAlert.id == alert_id))


async def raise_alert(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    kind: str,
    dealer: Dealer,
    store: Store | None,
    code_id: int,
    serial: str,
    item_count: int,
    product_id: uuid.UUID | None,
    lot_id: uuid.UUID | None,
    seen: Seen,
    actor_kind: str,
    actor_label: str,
    source_ref: str,
    occurred_at: datetime,
    severity: str,
    evidence: dict[str, Any],
) -> DiversionAlert | None:
    place = None
    distance = None
    if seen.latitude is not None and seen.longitude is not None:
        place = places.locate(seen.latitude, seen.longitude)
        distance = await _nearest_store_km(session, dealer, seen.latitude, seen.longitude)
        if distance is not None and distance > FAR_KM:
            severity = _bump(severity)
    now = utcnow()
    return await _insert_alert(
        session,
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "kind": kind,
            "severity": severity,
            "status": ALERT_OPEN,
            "dealer_id": dealer.id,
            "store_id": store.id if store else None,
            "code_id": code_id,
            "serial": serial,
            "item_count": item_count,
            "product_id": product_id,
            "lot_id": lot_id,
            "latitude": seen.latitude,
            "longitude": seen.longitude,
            "province_code": place.province_code if place else None,
            "city_code": place.city_code if place else None,
            "place_label": (place.label if place else "")[:120],
            "distance_km": distance,
            "actor_kind": actor_kind,
            "actor_label": actor_label[:200],
            "source_ref": source_ref,
            "occurred_at": occurred_at,
            "evidence": {
                **evidence,
                "dealer": {"id": str(dealer.id), "code": dealer.code, "name": dealer.name},
                "expected_territory": territory_of(dealer),
                "seen": {
                    "latitude": seen.latitude,
                    "longitude": seen.longitude,
                    "source": seen.source,
                    "place": place.label if place else None,
                    "nearest_dealer_store_km": distance,
                },
            },
            "penalty_amount": None,
            "note": "",
            "history": [],
            "created_at": now,
            "updated_at": now,
        },
    )


async def check_scan(
    session: AsyncSession,
    scan: ChannelScan,
    actor: Actor,
    *,
    items: list[tuple[Any, Any, uuid.UUID | None, Custody | None]],
) -> list[DiversionAlert]:
    """After a store-side scan: the dealers whose goods these are, against the store and the place.
    `items` are (code, scanned code, product id, custody before the scan)."""
    if scan.action not in (STORE_RECEIVE, CASE_OPEN, SALE) or actor.store is None:
        return []
    store = actor.store
    if scan.latitude is not None and scan.longitude is not None:
        seen = Seen(scan.latitude, scan.longitude, "browser")
    elif scan.action == STORE_RECEIVE and store.latitude is not None and store.longitude is not None:
        seen = Seen(store.latitude, store.longitude, "store address")
    else:
        seen = Seen(None, None, "unknown")
    by_dealer: dict[uuid.UUID, list[tuple[Any, Any, uuid.UUID | None]]] = {}
    for code, top, product_id, custody in items:
        if custody is not None:
            by_dealer.setdefault(custody.dealer_id, []).append((code, top, product_id))
    alerts: list[DiversionAlert] = []
    for dealer_id, group in by_dealer.items():
        dealer = await session.scalar(select(Dealer).where(Dealer.id == dealer_id))
        if dealer is None:
            continue
        foreign = scan.action == STORE_RECEIVE and dealer_id != store.dealer_id
        outside = seen.latitude is not None and outside_territory(dealer, seen.latitude, seen.longitude or 0.0)
        if not (foreign or outside):
            continue
        first_code, first_top, product_id = group[0]
        if foreign:
            kind, severity = KIND_FOREIGN_STORE, "high"
        else:
            kind, severity = KIND_STORE_OUTSIDE, "high" if len(group) >= MANY_ITEMS else "medium"
        tops = list(dict.fromkeys(top.serial for _, top, _ in group))
        alert = await raise_alert(
            session,
            tenant_id=scan.tenant_id,
            kind=kind,
            dealer=dealer,
            store=store,
            code_id=first_top.id,
            serial=first_top.serial,
            item_count=len(group),
            product_id=product_id,
            lot_id=first_code.lot_id,
            seen=seen,
            actor_kind=actor.role,
            actor_label=actor.label,
            source_ref=f"channel-scan:{scan.id}:{dealer.id.hex[:12]}",
            occurred_at=scan.occurred_at,
            severity=severity,
            evidence={
                "step": scan.action,
                "scan_id": scan.id,
                "codes": tops[:50],
                "items": len(group),
                "store": {
                    "id": str(store.id),
                    "code": store.code,
                    "name": store.name,
                    "supplied_by_dealer": store.dealer_id == dealer.id,
                },
                "outside_territory": outside,
            },
        )
        if alert is not None:
            alerts.append(alert)
    return alerts


# Consumer scans: a sweep over authenticity_scans (no change to the consumer's verification path).


async def ensure_sweep(session: AsyncSession, tenant_id: uuid.UUID, *, delay_seconds: float = 0) -> None:
    """Queue the next sweep of this brand's consumer scans (one per five-minute slot)."""
    slot = int((utcnow().timestamp() + delay_seconds) // SWEEP_EVERY_SECONDS)
    await jobs.enqueue(
        session,
        SWEEP_TOPIC,
        {},
        tenant_id=tenant_id,
        dedupe_key=f"{SWEEP_TOPIC}:{slot}",
        delay_seconds=delay_seconds,
    )


async def sweep_consumer_scans(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = SWEEP_BATCH) -> int:
    """Read the consumer scans after the brand's cursor (up to `limit`); raise an alert for each
    bottle in a dealer's custody checked outside that dealer's territory. Returns the scans read."""
    cursor = await session.scalar(select(DiversionCursor).with_for_update())
    if cursor is None:
        cursor = DiversionCursor(tenant_id=tenant_id, last_scan_id=0)
        session.add(cursor)
        await session.flush()
    # Rows are written behind the consumer's answer by concurrent transactions, so one with a lower id
    # may commit after a higher one was read: every sweep looks again at the last OVERLAP ids (alerts
    # are unique per bottle, so a second look raises nothing twice).
    rows = await authenticity_queries.scans_after(
        session, max(0, cursor.last_scan_id - SWEEP_OVERLAP), limit=limit + SWEEP_OVERLAP
    )
    fresh = [r for r in rows if r.id > cursor.last_scan_id]
    if not fresh:
        return 0
    located = [r for r in rows if r.latitude is not None and r.longitude is not None]
    held = {
        c.code_id: c
        for c in await session.scalars(
            select(Custody).where(Custody.code_id.in_(list({r.code_id for r in located}) or [-1]))
        )
    }
    dealers: dict[uuid.UUID, Dealer | None] = {}
    for row in located:
        custody = held.get(row.code_id)
        if custody is None or row.occurred_at < custody.received_at:
            continue  # not in the channel (yet, when it was checked)
        if custody.dealer_id not in dealers:
            dealers[custody.dealer_id] = await session.scalar(select(Dealer).where(Dealer.id == custody.dealer_id))
        dealer = dealers[custody.dealer_id]
        if dealer is None or not outside_territory(dealer, float(row.latitude or 0), float(row.longitude or 0)):
            continue
        store = await session.scalar(select(Store).where(Store.id == custody.store_id)) if custody.store_id else None
        await raise_alert(
            session,
            tenant_id=tenant_id,
            kind=KIND_CONSUMER_OUTSIDE,
            dealer=dealer,
            store=store,
            code_id=row.code_id,
            serial=row.serial,
            item_count=1,
            product_id=row.product_id,
            lot_id=row.lot_id,
            seen=Seen(row.latitude, row.longitude, "consumer"),
            actor_kind="consumer",
            actor_label=row.city_name or "",
            source_ref=f"consumer-code:{row.code_id}",  # one alert per bottle, whatever the rescans
            occurred_at=row.occurred_at,
            severity="low",
            evidence={
                "step": "consumer_scan",
                "consumer_scan_id": row.id,
                "scan_kind": row.kind,
                "custody": {"holder": custody.holder, "store_id": str(custody.store_id) if custody.store_id else None},
                "store": {"id": str(store.id), "code": store.code, "name": store.name} if store else None,
                "accuracy_m": row.accuracy_m,
            },
        )
    cursor.last_scan_id = rows[-1].id
    cursor.updated_at = utcnow()
    await session.flush()
    return len(fresh)


@jobs.job_handler(SWEEP_TOPIC)
async def sweep_job(ctx: jobs.JobContext) -> None:
    for _ in range(10):
        if await sweep_consumer_scans(ctx.session, ctx.tenant_id) < SWEEP_BATCH:
            break
    await ensure_sweep(ctx.session, ctx.tenant_id, delay_seconds=SWEEP_EVERY_SECONDS)


# Triage.


async def get_alert(session: AsyncSession, alert_id: uuid.UUID) -> DiversionAlert:
    alert = await session.scalar(select(DiversionAlert).where(DiversionAlert.id == alert_id))
    if alert is None:
        raise AlertNotFound()
    return alert


async def list_alerts(
    session: AsyncSession,
    *,
    status: str | None = None,
    dealer_id: uuid.UUID | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DiversionAlert], int]:
    query = select(DiversionAlert)
    if status:
        query = query.where(DiversionAlert.status == status)
    if dealer_id:
        query = query.where(DiversionAlert.dealer_id == dealer_id)
    if kind:
        query = query.where(DiversionAlert.kind == kind)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(DiversionAlert.created_at.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def do_transition(
    session: AsyncSession,
    actor: Principal,
    alert_id: uuid.UUID,
    to: str,
    *,
    note: str = "",
    penalty_amount: int | None = None,
    origin: RequestOrigin | None = None,
) -> tuple[DiversionAlert, dict[str, Any]]:
    """Move an alert along open → confirmed → penalized, or to dismissed; returns the alert and, for a
    penalty, what the subscribers of `DiversionPenalized` answered."""
    if to not in ALERT_STATUSES:
        raise AlertTransitionRefused(f"Unknown status {to!r}.")
    alert = await session.scalar(select(DiversionAlert).where(DiversionAlert.id == alert_id).with_for_update())
    if alert is None:
        raise AlertNotFound()
    if to not in TRANSITIONS[alert.status]:
        allowed = ", ".join(TRANSITIONS[alert.status]) or "nothing"
        raise AlertTransitionRefused(
            f"A {alert.status} alert can go to {allowed}, not {to}.", status=alert.status, to=to
        )
    note = note.strip()[:500]
    results: dict[str, Any] = {}
    if to == ALERT_PENALIZED:
        if penalty_amount is None or penalty_amount <= 0:
            raise InvalidPenalty("Enter the penalty in fen (a whole number above zero).", field="penalty_amount")
        if penalty_amount > 100_000_000_00:
            raise InvalidPenalty("The penalty is implausibly large.", field="penalty_amount")
        alert.penalty_amount = penalty_amount
    if to == ALERT_DISMISSED and not note:
        raise ValidationFailed("Say why the alert is dismissed.", field="note")
    before = alert.status
    alert.status = to
    alert.updated_at = utcnow()
    if note:
        alert.note = note
    if to in (ALERT_CONFIRMED, ALERT_DISMISSED) and isinstance(alert.evidence.get("scan_id"), int):
        # What the scan earned was held for this decision (rewards' risk hold "diversion").
        results = await publish(
            session,
            DiversionResolved(
                tenant_id=alert.tenant_id,
                alert_id=alert.id,
                scan_ref=f"channel-scan:{alert.evidence['scan_id']}",
                upheld=to == ALERT_CONFIRMED,
                decided_by=actor.label,
                occurred_at=alert.updated_at,
                source_ref=f"diversion-resolved:{alert.id}",
            ),
        )
    if to == ALERT_PENALIZED:
        results = await publish(
            session,
            DiversionPenalized(
                tenant_id=alert.tenant_id,
                alert_id=alert.id,
                dealer_id=alert.dealer_id,
                amount=int(penalty_amount or 0),
                reason=note or f"diversion {alert.kind} {alert.serial}",
                occurred_at=alert.updated_at,
                source_ref=f"diversion-penalty:{alert.id}",
            ),
        )
    entry: dict[str, Any] = {
        "at": alert.updated_at.astimezone(UTC).isoformat(),
        "by": actor.label,
        "from": before,
        "to": to,
        "note": note,
    }
    if to == ALERT_PENALIZED:
        entry["amount"] = penalty_amount
        entry["results"] = {k: plain_json(v) for k, v in results.items()}
    alert.history = [*alert.history, entry]
    await audit.record(
        session,
        actor,
        f"channel.diversion.{to}",
        target_type="diversion_alert",
        target_id=alert.id,
        data={"from": before, "note": note, **({"amount": penalty_amount} if to == ALERT_PENALIZED else {})},
        origin=origin,
    )
    await session.flush()
    return alert, results


def plain_json(value: Any) -> Any:
    """A subscriber's answer made JSON-safe (its text when it cannot be encoded)."""
    from fastapi.encoders import jsonable_encoder

    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return str(value)
