"""Use cases of authenticity: record a consumer's view or PIN check of a code, its verdict, clone
alerts, a code's history and summary, and the brand's settings. Takes a session, never commits.

The hot path of one PIN check is three statements after the code lookup: an upsert that creates or
locks the code's summary row and returns it (PostgreSQL row lock; SQLite serialises writers with
BEGIN IMMEDIATE), the scan insert, and the summary update. Clone alerts go through the outbox.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import models as m
from zhongtai.authenticity import rules
from zhongtai.authenticity.models import AuthenticitySettings, CloneAlert, CodeSummary, Scan
from zhongtai.codes.events import ItemEvent
from zhongtai.core import domain_events, jobs, sql
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import NotFound, ValidationFailed

CLONE_ALERT_TOPIC = "authenticity.clone_alert"


class InvalidAuthenticitySettings(ValidationFailed):
    code = "invalid_authenticity_settings"


class CloneAlertNotFound(NotFound):
    code = "clone_alert_not_found"
    default_message = "No such clone alert."


@dataclass(frozen=True)
class CodeRef:
    """The code a consumer checks, as the resolver found it."""

    tenant_id: uuid.UUID
    code_id: int
    serial: str
    state: int
    gtin: str | None = None
    product_id: uuid.UUID | None = None
    lot_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Region:
    province_code: str | None = None
    city_code: str | None = None
    city_name: str | None = None


@dataclass(frozen=True)
class CheckContext:
    """Who checks, from where, when. Hashes are keyed (Crypto.lookup_hash); no raw address."""

    occurred_at: datetime
    location: rules.Located | None = None
    accuracy_m: float | None = None
    region: Region = Region()
    network_hash: str | None = None
    client_hash: str | None = None
    consumer_id: uuid.UUID | None = None
    ua_class: str = m.UA_OTHER


@dataclass(frozen=True)
class Outcome:
    """The answer to a PIN check."""

    verdict: str
    reason: str | None
    scan_id: int
    verification_number: int | None
    first_verified_at: datetime | None
    first_city_name: str | None
    first_province_code: str | None
    clone: rules.CloneEvidence | None = None


# Settings.

_settings_cache: dict[uuid.UUID, tuple[float, rules.Thresholds]] = {}
SETTINGS_CACHE_SECONDS = 10.0


async def get_thresholds(session: AsyncSession, tenant_id: uuid.UUID, *, cached: bool = True) -> rules.Thresholds:
    """The brand's thresholds (the defaults when it has set none); cached per process for a few seconds."""
    now = time.monotonic()
    hit = _settings_cache.get(tenant_id)
    if cached and hit is not None and hit[0] > now:
        return hit[1]
    row = await session.scalar(select(AuthenticitySettings).where(AuthenticitySettings.tenant_id == tenant_id))
    thresholds = rules.DEFAULTS if row is None else _thresholds_of(row)
    _settings_cache[tenant_id] = (now + SETTINGS_CACHE_SECONDS, thresholds)
    return thresholds


def cached_thresholds(tenant_id: uuid.UUID) -> rules.Thresholds | None:
    """The brand's thresholds if this process read them in the last few seconds, else None."""
    hit = _settings_cache.get(tenant_id)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def _thresholds_of(row: AuthenticitySettings) -> rules.Thresholds:
    return rules.Thresholds(
        max_verifications=row.max_verifications,
        clone_speed_kmh=row.clone_speed_kmh,
        clone_min_distance_km=row.clone_min_distance_km,
        pin_attempts_per_code=row.pin_attempts_per_code,
        pin_lock_minutes=row.pin_lock_minutes,
        pin_attempts_per_client=row.pin_attempts_per_client,
        pin_attempts_per_network=row.pin_attempts_per_network,
        contact=row.contact,
    )


