"""The append-only audit log of operator actions: who, what, when, from where."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.logs import request_id_var
from zhongtai.core.models import AuditEvent
from zhongtai.core.principals import Principal


@dataclass(frozen=True)
class RequestOrigin:
    ip: str | None = None
    user_agent: str | None = None


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    origin: RequestOrigin | None = None,
    tenant_id: uuid.UUID | None = None,
) -> AuditEvent:
    event = AuditEvent(
        tenant_id=tenant_id or actor.tenant_id,
        actor_kind=str(actor.kind),
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        data=data or {},
        ip=origin.ip if origin else None,
        user_agent=(origin.user_agent or "")[:300] if origin else None,
        request_id=request_id_var.get(),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: Select[Any], flt: AuditFilter) -> Select[Any]:
    if flt.action:
        query = query.where(AuditEvent.action.startswith(flt.action))
    if flt.actor:
        query = query.where(AuditEvent.actor_label.contains(flt.actor))
    if flt.target_id:
        query = query.where(AuditEvent.target_id == flt.target_id)
    if flt.since:
        query = query.where(AuditEvent.created_at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.created_at < flt.until)
    return query


async def list_events(
    session: AsyncSession, flt: AuditFilter, *, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    total = await session.scalar(_filtered(select(func.count()).select_from(AuditEvent), flt))
    rows = await session.scalars(
        _filtered(select(AuditEvent), flt)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)
