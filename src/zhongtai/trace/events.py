"""Storage of EPCIS events: canonical form, idempotent inserts, the EPC index and the log leaf.

`prepare` turns one validated event into its stored form (or a located problem); `do_store` writes a
list of prepared events in the caller's transaction. An event whose eventID or canonical hash is
already stored for the tenant is not stored again (unique constraints, `ON CONFLICT DO NOTHING`, so
concurrent retries are safe too); every stored event's hash becomes a leaf of the tenant's Merkle log
in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, SmallInteger, Table, Text, Uuid, bindparam, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import sql
from zhongtai.core.clock import utcnow
from zhongtai.core.db import pg_driver
from zhongtai.trace import log, models
from zhongtai.trace.epc import InvalidEpc, normalize_epc
from zhongtai.trace.epcis_schema import Problem
from zhongtai.trace.errors import EpcisValidationError
from zhongtai.trace.hashing import cbv_term, error_declaration_hash_id, event_hash_id, parse_time
from zhongtai.trace.models import TraceCorrectiveEvent, TraceErrorDeclaration, TraceEvent, TraceEventEpc

CHUNK = 500
STANDARD_CONTEXT_PREFIX = ("https://ref.gs1.org/standards/epcis", "https://gs1.github.io/EPCIS")

_EVENTS: Table = TraceEvent.__table__  # type: ignore[assignment]
_EVENT_EPCS: Table = TraceEventEpc.__table__  # type: ignore[assignment]
_DECLARATIONS: Table = TraceErrorDeclaration.__table__  # type: ignore[assignment]
_CORRECTIVE: Table = TraceCorrectiveEvent.__table__  # type: ignore[assignment]
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


# PostgreSQL: fixed statement texts taking arrays (asyncpg prepares each once), so a document's events
# cost one statement each for the duplicate check, the events and their EPC rows, whatever their
# number. Core SQL: the tenancy guard does not rewrite it, so the tenant is filtered here.
# The duplicate check probes the two unique indexes once per wanted event (a LATERAL join forces
# the nested loop: with `= ANY(…) OR = ANY(…)` the planner picks a scan of the brand's events while
# it believes the table small).
_PG_EXISTING = text(
    "SELECT t.event_id, t.hash_id FROM unnest(:event_ids, :hash_ids) AS w(event_id, hash_id)"
    " CROSS JOIN LATERAL ("
    " SELECT e.event_id, e.hash_id FROM trace_events AS e WHERE e.tenant_id = :tenant_id AND e.event_id = w.event_id"
    " UNION ALL"
    " SELECT e.event_id, e.hash_id FROM trace_events AS e WHERE e.tenant_id = :tenant_id AND e.hash_id = w.hash_id"
    ") AS t"
).bindparams(
    bindparam("tenant_id", type_=Uuid),
    bindparam("event_ids", type_=ARRAY(Text)),
    bindparam("hash_ids", type_=ARRAY(Text)),
)
# The events and their EPC rows in one statement: the EPC rows join the events' RETURNING by hash, so
# an event a concurrent capture stored meanwhile (`ON CONFLICT DO NOTHING`) gets none.
_PG_INSERT_EVENTS = text(
    "WITH stored AS ("
    "INSERT INTO trace_events (tenant_id, event_id, hash_id, event_type, action, event_time,"
    " event_timezone_offset, record_time, biz_step, disposition, read_point, biz_location, capture_id, body, context)"
    " SELECT :tenant_id, e.event_id, e.hash_id, e.event_type, e.action, e.event_time, e.event_timezone_offset,"
    " :record_time, e.biz_step, e.disposition, e.read_point, e.biz_location, :capture_id,"
    " CAST(e.body AS jsonb), CAST(e.context AS jsonb)"
    " FROM unnest(:event_ids, :hash_ids, :event_types, :actions, :event_times, :offsets, :biz_steps,"
    " :dispositions, :read_points, :biz_locations, :bodies, :contexts) WITH ORDINALITY"
    " AS e(event_id, hash_id, event_type, action, event_time, event_timezone_offset, biz_step, disposition,"
    " read_point, biz_location, body, context, position)"
    " ORDER BY e.position"
    " ON CONFLICT DO NOTHING RETURNING id, hash_id),"
    " indexed AS ("
    "INSERT INTO trace_event_epcs (tenant_id, event_pk, role, epc)"
    " SELECT :tenant_id, stored.id, x.role, x.epc"
    " FROM unnest(:epc_hashes, :roles, :epcs) WITH ORDINALITY AS x(hash_id, role, epc, position)"
    " JOIN stored ON stored.hash_id = x.hash_id ORDER BY x.position)"
    " SELECT id, hash_id FROM stored"
).bindparams(
    bindparam("tenant_id", type_=Uuid),
    bindparam("record_time", type_=DateTime(timezone=True)),
    bindparam("capture_id", type_=Uuid),
    bindparam("event_times", type_=ARRAY(DateTime(timezone=True))),
    bindparam("roles", type_=ARRAY(SmallInteger)),
    *(
        bindparam(name, type_=ARRAY(Text))
        for name in (
            "event_ids",
            "hash_ids",
            "event_types",
            "actions",
            "offsets",
            "biz_steps",
            "dispositions",
            "read_points",
            "biz_locations",
            "bodies",
            "contexts",
            "epc_hashes",
            "epcs",
        )
    ),
)


# A capture document on PostgreSQL (`store_capture`): the events, their EPC rows and the finished
# capture job in one statement sent to asyncpg itself. The job's counts come from the events'
# RETURNING; its row is inserted by the last CTE, and the events' foreign key to it is checked at
# the end of the statement, when it exists.
_PG_CAPTURE_SQL = (
    "WITH stored AS ("
    "INSERT INTO trace_events (tenant_id, event_id, hash_id, event_type, action, event_time,"
    " event_timezone_offset, record_time, biz_step, disposition, read_point, biz_location, capture_id, body, context)"
    " SELECT $1, e.event_id, e.hash_id, e.event_type, e.action, e.event_time, e.event_timezone_offset,"
    " $2, e.biz_step, e.disposition, e.read_point, e.biz_location, $3, CAST(e.body AS jsonb), CAST($4 AS jsonb)"
    " FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::text[],"
    " $12::text[], $13::text[], $14::text[], $15::text[]) WITH ORDINALITY"
    " AS e(event_id, hash_id, event_type, action, event_time, event_timezone_offset, biz_step, disposition,"
    " read_point, biz_location, body, position)"
    " ORDER BY e.position"
    " ON CONFLICT DO NOTHING RETURNING id, hash_id),"
    " indexed AS ("
    "INSERT INTO trace_event_epcs (tenant_id, event_pk, role, epc)"
    " SELECT $1, stored.id, x.role, x.epc"
    " FROM unnest($16::text[], $17::smallint[], $18::text[]) WITH ORDINALITY AS x(hash_id, role, epc, position)"
    " JOIN stored ON stored.hash_id = x.hash_id ORDER BY x.position),"
    " job AS ("
    "INSERT INTO trace_capture_jobs (id, tenant_id, error_behaviour, is_running, is_success, event_count,"
    " stored_count, duplicate_count, errors, document, created_by, created_at, finished_at)"
    " SELECT $3, $1, $19, false, $20, $21, s.stored, $22 + cardinality($5::text[]) - s.stored,"
    " CAST($23 AS jsonb), NULL, $24, $25, $2 FROM (SELECT count(*) AS stored FROM stored) AS s)"
    " SELECT id, hash_id FROM stored"
)
# Events of a capture that were not inserted: stored meanwhile by another capture, or an eventID in use.
_PG_OWNERS_SQL = "SELECT event_id, hash_id FROM trace_events WHERE tenant_id = $1 AND event_id = ANY($2::text[])"
_PG_UNDO_SQL = "DELETE FROM trace_events WHERE tenant_id = $1 AND id = ANY($2::bigint[])"


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _json(value: Any) -> str:
    """JSON text as SQLAlchemy's JSON type writes it (so both paths store the same documents)."""
    return json.dumps(value)


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
    declaration: dict[str, Any] | None = None  # the event's errorDeclaration, stored apart
    declaration_entry: str | None = None  # its hash ID: its leaf in the log


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