def check_settings(current: rules.Thresholds, changes: dict[str, Any]) -> rules.Thresholds:
    unknown = set(changes) - set(rules.LIMITS) - {"contact"}
    if unknown:
        raise InvalidAuthenticitySettings(f"Unknown settings: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        if name == "contact":
            if not isinstance(value, str) or len(value) > 200:
                raise InvalidAuthenticitySettings("The contact must be text of at most 200 characters.", field=name)
            continue
        low, high = rules.LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise InvalidAuthenticitySettings(f"{name} must be between {low} and {high}.", field=name)
        if isinstance(low, int) and not float(value).is_integer():
            raise InvalidAuthenticitySettings(f"{name} must be a whole number.", field=name)
    typed: dict[str, Any] = {
        name: value if name == "contact" or isinstance(rules.LIMITS[name][0], float) else int(value)
        for name, value in changes.items()
    }
    return replace(current, **typed)


async def do_update_settings(session: AsyncSession, tenant_id: uuid.UUID, changes: dict[str, Any]) -> rules.Thresholds:
    current = await get_thresholds(session, tenant_id, cached=False)
    updated = check_settings(current, changes)
    row = await session.scalar(select(AuthenticitySettings).where(AuthenticitySettings.tenant_id == tenant_id))
    if row is None:
        row = AuthenticitySettings(tenant_id=tenant_id)
        session.add(row)
    for name in (*rules.LIMITS, "contact"):
        setattr(row, name, getattr(updated, name))
    await session.flush()
    _settings_cache.pop(tenant_id, None)
    return updated


# Recording checks.


async def _lock_summary(session: AsyncSession, ref: CodeRef) -> Any:
    """Create the code's summary row if missing, lock it and return its current values, in one
    statement: the no-op DO UPDATE takes the row lock on PostgreSQL."""
    table = CodeSummary.__table__
    statement = (
        sql.insert(session, table)
        .values(code_id=ref.code_id, tenant_id=ref.tenant_id, view_count=0, verify_count=0, wrong_pin_count=0)
        .on_conflict_do_update(index_elements=["code_id"], set_={"verify_count": table.c.verify_count})
        .returning(*table.c)
    )
    return (await session.execute(statement)).one()


def scan_values(ref: CodeRef, ctx: CheckContext, kind: str) -> dict[str, Any]:
    location = ctx.location
    return {
        "tenant_id": ref.tenant_id,
        "code_id": ref.code_id,
        "serial": ref.serial,
        "gtin": ref.gtin,
        "product_id": ref.product_id,
        "lot_id": ref.lot_id,
        "kind": kind,
        "occurred_at": ctx.occurred_at,
        "latitude": location.latitude if location else None,
        "longitude": location.longitude if location else None,
        "accuracy_m": ctx.accuracy_m if location else None,
        "province_code": ctx.region.province_code,
        "city_code": ctx.region.city_code,
        "city_name": ctx.region.city_name,
        "network_hash": ctx.network_hash,
        "client_hash": ctx.client_hash,
        "consumer_id": ctx.consumer_id,
        "ua_class": ctx.ua_class,
    }


async def _insert_scan(session: AsyncSession, values: dict[str, Any]) -> int:
    scan_id = await session.scalar(insert(Scan).values(**values).returning(Scan.id))
    assert scan_id is not None
    return int(scan_id)


@dataclass(frozen=True)
class ViewCounts:
    """A code's counts right after a view was recorded (this view included)."""

    scan_id: int
    view_count: int
    verify_count: int
    first_verified_at: datetime | None
    first_city_name: str | None
    suspicious_reason: str | None


async def do_record_view(session: AsyncSession, ref: CodeRef, ctx: CheckContext) -> ViewCounts:
    """Record that the code's page was opened; returns the code's counts with this view."""
    scan_id = await _insert_scan(session, scan_values(ref, ctx, m.KIND_VIEW))
    table = CodeSummary.__table__
    row = (
        await session.execute(
            sql.insert(session, table)
            .values(code_id=ref.code_id, tenant_id=ref.tenant_id, view_count=1, verify_count=0, wrong_pin_count=0)
            .on_conflict_do_update(index_elements=["code_id"], set_={"view_count": table.c.view_count + 1})
            .returning(
                table.c.view_count,
                table.c.verify_count,
                table.c.first_verified_at,
                table.c.first_city_name,
                table.c.suspicious_reason,
            )
        )
    ).one()
    return ViewCounts(scan_id, *row)


async def do_record_wrong_pin(session: AsyncSession, ref: CodeRef, ctx: CheckContext) -> int:
    values = scan_values(ref, ctx, m.KIND_PIN_BAD) | {"verdict": m.WRONG_PIN}
    scan_id = await _insert_scan(session, values)
    table = CodeSummary.__table__
    await session.execute(
        sql.insert(session, table)
        .values(code_id=ref.code_id, tenant_id=ref.tenant_id, view_count=0, verify_count=0, wrong_pin_count=1)
        .on_conflict_do_update(index_elements=["code_id"], set_={"wrong_pin_count": table.c.wrong_pin_count + 1})
    )
    return scan_id


async def do_record_verification(
    session: AsyncSession, ref: CodeRef, ctx: CheckContext, thresholds: rules.Thresholds
) -> Outcome:
    """A check whose PIN matched: its verdict, the scan row, the summary, and a clone alert job."""
    summary = await _lock_summary(session, ref)
    number = int(summary.verify_count) + 1
    previous = (
        rules.Located(summary.last_located_at, summary.last_latitude, summary.last_longitude)
        if summary.last_located_at is not None
        else None
    )
    clone = rules.clone_evidence(previous, ctx.location, thresholds)
    verdict = rules.verdict_of(
        code_state=ref.state,
        already_clone=summary.suspicious_reason == m.REASON_CLONE,
        clone=clone,
        verification_number=number,
        thresholds=thresholds,
    )
    values = scan_values(ref, ctx, m.KIND_PIN_OK) | {
        "verdict": verdict.verdict,
        "reason": verdict.reason,
        "verification_number": number,
    }
    scan_id = await _insert_scan(session, values)
    changes: dict[str, Any] = {"verify_count": number, "last_verified_at": ctx.occurred_at, "last_scan_id": scan_id}
    if number == 1:
        changes |= {
            "first_verified_at": ctx.occurred_at,
            "first_scan_id": scan_id,
            "first_latitude": values["latitude"],
            "first_longitude": values["longitude"],
            "first_province_code": ctx.region.province_code,
            "first_city_code": ctx.region.city_code,
            "first_city_name": ctx.region.city_name,
        }
    if ctx.location is not None:
        changes |= {
            "last_located_at": ctx.occurred_at,
            "last_located_scan_id": scan_id,
            "last_latitude": ctx.location.latitude,
            "last_longitude": ctx.location.longitude,
        }
    if clone is not None and summary.suspicious_reason is None:
        changes |= {"suspicious_reason": m.REASON_CLONE, "suspicious_since": ctx.occurred_at}
    await session.execute(update(CodeSummary).where(CodeSummary.code_id == ref.code_id).values(**changes))
    if clone is not None:
        await enqueue_clone_alert(session, ref, summary, scan_id, ctx, clone)
    if verdict.verdict == m.GENUINE:  # number 1: the summary row lock makes it exactly one check
        await domain_events.publish(session, consumer_open_event(ref, ctx))
    first_at = summary.first_verified_at if number > 1 else ctx.occurred_at
    return Outcome(
        verdict=verdict.verdict,
        reason=verdict.reason,
        scan_id=scan_id,
        verification_number=number,
        first_verified_at=first_at,
        first_city_name=summary.first_city_name if number > 1 else ctx.region.city_name,
        first_province_code=summary.first_province_code if number > 1 else ctx.region.province_code,
        clone=clone,
    )


def consumer_open_event(ref: CodeRef, ctx: CheckContext) -> ItemEvent:
    """The reward-earning step of a code's first genuine verification (published exactly once)."""
    location = ctx.location
    return ItemEvent(
        tenant_id=ref.tenant_id,
        kind="consumer_open",
        code_id=ref.code_id,
        product_id=ref.product_id,
        lot_id=ref.lot_id,
        occurred_at=ctx.occurred_at,
        source_ref=f"consumer-verify:{ref.code_id}",
        consumer_id=ctx.consumer_id,
        latitude=location.latitude if location else None,
        longitude=location.longitude if location else None,
        device_hash=ctx.client_hash,
    )


async def enqueue_clone_alert(
    session: AsyncSession, ref: CodeRef, summary: Any, scan_id: int, ctx: CheckContext, clone: rules.CloneEvidence
) -> None:
    assert ctx.location is not None
    evidence = {
        "first": {
            "scan_id": summary.last_located_scan_id,
            "at": summary.last_located_at.isoformat(),
            "latitude": summary.last_latitude,
            "longitude": summary.last_longitude,
        },
        "second": {
            "scan_id": scan_id,
            "at": ctx.occurred_at.isoformat(),
            "latitude": ctx.location.latitude,
            "longitude": ctx.location.longitude,
            "province_code": ctx.region.province_code,
            "city_code": ctx.region.city_code,
            "city_name": ctx.region.city_name,
        },
    }
    payload = {
        "code_id": ref.code_id,
        "serial": ref.serial,
        "product_id": str(ref.product_id) if ref.product_id else None,
        "first_scan_id": summary.last_located_scan_id,
        "second_scan_id": scan_id,
        "distance_km": clone.distance_km,
        "seconds_between": clone.seconds_between,
        "speed_kmh": clone.speed_kmh,
        "evidence": evidence,
    }
    await jobs.enqueue(
        session, CLONE_ALERT_TOPIC, payload, tenant_id=ref.tenant_id, dedupe_key=f"clone:{ref.code_id}:{scan_id}"
    )


@jobs.job_handler(CLONE_ALERT_TOPIC)
async def clone_alert_job(ctx: jobs.JobContext) -> None:
    """Write the alert the operator triages (idempotent on the pair of scans)."""
    payload = ctx.payload
    first_scan = await ctx.session.scalar(select(Scan).where(Scan.id == payload["first_scan_id"]))
    if first_scan is not None:
        payload["evidence"]["first"] |= {
            "province_code": first_scan.province_code,
            "city_code": first_scan.city_code,
            "city_name": first_scan.city_name,
        }
    statement = (
        sql.insert(ctx.session, CloneAlert.__table__)
        .values(
            id=uuid.uuid4(),
            tenant_id=ctx.tenant_id,
            code_id=payload["code_id"],
            serial=payload["serial"],
            product_id=uuid.UUID(payload["product_id"]) if payload["product_id"] else None,
            first_scan_id=payload["first_scan_id"],
            second_scan_id=payload["second_scan_id"],
            distance_km=payload["distance_km"],
            seconds_between=payload["seconds_between"],
            speed_kmh=payload["speed_kmh"],
            evidence=payload["evidence"],
            status=m.ALERT_OPEN,
            note="",
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "first_scan_id", "second_scan_id"])
    )
    await ctx.session.execute(statement)


