"""A code's trace as people read it: product, lot, and custody steps (what, where, when, who), each
with its leaf in the brand's log and an inclusion proof against the latest signed checkpoint, and —
when the event was declared in error — the declaration (reason, time, corrective events).

`code_trace` serves the trace API, the consumer page's data and the console page; `verify` checks
the proofs server-side (the console's "verified" marks) exactly as `zhongtai verify` would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes import queries as codes_queries
from zhongtai.codes import service as codes_service
from zhongtai.codes.states import LEVEL_NAMES, STATE_NAMES
from zhongtai.trace import checkpoint as checkpoints
from zhongtai.trace import log, merkle
from zhongtai.trace.epc import normalize_epc
from zhongtai.trace.log_models import TraceCheckpoint
from zhongtai.trace.models import TraceErrorDeclaration
from zhongtai.trace.view import Interval, TraceEntry, trace_of

CBV_PREFIX = "https://ref.gs1.org/cbv/"
# CBV 2.0 business steps in words (English source strings; zh-CN in the catalog).
BIZ_STEP_WORDS = {
    "commissioning": "Commissioned",
    "packing": "Packed",
    "unpacking": "Unpacked",
    "shipping": "Shipped",
    "receiving": "Received",
    "arriving": "Arrived",
    "departing": "Departed",
    "loading": "Loaded",
    "unloading": "Unloaded",
    "storing": "Stored",
    "picking": "Picked",
    "inspecting": "Inspected",
    "accepting": "Accepted",
    "retail_selling": "Sold",
    "decommissioning": "Decommissioned",
    "destroying": "Destroyed",
    "void_shipping": "Shipment cancelled",
}
ACTION_WORDS = {"ADD": "Added", "OBSERVE": "Observed", "DELETE": "Removed"}
# CBV 2.0 error reasons (ER-…) in words.
ERROR_REASON_WORDS = {"did_not_occur": "The event did not occur", "incorrect_data": "The event's data were incorrect"}


@dataclass(frozen=True)
class Proof:
    leaf_index: int
    tree_size: int
    path: list[bytes]


@dataclass(frozen=True)
class Declared:
    """The step was declared in error (EPCIS 2.0 §7.4.1.2): the latest recorded declaration."""

    time: str  # declarationTime, ISO 8601 in the event's own offset
    reason: str | None  # bare CBV word (ER-…)
    label: str  # English source string
    corrective_event_ids: list[str]


@dataclass
class Step:
    entry: TraceEntry
    time: str  # ISO 8601 in the event's own offset
    biz_step: str | None  # bare CBV word
    action: str | None
    what: str  # English source string
    read_point: str | None
    read_point_name: str | None
    biz_location: str | None
    who: str | None
    proof: Proof | None
    verified: bool | None = None  # set by `verify`: None when not checked (pending)
    declared: Declared | None = None  # set when the event was declared in error

    @property
    def is_pending(self) -> bool:
        return self.proof is None


@dataclass
class CodeTrace:
    view: codes_service.CodeView
    epc: str
    steps: list[Step]
    intervals: list[Interval]
    checkpoint: TraceCheckpoint | None
    origin: str | None
    container_uri: str | None
    checkpoint_verified: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def level(self) -> str:
        return LEVEL_NAMES[self.view.code.level]

    @property
    def state(self) -> str:
        return STATE_NAMES[self.view.code.state]


def bare_term(value: str | None, vocabulary: str) -> str | None:
    if value is None:
        return None
    prefix = f"{CBV_PREFIX}{vocabulary}-"
    return value[len(prefix) :] if value.startswith(prefix) else value


def words_for(biz_step: str | None, action: str | None) -> str:
    if biz_step and biz_step in BIZ_STEP_WORDS:
        return BIZ_STEP_WORDS[biz_step]
    if biz_step:
        return biz_step.replace("_", " ").capitalize()
    return ACTION_WORDS.get(action or "", "Event")


def reason_words(reason: str | None) -> str:
    if reason and reason in ERROR_REASON_WORDS:
        return ERROR_REASON_WORDS[reason]
    if reason:
        return reason.replace("_", " ").capitalize()
    return "No reason given"


def local_time(moment: datetime, offset: str) -> str:
    try:
        sign = -1 if offset.startswith("-") else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    except (ValueError, IndexError):
        zone = UTC
    return moment.astimezone(zone).isoformat(timespec="milliseconds")


async def _actors(session: AsyncSession, entries: list[TraceEntry]) -> dict[int, str]:
    """Event pk → who recorded it: the event's `zt:actor`, else the actor of its custody step."""
    found: dict[int, str] = {}
    steps: dict[int, int] = {}
    for entry in entries:
        actor = entry.body.get("zt:actor")
        if isinstance(actor, str) and actor:
            found[entry.event.id] = actor
        elif str(entry.body.get("zt:codeEvent", "")).isdigit():
            steps[int(entry.body["zt:codeEvent"])] = entry.event.id
    if steps:
        for step_id, label in (await codes_queries.step_actors(session, steps)).items():
            found[steps[step_id]] = label
    return found