MAX_IDENTIFIER_LENGTH = 512  # characters of an EPC, EPC class or location as sent


def long_identifiers(event: dict[str, Any], pointer: str) -> list[Problem]:
    """The identifiers of an event longer than MAX_IDENTIFIER_LENGTH, located (refused before capture)."""
    found: list[tuple[str, Any]] = [(f"{pointer}/parentID", event.get("parentID"))]
    for name, _ in _EPC_FIELDS:
        values = event.get(name)
        found.extend((f"{pointer}/{name}/{i}", v) for i, v in enumerate(values if isinstance(values, list) else []))
    for name, _ in _CLASS_FIELDS:
        values = event.get(name)
        for i, element in enumerate(values if isinstance(values, list) else []):
            if isinstance(element, dict):
                found.append((f"{pointer}/{name}/{i}/epcClass", element.get("epcClass")))
    for name in ("readPoint", "bizLocation"):
        place = event.get(name)
        if isinstance(place, dict):
            found.append((f"{pointer}/{name}/id", place.get("id")))
    return [
        Problem(where, f"an identifier has at most {MAX_IDENTIFIER_LENGTH} characters, not {len(value)}")
        for where, value in found
        if isinstance(value, str) and len(value) > MAX_IDENTIFIER_LENGTH
    ]


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
    body = {k: v for k, v in event.items() if k not in ("recordTime", "@context", "errorDeclaration")}
    body.setdefault("eventID", hash_id)
    declaration = event.get("errorDeclaration") if isinstance(event.get("errorDeclaration"), dict) else None
    if declaration is not None:
        try:
            parse_time(str(declaration.get("declarationTime")))
        except ValueError as exc:
            raise EventProblem(f"{pointer}/errorDeclaration/declarationTime", str(exc)) from exc
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
        declaration=declaration,
        declaration_entry=error_declaration_hash_id(hash_id, declaration, namespaces) if declaration else None,
    )


