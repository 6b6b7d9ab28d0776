"""Operators' decisions on clone alerts: open → (investigating →) confirmed / dismissed, reopen.

Like counterfeit reports: transitions are checked, a note is required to close or reopen, the change
is conditional on the status the operator saw (two operators cannot overwrite each other), and it is
audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import models as m
from zhongtai.authenticity.models import CloneAlert, Scan
from zhongtai.authenticity.service import CloneAlertNotFound
from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import Conflict, ValidationFailed
from zhongtai.core.models import AuditEvent
from zhongtai.core.principals import Principal

ALERT_TRANSITIONS: dict[str, frozenset[str]] = {
    m.ALERT_OPEN: frozenset({m.ALERT_INVESTIGATING, m.ALERT_CONFIRMED, m.ALERT_DISMISSED}),
    m.ALERT_INVESTIGATING: frozenset({m.ALERT_CONFIRMED, m.ALERT_DISMISSED}),
    m.ALERT_CONFIRMED: frozenset({m.ALERT_INVESTIGATING}),
    m.ALERT_DISMISSED: frozenset({m.ALERT_INVESTIGATING}),
}
ALERT_CLOSED = frozenset({m.ALERT_CONFIRMED, m.ALERT_DISMISSED})
MAX_ALERT_NOTE = 500


def check_alert_transition(current: str, target: str, note: str) -> str:
    if target not in m.ALERT_STATUSES:
        raise ValidationFailed(f"Unknown status '{target}'; use one of {', '.join(m.ALERT_STATUSES)}.", field="status")
    if target == current:
        raise Conflict("The alert already has this status.", status=current)
    if target not in ALERT_TRANSITIONS[current]:
        raise Conflict(
            "The alert cannot go to this status from its current one.",
            status=current,
            target=target,
            allowed=sorted(ALERT_TRANSITIONS[current]),
        )
    cleaned = note.strip()
    if len(cleaned) > MAX_ALERT_NOTE:
        raise ValidationFailed("The note: at most 500 characters.", field="note")
    if (target in ALERT_CLOSED or current in ALERT_CLOSED) and not cleaned:
        raise ValidationFailed("Write a note: why is the alert confirmed, dismissed or reopened?", field="note")
    return cleaned


async def get_alert(session: AsyncSession, alert_id: uuid.UUID) -> CloneAlert:
    alert = await session.scalar(select(CloneAlert).where(CloneAlert.id == alert_id))
    if alert is None:
        raise CloneAlertNotFound()
    return alert


async def alert_scans(session: AsyncSession, alert: CloneAlert) -> tuple[Scan | None, Scan | None]:
    rows = {
        scan.id: scan
        for scan in await session.scalars(select(Scan).where(Scan.id.in_([alert.first_scan_id, alert.second_scan_id])))
    }
    return rows.get(alert.first_scan_id), rows.get(alert.second_scan_id)


async def do_triage_alert(
    session: AsyncSession,
    actor: Principal,
    alert_id: uuid.UUID,
    *,
    status: str,
    note: str = "",
    expected: str | None = None,
    origin: RequestOrigin | None = None,
) -> CloneAlert:
    alert = await get_alert(session, alert_id)
    current = alert.status
    if expected is not None and expected != current:
        raise Conflict("Somebody else changed this alert meanwhile. Reload and decide again.", status=current)
    cleaned = check_alert_transition(current, status, note)
    now = utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status in ALERT_CLOSED:
        values |= {"resolved_by": actor.label, "resolved_at": now, "note": cleaned}
    else:
        values |= {"resolved_by": None, "resolved_at": None}
        if cleaned:
            values["note"] = cleaned
    changed = await session.execute(
        update(CloneAlert)
        .where(CloneAlert.id == alert.id, CloneAlert.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Somebody else changed this alert meanwhile. Reload and decide again.")
    await session.refresh(alert)
    await audit.record(
        session,
        actor,
        f"authenticity.alert.{status}",
        target_type="clone_alert",
        target_id=alert.id,
        data={"from": current, "to": status, "note": cleaned, "serial": alert.serial},
        origin=origin,
    )
    return alert


async def alert_history(session: AsyncSession, alert_id: uuid.UUID) -> list[AuditEvent]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_type == "clone_alert", AuditEvent.target_id == str(alert_id))
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return list(rows)


async def list_alerts(
    session: AsyncSession, *, status: str | None, limit: int, offset: int
) -> tuple[list[CloneAlert], int, dict[str, int]]:
    query = select(CloneAlert)
    count_query = select(func.count()).select_from(CloneAlert)
    if status is not None:
        query = query.where(CloneAlert.status == status)
        count_query = count_query.where(CloneAlert.status == status)
    rows = list(
        await session.scalars(query.order_by(CloneAlert.created_at.desc(), CloneAlert.id).limit(limit).offset(offset))
    )
    total = int(await session.scalar(count_query) or 0)
    counts = dict.fromkeys(m.ALERT_STATUSES, 0)
    for key, n in (await session.execute(select(CloneAlert.status, func.count()).group_by(CloneAlert.status))).all():
        counts[key] = int(n)
    return rows, total, counts
