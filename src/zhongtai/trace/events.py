"""Storage of EPCIS events: canonical form, idempotent inserts, the EPC index and the log leaf.

`prepare` turns one validated event into its stored form (or a located problem); `do_store` writes a
list of prepared events in the caller's transaction. An event whose eventID or canonical hash is
already stored for the tenant is not stored again (unique constraints, `ON CONFLICT DO NOTHING`, so
concurrent retries are safe too); every stored event's hash becomes a leaf of the tenant's Merkle log
in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.trace import log, models
from zhongtai.trace.epc import InvalidEpc, normalize_epc
from zhongtai.trace.epcis_schema import Problem
from zhongtai.trace.hashing import cbv_term, event_hash_id, parse_time
from zhongtai.trace.models import TraceEvent, TraceEventEpc

CHUNK = 500
STANDARD_CONTEXT_PREFIX = ("https://ref.gs1.org/standards/epcis", "https://gs1.github.io/EPCIS")

_EVENTS: Table = TraceEvent.__table__  # type: ignore[assignment]
_EVENT_EPCS: Table = TraceEventEpc.__table__  # type: ignore[assignment]
_EPC_FIELDS = (
    ("epcList", models.EPC),
    ("childEPCs", models.CHILD),
    ("inputEPCList", models.INPUT),
    ("outputEPCList", models.OUTPUT),
)
_CLASS_FIELDS = (
    ("quantityList", models.QUANTITY),
    ("childQuantityList", models.CHILD_QUANTITY),
    ("inputQuantityList", models.INPUT_QUANTITY),
    ("outputQuantityList", models.OUTPUT_QUANTITY),
)


class EventProblem(ValueError):
    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(pointer, message)


@dataclass
class PreparedEvent:
    position: int
    pointer: str
    body: dict[str, Any]
    event_id: str
    hash_id: str
    event_type: str
    action: str | None
    event_time: datetime
    event_timezone_offset: str
    biz_step: str | None
    disposition: str | None
    read_point: str | None
    biz_location: str | None
    epcs: list[tuple[int, str]]
    context: list[Any] | None


@dataclass
class StoreResult:
    stored: list[PreparedEvent] = field(default_factory=list)
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)


def extra_context(context: Any) -> list[Any] | None:
    """The entries of a document's `@context` beyond the standard EPCIS context (extension prefixes)."""
    entries = context if isinstance(context, list) else [context]
    extra = [e for e in entries if not (isinstance(e, str) and e.startswith(STANDARD_CONTEXT_PREFIX))]
    return extra or None


def _canonical(value: Any, pointer: str) -> str:
    try:
        return normalize_epc(str(value))
    except InvalidEpc as exc:
        raise EventProblem(pointer, f"{value!r} is not a valid identifier: {exc}") from exc


def prepare(
    event: dict[str, Any], *, position: int, pointer: str, namespaces: dict[str, str], context: list[Any] | None
) -> PreparedEvent:
    """The stored form of one schema-valid event; raises EventProblem with a JSON pointer."""
    epcs: list[tuple[int, str]] = []
    if event.get("parentID"):
        epcs.append((models.PARENT, _canonical(event["parentID"], f"{pointer}/parentID")))
    for name, role in _EPC_FIELDS:
        for i, epc in enumerate(event.get(name) or []):
            epcs.append((role, _canonical(epc, f"{pointer}/{name}/{i}")))
    for name, role in _CLASS_FIELDS:
        for i, element in enumerate(event.get(name) or []):
            epcs.append((role, _canonical(element["epcClass"], f"{pointer}/{name}/{i}/epcClass")))
    locations = {}
    for name in ("readPoint", "bizLocation"):
        place = event.get(name)
        locations[name] = _canonical(place["id"], f"{pointer}/{name}/id") if isinstance(place, dict) else None
    if event.get("ilmd") and event.get("type") == "ObjectEvent" and event.get("action") != "ADD":
        raise EventProblem(f"{pointer}/ilmd", "ilmd is only allowed in an ObjectEvent with action ADD")
    try:
        event_time = parse_time(event["eventTime"])
    except ValueError as exc:
        raise EventProblem(f"{pointer}/eventTime", str(exc)) from exc
    hash_id = event_hash_id(event, namespaces)
    body = {k: v for k, v in event.items() if k not in ("recordTime", "@context")}
    body.setdefault("eventID", hash_id)
    return PreparedEvent(
        position=position,
        pointer=pointer,
        body=body,
        event_id=str(body["eventID"]).strip(),
        hash_id=hash_id,
        event_type=str(event["type"]),
        action=event.get("action"),
        event_time=event_time,
        event_timezone_offset=event["eventTimeZoneOffset"],
        biz_step=cbv_term(event["bizStep"], "BizStep") if event.get("bizStep") else None,
        disposition=cbv_term(event["disposition"], "Disp") if event.get("disposition") else None,
        read_point=locations["readPoint"],
        biz_location=locations["bizLocation"],
        epcs=list(dict.fromkeys(epcs)),
        context=context,
    )