async def _existing(session: AsyncSession, tenant_id: uuid.UUID, events: Sequence[PreparedEvent]) -> dict[str, str]:
    """event_id → hash_id of stored events sharing an eventID or a hash with `events`."""
    found: dict[str, str] = {}
    if _is_postgres(session):
        rows = await session.execute(
            _PG_EXISTING,
            {
                "tenant_id": tenant_id,
                "event_ids": [e.event_id for e in events],
                "hash_ids": [e.hash_id for e in events],
            },
        )
        return {str(event_id): str(hash_id) for event_id, hash_id in rows}
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
    return split_new(events, await _existing(session, tenant_id, events))


def split_new(
    events: Sequence[PreparedEvent], stored: dict[str, str]
) -> tuple[list[PreparedEvent], int, list[Problem]]:
    """`check_new` given the stored events (event_id → hash_id) that share an eventID or a hash with
    `events`; with none given, the duplicates and conflicts within `events` alone."""
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
    if _is_postgres(session):
        await _store_unnest(session, tenant_id, events, capture_id, record_time, result)
    else:
        await _store_values(session, tenant_id, events, capture_id, record_time, result)
    if result.stored:
        await _append_to_log(session, tenant_id, [e.hash_id for e in result.stored])
    return result


async def _store_unnest(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    events: Sequence[PreparedEvent],
    capture_id: uuid.UUID | None,
    record_time: datetime,
    result: StoreResult,
) -> None:
    """One statement for any number of events: the events (`unnest` of column arrays, `ON CONFLICT DO
    NOTHING` for concurrent captures) and the EPC rows of those inserted."""
    if not events:
        return
    epcs = [(e.hash_id, role, epc) for e in events for role, epc in e.epcs]
    inserted = await session.execute(
        _PG_INSERT_EVENTS,
        {
            "tenant_id": tenant_id,
            "record_time": record_time,
            "capture_id": capture_id,
            "event_ids": [e.event_id for e in events],
            "hash_ids": [e.hash_id for e in events],
            "event_types": [e.event_type for e in events],
            "actions": [e.action for e in events],
            "event_times": [e.event_time for e in events],
            "offsets": [e.event_timezone_offset for e in events],
            "biz_steps": [e.biz_step for e in events],
            "dispositions": [e.disposition for e in events],
            "read_points": [e.read_point for e in events],
            "biz_locations": [e.biz_location for e in events],
            "bodies": [_json(e.body) for e in events],
            "contexts": [_json(e.context) for e in events],
            "epc_hashes": [hash_id for hash_id, _, _ in epcs],
            "roles": [role for _, role, _ in epcs],
            "epcs": [epc for _, _, epc in epcs],
        },
    )
    stored = {hash_id for _, hash_id in inserted}
    new = [e for e in events if e.hash_id in stored]
    result.duplicates += len(events) - len(new)
    result.stored.extend(new)