# Reading.


async def summary_of(session: AsyncSession, code_id: int) -> CodeSummary | None:
    return await session.scalar(select(CodeSummary).where(CodeSummary.code_id == code_id))


async def scan_history(
    session: AsyncSession, code_id: int, *, limit: int = 50, before_id: int | None = None
) -> list[Scan]:
    """A code's scans, newest first; page with `before_id` (the last id of the previous page)."""
    query = select(Scan).where(Scan.code_id == code_id)
    if before_id is not None:
        query = query.where(Scan.id < before_id)
    return list(await session.scalars(query.order_by(Scan.id.desc()).limit(limit)))


async def count_scans(session: AsyncSession, code_id: int) -> int:
    return int(await session.scalar(select(func.count()).select_from(Scan).where(Scan.code_id == code_id)) or 0)


async def list_clone_alerts(
    session: AsyncSession, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[CloneAlert]:
    query = select(CloneAlert)
    if status is not None:
        query = query.where(CloneAlert.status == status)
    return list(await session.scalars(query.order_by(CloneAlert.created_at.desc()).limit(limit).offset(offset)))


async def do_set_alert_status(
    session: AsyncSession, alert_id: uuid.UUID, status: str, *, by: str, note: str | None = None
) -> CloneAlert:
    if status not in m.ALERT_STATUSES:
        raise ValidationFailed(f"The status must be one of {', '.join(m.ALERT_STATUSES)}.", field="status")
    alert = await session.scalar(select(CloneAlert).where(CloneAlert.id == alert_id))
    if alert is None:
        raise CloneAlertNotFound()
    alert.status = status
    if note is not None:
        alert.note = note[:500]
    if status in (m.ALERT_CONFIRMED, m.ALERT_DISMISSED):
        alert.resolved_by, alert.resolved_at = by, utcnow()
    await session.flush()
    return alert