async def _existing(session: AsyncSession, tenant_id: uuid.UUID, events: Sequence[PreparedEvent]) -> dict[str, str]:
    """event_id → hash_id of stored events sharing an eventID or a hash with `events`."""
    found: dict[str, str] = {}
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        rows = await session.execute(
            select(TraceEvent.event_id, TraceEvent.hash_id).where(
                TraceEvent.tenant_id == tenant_id,
                or_(
                    TraceEvent.event_id.in_([e.event_id for e in chunk]),
                    TraceEvent.hash_id.in_([e.hash_id for e in chunk]),
                ),
            )
        )
        found.update({str(event_id): str(hash_id) for event_id, hash_id in rows})
    return found


async def check_new(
    session: AsyncSession, tenant_id: uuid.UUID, events: Sequence[PreparedEvent]
) -> tuple[list[PreparedEvent], int, list[Problem]]:
    """Split into events to store, a count of those already stored, and conflicts (an eventID
    already used by a different event)."""
    stored = await _existing(session, tenant_id, events)
    stored_hashes = set(stored.values())
    seen_ids: dict[str, str] = {}
    seen_hashes: set[str] = set()
    new: list[PreparedEvent] = []
    duplicates = 0
    problems: list[Problem] = []
    for event in events:
        owner = stored.get(event.event_id, seen_ids.get(event.event_id))
        if owner is not None and owner != event.hash_id:
            problems.append(Problem(event.pointer, f"eventID {event.event_id} is already used by a different event"))
        elif owner is not None or event.hash_id in stored_hashes or event.hash_id in seen_hashes:
            duplicates += 1
        else:
            new.append(event)
            seen_ids[event.event_id] = event.hash_id
            seen_hashes.add(event.hash_id)
    return new, duplicates, problems


async def do_store(
    session: AsyncSession, tenant_id: uuid.UUID, events: Sequence[PreparedEvent], *, capture_id: uuid.UUID | None
) -> StoreResult:
    """Insert the events not stored yet, index their EPCs and append their hashes to the log.

    Call `check_new` first; events that a concurrent capture stored meanwhile count as duplicates.
    """
    result = StoreResult()
    record_time = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        rows = [
            {
                "tenant_id": tenant_id,
                "event_id": e.event_id,
                "hash_id": e.hash_id,
                "event_type": e.event_type,
                "action": e.action,
                "event_time": e.event_time,
                "event_timezone_offset": e.event_timezone_offset,
                "record_time": record_time,
                "biz_step": e.biz_step,
                "disposition": e.disposition,
                "read_point": e.read_point,
                "biz_location": e.biz_location,
                "capture_id": capture_id,
                "body": e.body,
                "context": e.context,
            }
            for e in chunk
        ]
        inserted = await session.execute(
            insert(_EVENTS).values(rows).on_conflict_do_nothing().returning(_EVENTS.c.id, _EVENTS.c.hash_id)
        )
        pk_of = {hash_id: pk for pk, hash_id in inserted}
        new = [e for e in chunk if e.hash_id in pk_of]
        result.duplicates += len(chunk) - len(new)
        epc_rows = [
            {"tenant_id": tenant_id, "event_pk": pk_of[e.hash_id], "role": role, "epc": epc}
            for e in new
            for role, epc in e.epcs
        ]
        if epc_rows:
            await session.execute(insert(_EVENT_EPCS), epc_rows)
        result.stored.extend(new)
    if result.stored:
        await _append_to_log(session, tenant_id, [e.hash_id for e in result.stored])
    return result


async def _append_to_log(session: AsyncSession, tenant_id: uuid.UUID, hash_ids: Sequence[str]) -> None:
    """One leaf of the tenant's Merkle log per stored event, in document order (invariant 6)."""
    for start in range(0, len(hash_ids), log.MAX_APPEND):
        await log.append(session, tenant_id, [h.encode() for h in hash_ids[start : start + log.MAX_APPEND]])