async def _store_values(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    events: Sequence[PreparedEvent],
    capture_id: uuid.UUID | None,
    record_time: datetime,
    result: StoreResult,
) -> None:
    """Multi-row `INSERT … VALUES` per CHUNK events (SQLite; on PostgreSQL the reference for `_store_unnest`)."""
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
            sql.insert_ignore(session, _EVENTS).values(rows).returning(_EVENTS.c.id, _EVENTS.c.hash_id)
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
            await session.execute(sql.insert(session, _EVENT_EPCS), epc_rows)
        result.stored.extend(new)


@dataclass
class CaptureOutcome:
    stored: int
    duplicates: int
    problems: list[Problem]


async def store_capture(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    prepared: Sequence[PreparedEvent],
    *,
    problems: list[Problem],
    job: dict[str, Any],
) -> CaptureOutcome:
    """A capture document's events on PostgreSQL, with its finished capture job (`job`: id,
    error_behaviour, event_count, created_by, created_at), in the caller's transaction.

    One statement stores the events not seen before in the document (`ON CONFLICT DO NOTHING` on
    both unique keys), their EPC rows and the job; then the log append. No query beforehand: only
    when an event was not inserted is it looked up — a duplicate (stored by an earlier or a
    concurrent capture: the conflicting insert waits for that one to commit, and this lookup reads
    it) or a conflict (its eventID names a different event). A conflict under `rollback` takes the
    document's events out again (their EPC rows go with them) before anything reaches the log.
    """
    behaviour = job["error_behaviour"]
    new, duplicates, conflicts = split_new(prepared, {})
    if problems or conflicts:
        # Something is refused already (the rare path): look the stored events up first, as
        # `check_new` does, so that a refused document's job counts its duplicates all the same.
        new, duplicates, conflicts = await check_new(session, tenant_id, prepared)
    problems = [*problems, *conflicts]
    to_store = new if not problems or behaviour == "proceed" else []
    epcs = [(e.hash_id, role, epc) for e in to_store for role, epc in e.epcs]
    driver = await pg_driver(session)
    record_time = utcnow()
    inserted = await driver.fetch(
        _PG_CAPTURE_SQL,
        tenant_id,
        record_time,
        job["id"],
        _json(to_store[0].context) if to_store else "null",
        [e.event_id for e in to_store],
        [e.hash_id for e in to_store],
        [e.event_type for e in to_store],
        [e.action for e in to_store],
        [e.event_time for e in to_store],
        [e.event_timezone_offset for e in to_store],
        [e.biz_step for e in to_store],
        [e.disposition for e in to_store],
        [e.read_point for e in to_store],
        [e.biz_location for e in to_store],
        [_json(e.body) for e in to_store],
        [hash_id for hash_id, _, _ in epcs],
        [role for _, role, _ in epcs],
        [epc for _, _, epc in epcs],
        behaviour,
        not problems,
        job["event_count"],
        duplicates,
        _json(job_errors(problems)),
        job["created_by"],
        job["created_at"],
    )
    stored_ids = {str(hash_id): int(pk) for pk, hash_id in inserted}
    stored = [e for e in to_store if e.hash_id in stored_ids]
    if len(stored) < len(to_store):
        skipped = [e for e in to_store if e.hash_id not in stored_ids]
        owners = {
            str(event_id): str(hash_id)
            for event_id, hash_id in await driver.fetch(_PG_OWNERS_SQL, tenant_id, [e.event_id for e in skipped])
        }
        late = [
            Problem(e.pointer, f"eventID {e.event_id} is already used by a different event")
            for e in skipped
            if owners.get(e.event_id, e.hash_id) != e.hash_id
        ]
        duplicates += len(skipped) - len(late)
        if late:
            problems = [*problems, *late]
            if behaviour == "rollback" and stored:
                await driver.execute(_PG_UNDO_SQL, tenant_id, list(stored_ids.values()))
                stored = []
            await driver.execute(
                "UPDATE trace_capture_jobs SET is_success = false, stored_count = $3, duplicate_count = $4,"
                " errors = CAST($5 AS jsonb) WHERE tenant_id = $1 AND id = $2",
                tenant_id,
                job["id"],
                len(stored),
                duplicates,
                _json(job_errors(problems)),
            )
    if stored:
        await _append_to_log(session, tenant_id, [e.hash_id for e in stored])
    return CaptureOutcome(stored=len(stored), duplicates=duplicates, problems=problems)