async def _declarations(session: AsyncSession, tenant_id: uuid.UUID, entries: list[TraceEntry]) -> dict[int, Declared]:
    """Event pk → its error declaration (the latest declared, when several were recorded), one query."""
    offsets = {entry.event.id: entry.event.event_timezone_offset for entry in entries}
    if not offsets:
        return {}
    rows = await session.execute(
        select(
            TraceErrorDeclaration.event_pk,
            TraceErrorDeclaration.declaration_time,
            TraceErrorDeclaration.reason,
            TraceErrorDeclaration.body,
        )
        .where(TraceErrorDeclaration.tenant_id == tenant_id, TraceErrorDeclaration.event_pk.in_(list(offsets)))
        .order_by(TraceErrorDeclaration.declaration_time, TraceErrorDeclaration.id)
    )
    found: dict[int, Declared] = {}
    for event_pk, moment, reason, body in rows:
        corrective = body.get("correctiveEventIDs") if isinstance(body, dict) else None
        bare = bare_term(reason, "ER")
        found[int(event_pk)] = Declared(
            time=local_time(moment, offsets[int(event_pk)]),
            reason=bare,
            label=reason_words(bare),
            corrective_event_ids=[str(i) for i in corrective] if isinstance(corrective, list) else [],
        )
    return found


def _place(body: dict[str, Any], name: str) -> str | None:
    place = body.get(name)
    return str(place["id"]) if isinstance(place, dict) and place.get("id") else None


@dataclass
class EpcSteps:
    """The steps of one identifier with their proofs against the latest signed checkpoint."""

    steps: list[Step]
    intervals: list[Interval]
    checkpoint: TraceCheckpoint | None


async def epc_steps(session: AsyncSession, tenant_id: uuid.UUID, epc: str, *, with_actors: bool) -> EpcSteps:
    """The trace of a canonical EPC (`view.trace_of`) as steps, every proof fetched in one query."""
    trace = await trace_of(session, tenant_id, epc)
    signed = await checkpoints.latest_checkpoint(session, tenant_id)
    actors = await _actors(session, trace.entries) if with_actors else {}
    declared = await _declarations(session, tenant_id, trace.entries)
    paths: dict[int, list[bytes]] = {}
    if signed is not None:
        covered = [e.leaf_index for e in trace.entries if e.leaf_index is not None and e.leaf_index < signed.tree_size]
        paths = await log.inclusion_proofs(session, tenant_id, covered, signed.tree_size) if covered else {}
    steps: list[Step] = []
    for entry in trace.entries:
        event = entry.event
        proof = None
        if signed is not None and entry.leaf_index is not None and entry.leaf_index in paths:
            proof = Proof(entry.leaf_index, signed.tree_size, paths[entry.leaf_index])
        biz_step = bare_term(event.biz_step, "BizStep")
        steps.append(
            Step(
                entry=entry,
                time=local_time(event.event_time, event.event_timezone_offset),
                biz_step=biz_step,
                action=event.action,
                what=words_for(biz_step, event.action),
                read_point=_place(event.body, "readPoint"),
                read_point_name=event.body.get("zt:readPointName") or None,
                biz_location=_place(event.body, "bizLocation"),
                who=actors.get(event.id),
                proof=proof,
                declared=declared.get(event.id),
            )
        )
    return EpcSteps(steps=steps, intervals=trace.intervals, checkpoint=signed)


async def code_trace(session: AsyncSession, tenant_id: uuid.UUID, code: str, *, with_actors: bool) -> CodeTrace:
    """The trace of a code given as a Digital Link URI, short URL, serial or SSCC (CodeNotFound else)."""
    view = await codes_service.lookup(session, code)
    epc = normalize_epc(view.uri)
    found = await epc_steps(session, tenant_id, epc, with_actors=with_actors)
    signed = found.checkpoint
    container_uri = None
    if view.parent_serial:
        container = await codes_service.lookup(session, view.parent_serial)
        container_uri = container.uri
    return CodeTrace(
        view=view,
        epc=epc,
        steps=found.steps,
        intervals=found.intervals,
        checkpoint=signed,
        origin=checkpoints.parse_checkpoint(signed.note).origin if signed else None,
        container_uri=container_uri,
    )


async def verify(session: AsyncSession, tenant_id: uuid.UUID, result: CodeTrace) -> None:
    """Check the checkpoint's signature with the brand's key and every step's inclusion proof."""
    if result.checkpoint is None:
        return
    keys = {key.version: key for key in await checkpoints.public_keys(session, tenant_id)}
    key = keys.get(result.checkpoint.key_version)
    try:
        if key is None:
            raise checkpoints.CheckpointInvalid("the checkpoint's key is unknown")
        signed = checkpoints.verify_checkpoint(result.checkpoint.note, key.public_key, key.key_name)
    except checkpoints.CheckpointInvalid as exc:
        result.checkpoint_verified = False
        result.problems.append(str(exc))
        for step in result.steps:
            step.verified = False if step.proof else None
        return
    result.checkpoint_verified = True
    for step in result.steps:
        if step.proof is None:
            continue
        step.verified = step.proof.tree_size == signed.tree_size and merkle.verify_inclusion(
            merkle.leaf_hash(step.entry.hash_id.encode()),
            step.proof.leaf_index,
            step.proof.tree_size,
            step.proof.path,
            signed.root_hash,
        )
