"""EPCIS event queries (SimpleEventQuery parameters of the REST bindings) with keyset paging.

`parse` reads the query string strictly: an unknown parameter, a standard parameter this repository
does not implement, or a malformed value is a QueryParameterException. List values are
pipe-delimited (`EQ_bizStep=shipping|receiving`) or repeated. bizStep and disposition accept CBV
bare words, URNs and Web URIs alike; identifiers accept EPC URNs and Digital Links alike (both are
compared in their canonical form). Pages follow the events' storage order; `nextPageToken` is the
last row's position, signed together with the tenant and the query so it cannot be altered or reused
for another query.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.crypto import Crypto, constant_time_equals
from zhongtai.trace import models
from zhongtai.trace.epc import InvalidEpc, normalize_epc, query_pattern
from zhongtai.trace.errors import QueryParameterError
from zhongtai.trace.hashing import cbv_term, parse_time
from zhongtai.trace.models import TraceCorrectiveEvent, TraceErrorDeclaration, TraceEvent, TraceEventEpc

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 1000
EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")
ACTIONS = ("ADD", "OBSERVE", "DELETE")

# MATCH_* parameter → roles of trace_event_epcs it looks at (EPCIS 2.0 §8.2.7.1).
MATCH_ROLES: dict[str, tuple[int, ...]] = {
    "MATCH_epc": (models.EPC, models.CHILD),
    "MATCH_parentID": (models.PARENT,),
    "MATCH_inputEPC": (models.INPUT,),
    "MATCH_outputEPC": (models.OUTPUT,),
    "MATCH_anyEPC": models.INSTANCE_ROLES,
    "MATCH_epcClass": (models.QUANTITY, models.CHILD_QUANTITY),
    "MATCH_inputEPCClass": (models.INPUT_QUANTITY,),
    "MATCH_outputEPCClass": (models.OUTPUT_QUANTITY,),
    "MATCH_anyEPCClass": models.CLASS_ROLES,
}
TIME_BOUNDS = {
    "GE_eventTime": ("event_time", ">="),
    "LT_eventTime": ("event_time", "<"),
    "GE_recordTime": ("record_time", ">="),
    "LT_recordTime": ("record_time", "<"),
}
# GE_/LT_errorDeclarationTime: events with a recorded declaration whose declarationTime is in bounds.
DECLARATION_TIME_BOUNDS = {"GE_errorDeclarationTime": ">=", "LT_errorDeclarationTime": "<"}
ERROR_PARAMETERS = ("EXISTS_errorDeclaration", "EQ_errorReason", "EQ_correctiveEventID")
SUPPORTED = frozenset(
    {
        "eventType",
        *TIME_BOUNDS,
        "EQ_action",
        "EQ_bizStep",
        "EQ_disposition",
        "EQ_readPoint",
        "EQ_bizLocation",
        "EQ_eventID",
        *ERROR_PARAMETERS,
        *DECLARATION_TIME_BOUNDS,
        *MATCH_ROLES,
        "perPage",
        "nextPageToken",
    }
)
# Standard parameters of the bindings that this repository does not evaluate (yet): refused by name.
NOT_IMPLEMENTED = frozenset(
    {
        "EQ_persistentDisposition_set",
        "EQ_persistentDisposition_unset",
        "WD_readPoint",
        "WD_bizLocation",
        "EQ_transformationID",
        "EQ_quantity",
        "GT_quantity",
        "GE_quantity",
        "LT_quantity",
        "LE_quantity",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
    }
)


@dataclass
class EventQuery:
    event_types: list[str] = field(default_factory=list)
    times: list[tuple[str, str, datetime]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    biz_steps: list[str] = field(default_factory=list)
    dispositions: list[str] = field(default_factory=list)
    read_points: list[str] = field(default_factory=list)
    biz_locations: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    matches: list[tuple[tuple[int, ...], list[tuple[str, bool]]]] = field(default_factory=list)
    error_declared: bool = False
    error_reasons: list[str] = field(default_factory=list)
    corrective_event_ids: list[str] = field(default_factory=list)
    declaration_times: list[tuple[str, datetime]] = field(default_factory=list)
    per_page: int = DEFAULT_PER_PAGE
    page_token: str | None = None
    fingerprint: str = ""


def _values(name: str, raw: Sequence[str]) -> list[str]:
    values = [part.strip() for value in raw for part in value.split("|")]
    if not values or any(not v for v in values):
        raise QueryParameterError(f"{name} needs a value.", parameter=name)
    return values


def _time(name: str, raw: Sequence[str]) -> datetime:
    if len(raw) != 1:
        raise QueryParameterError(f"{name} takes one value.", parameter=name)
    text = raw[0].strip().replace(" ", "+")  # a '+' of the offset often arrives as a space
    try:
        return parse_time(text)
    except ValueError:
        raise QueryParameterError(
            f"{name}={raw[0]!r} is not a date-time with a time zone (e.g. 2024-05-01T08:00:00+08:00).",
            parameter=name,
        ) from None


def _identifier(name: str, value: str) -> str:
    try:
        return normalize_epc(value)
    except InvalidEpc as exc:
        raise QueryParameterError(f"{name}: {value!r} is not a valid identifier: {exc}", parameter=name) from None


def _error_parameter(query: EventQuery, name: str, raw: Sequence[str]) -> None:
    if name == "EXISTS_errorDeclaration":
        query.error_declared = True  # the parameter's value is void: its presence is the condition
    elif name == "EQ_errorReason":
        query.error_reasons = [cbv_term(v, "ER") for v in _values(name, raw)]
    else:
        query.corrective_event_ids = _values(name, raw)


def parse(params: Sequence[tuple[str, str]]) -> EventQuery:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    query = EventQuery()
    for name, raw in grouped.items():
        if name in NOT_IMPLEMENTED:
            raise QueryParameterError(
                f"The query parameter {name} is not supported by this repository.", parameter=name
            )
        if name not in SUPPORTED:
            raise QueryParameterError(f"Unknown query parameter {name}.", parameter=name)
        if name == "eventType":
            query.event_types = _values(name, raw)
            unknown = [t for t in query.event_types if t not in EVENT_TYPES]
            if unknown:
                raise QueryParameterError(f"eventType {unknown[0]!r} is not an EPCIS event type.", parameter=name)
        elif name in TIME_BOUNDS:
            column, operator = TIME_BOUNDS[name]
            query.times.append((column, operator, _time(name, raw)))
        elif name == "EQ_action":
            query.actions = _values(name, raw)
            if any(a not in ACTIONS for a in query.actions):
                raise QueryParameterError("EQ_action takes ADD, OBSERVE or DELETE.", parameter=name)
        elif name == "EQ_bizStep":
            query.biz_steps = [cbv_term(v, "BizStep") for v in _values(name, raw)]
        elif name == "EQ_disposition":
            query.dispositions = [cbv_term(v, "Disp") for v in _values(name, raw)]
        elif name == "EQ_readPoint":
            query.read_points = [_identifier(name, v) for v in _values(name, raw)]
        elif name == "EQ_bizLocation":
            query.biz_locations = [_identifier(name, v) for v in _values(name, raw)]
        elif name == "EQ_eventID":
            query.event_ids = _values(name, raw)
        elif name in ERROR_PARAMETERS:
            _error_parameter(query, name, raw)
        elif name in DECLARATION_TIME_BOUNDS:
            query.declaration_times.append((DECLARATION_TIME_BOUNDS[name], _time(name, raw)))
        elif name in MATCH_ROLES:
            patterns = []
            for value in _values(name, raw):
                try:
                    pattern = query_pattern(value)
                except InvalidEpc as exc:
                    raise QueryParameterError(f"{name}: {value!r} is not a valid EPC: {exc}", parameter=name) from None
                patterns.append((pattern.value, pattern.matches_below))
            query.matches.append((MATCH_ROLES[name], patterns))
        elif name == "perPage":
            if len(raw) != 1 or not raw[0].isdigit() or not 1 <= int(raw[0]) <= MAX_PER_PAGE:
                raise QueryParameterError(f"perPage must be a whole number from 1 to {MAX_PER_PAGE}.", parameter=name)
            query.per_page = int(raw[0])
        elif name == "nextPageToken":
            query.page_token = raw[-1]
    filters = sorted((k, v) for k, v in params if k not in ("perPage", "nextPageToken"))
    query.fingerprint = hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:32]
    return query


# Page tokens


def _token_purpose(tenant_id: uuid.UUID, query: EventQuery) -> str:
    return f"epcis.page:{tenant_id}:{query.fingerprint}"


def make_token(crypto: Crypto, tenant_id: uuid.UUID, query: EventQuery, after: int) -> str:
    payload = base64.urlsafe_b64encode(str(after).encode()).decode().rstrip("=")
    return f"{payload}.{crypto.sign(payload, purpose=_token_purpose(tenant_id, query))[:32]}"


def read_token(crypto: Crypto, tenant_id: uuid.UUID, query: EventQuery) -> int | None:
    if query.page_token is None:
        return None
    payload, _, signature = query.page_token.partition(".")
    expected = crypto.sign(payload, purpose=_token_purpose(tenant_id, query))[:32]
    if not signature or not constant_time_equals(signature, expected):
        raise QueryParameterError("nextPageToken is not valid for this query.", parameter="nextPageToken")
    try:
        return int(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode())
    except ValueError:
        raise QueryParameterError("nextPageToken is not valid.", parameter="nextPageToken") from None


# SQL


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _match(tenant_id: uuid.UUID, roles: tuple[int, ...], patterns: list[tuple[str, bool]]) -> ColumnElement[bool]:
    alternatives: list[ColumnElement[bool]] = []
    for value, below in patterns:
        alternatives.append(TraceEventEpc.epc == value)
        if below:
            alternatives.append(TraceEventEpc.epc.like(_escape_like(value) + "/%", escape="\\"))
    return exists().where(
        TraceEventEpc.tenant_id == tenant_id,
        TraceEventEpc.event_pk == TraceEvent.id,
        TraceEventEpc.role.in_(roles),
        or_(*alternatives),
    )


def _declaration_conditions(tenant_id: uuid.UUID, query: EventQuery) -> list[ColumnElement[bool]]:
    """EXISTS_errorDeclaration, EQ_errorReason, EQ_correctiveEventID: an event with a recorded
    declaration (any of them, when several were recorded) that has the reason / names the event.
    GE_/LT_errorDeclarationTime: an event with a declaration declared within both bounds (the same one)."""
    found: list[ColumnElement[bool]] = []
    declared = [TraceErrorDeclaration.tenant_id == tenant_id, TraceErrorDeclaration.event_pk == TraceEvent.id]
    if query.error_declared:
        found.append(exists().where(*declared))
    if query.error_reasons:
        found.append(exists().where(*declared, TraceErrorDeclaration.reason.in_(query.error_reasons)))
    if query.corrective_event_ids:
        found.append(
            exists().where(
                *declared,
                TraceCorrectiveEvent.tenant_id == tenant_id,
                TraceCorrectiveEvent.declaration_pk == TraceErrorDeclaration.id,
                TraceCorrectiveEvent.event_id.in_(query.corrective_event_ids),
            )
        )
    if query.declaration_times:
        bounds = [
            TraceErrorDeclaration.declaration_time >= moment
            if operator == ">="
            else TraceErrorDeclaration.declaration_time < moment
            for operator, moment in query.declaration_times
        ]
        found.append(exists().where(*declared, *bounds))
    return found


def statement(tenant_id: uuid.UUID, query: EventQuery, *, after: int | None) -> Select[TraceEvent]:
    conditions: list[ColumnElement[bool]] = [TraceEvent.tenant_id == tenant_id]
    if query.event_types:
        conditions.append(TraceEvent.event_type.in_(query.event_types))
    for column, operator, moment in query.times:
        attribute = getattr(TraceEvent, column)
        conditions.append(attribute >= moment if operator == ">=" else attribute < moment)
    for attribute, values in (
        (TraceEvent.action, query.actions),
        (TraceEvent.biz_step, query.biz_steps),
        (TraceEvent.disposition, query.dispositions),
        (TraceEvent.read_point, query.read_points),
        (TraceEvent.biz_location, query.biz_locations),
        (TraceEvent.event_id, query.event_ids),
    ):
        if values:
            conditions.append(attribute.in_(values))
    conditions.extend(_match(tenant_id, roles, patterns) for roles, patterns in query.matches)
    conditions.extend(_declaration_conditions(tenant_id, query))
    if after is not None:
        conditions.append(TraceEvent.id > after)
    return select(TraceEvent).where(and_(*conditions)).order_by(TraceEvent.id).limit(query.per_page + 1)


async def run(
    session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, query: EventQuery
) -> tuple[list[TraceEvent], str | None]:
    """One page of events and the token of the next page (None on the last page)."""
    after = read_token(crypto, tenant_id, query)
    rows = list(await session.scalars(statement(tenant_id, query, after=after)))
    if len(rows) <= query.per_page:
        return rows, None
    page = rows[: query.per_page]
    return page, make_token(crypto, tenant_id, query, page[-1].id)


async def get_event(session: AsyncSession, tenant_id: uuid.UUID, event_id: str) -> TraceEvent | None:
    found: TraceEvent | None = await session.scalar(
        select(TraceEvent).where(
            TraceEvent.tenant_id == tenant_id, or_(TraceEvent.event_id == event_id, TraceEvent.hash_id == event_id)
        )
    )
    return found


async def declarations_of(session: AsyncSession, event_pks: Sequence[int]) -> dict[int, dict[str, Any]]:
    """event pk → its error declaration as sent (the latest declared, when several were recorded)."""
    if not event_pks:
        return {}
    rows = await session.execute(
        select(TraceErrorDeclaration.event_pk, TraceErrorDeclaration.body)
        .where(TraceErrorDeclaration.event_pk.in_(list(event_pks)))
        .order_by(TraceErrorDeclaration.declaration_time, TraceErrorDeclaration.id)
    )
    return {int(pk): dict(body) for pk, body in rows}


def render_event(event: TraceEvent, declaration: dict[str, Any] | None = None) -> dict[str, Any]:
    body = dict(event.body)
    if declaration is not None:
        body["errorDeclaration"] = declaration
    body["recordTime"] = event.record_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if event.context:
        body = {"@context": event.context, **body}
    return body