def accepted(prepared: Sequence[PreparedEvent], problems: Sequence[Problem], behaviour: str) -> list[PreparedEvent]:
    """The events of a capture that were not refused (none under `rollback` when any was)."""
    if problems and behaviour != "proceed":
        return []
    refused = {p.pointer for p in problems}
    return [e for e in prepared if e.pointer not in refused]


async def record_declarations(session: AsyncSession, tenant_id: uuid.UUID, events: Sequence[PreparedEvent]) -> int:
    """Record the error declarations the events carry against the stored events (new or stored
    before: the hash leaves the declaration out), each once, and append each new one's hash ID to the
    log after the events. Returns how many were new. No statement when no event carries one."""
    declared = [e for e in events if e.declaration is not None and e.declaration_entry is not None]
    if not declared:
        return 0
    found = await session.execute(
        select(TraceEvent.hash_id, TraceEvent.id).where(
            TraceEvent.tenant_id == tenant_id, TraceEvent.hash_id.in_({e.hash_id for e in declared})
        )
    )
    pk_of = {str(hash_id): int(pk) for hash_id, pk in found}
    rows: dict[str, dict[str, Any]] = {}
    for e in declared:
        if e.hash_id not in pk_of or e.declaration is None or not e.declaration_entry or e.declaration_entry in rows:
            continue
        reason = e.declaration.get("reason")
        rows[e.declaration_entry] = {
            "tenant_id": tenant_id,
            "event_pk": pk_of[e.hash_id],
            "entry": e.declaration_entry,
            "declaration_time": parse_time(str(e.declaration["declarationTime"])),
            "reason": cbv_term(str(reason), "ER") if reason else None,
            "body": e.declaration,
            "record_time": utcnow(),
        }
    if not rows:
        return 0
    inserted = await session.execute(
        sql.insert_ignore(session, _DECLARATIONS)
        .values(list(rows.values()))
        .returning(_DECLARATIONS.c.id, _DECLARATIONS.c.entry)
    )
    new = {str(entry): int(pk) for pk, entry in inserted}
    corrective = [
        {"tenant_id": tenant_id, "declaration_pk": new[entry], "event_id": str(event_id).strip()}
        for entry, row in rows.items()
        if entry in new
        for event_id in dict.fromkeys(row["body"].get("correctiveEventIDs") or [])
    ]
    if corrective:
        await session.execute(sql.insert(session, _CORRECTIVE), corrective)
    if new:
        await _append_to_log(session, tenant_id, [entry for entry in rows if entry in new])
    return len(new)


def job_errors(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """A capture job's `errors`: RFC 7807 objects with a pointer, in document order."""
    return [
        {
            "type": EpcisValidationError.epcis_type,
            "title": "Event not captured",
            "status": 400,
            "detail": problem.message,
            "pointer": problem.pointer,
        }
        for problem in sorted(problems, key=lambda p: p.pointer)
    ]


async def _append_to_log(session: AsyncSession, tenant_id: uuid.UUID, hash_ids: Sequence[str]) -> None:
    """One leaf of the tenant's Merkle log per stored event, in document order (invariant 6)."""
    for start in range(0, len(hash_ids), log.MAX_APPEND):
        await log.append(session, tenant_id, [h.encode() for h in hash_ids[start : start + log.MAX_APPEND]])
