"""The trace of one code: its own events and, while it was packed, those of its case and pallet.

An item packed into a case travels with it: a shipping event that names only the pallet is part of
the bottle's history. `trace_of` therefore follows the packing AggregationEvents that name the code
as a child — from the ADD to the DELETE that takes it out again (or that empties the container) —
and adds the container's own events within that interval, recursively up to the outermost
container, each marked with the container it came `via`. Every entry carries its leaf index in the
brand's Merkle log.

Cost: one indexed query per packing level (`trace_event_epcs (tenant_id, epc)` → events by primary
key) and one for the leaf indexes, whatever the number of stored events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.trace import merkle, models
from zhongtai.trace.epc import normalize_epc
from zhongtai.trace.log_models import TraceLogNode
from zhongtai.trace.models import TraceEvent, TraceEventEpc

MAX_DEPTH = 4  # item → case → pallet → … ; deeper nesting is not followed
MAX_EVENTS_PER_CODE = 5_000  # a guard against runaway identifiers (a reusable asset with years of events)
AGGREGATION = "AggregationEvent"


@dataclass(frozen=True)
class Interval:
    """`child` was inside `container` from `start` to `end` (None: still inside)."""

    container: str
    child: str
    start: datetime
    end: datetime | None
    depth: int  # 1: the code's own container, 2: the container's container …

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """The columns of a `trace_events` row a trace needs (read as plain rows: no ORM objects)."""

    id: int
    event_id: str
    hash_id: str
    event_type: str
    action: str | None
    event_time: datetime
    event_timezone_offset: str
    biz_step: str | None
    body: dict[str, Any]


EVENT_COLUMNS = (
    TraceEvent.id,
    TraceEvent.event_id,
    TraceEvent.hash_id,
    TraceEvent.event_type,
    TraceEvent.action,
    TraceEvent.event_time,
    TraceEvent.event_timezone_offset,
    TraceEvent.biz_step,
    TraceEvent.body,
)


@dataclass(frozen=True)
class TraceEntry:
    event: StoredEvent
    leaf_index: int | None
    via: str | None  # the container whose event this is, None for the code's own events

    @property
    def body(self) -> dict[str, Any]:
        return self.event.body

    @property
    def hash_id(self) -> str:
        return self.event.hash_id


@dataclass
class Trace:
    epc: str
    entries: list[TraceEntry] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)


async def _events_naming(
    session: AsyncSession, tenant_id: uuid.UUID, epcs: Sequence[str]
) -> dict[str, list[tuple[int, StoredEvent]]]:
    """epc → [(role, event)] of every event that names one of `epcs` as an instance identifier."""
    rows = await session.execute(
        select(TraceEventEpc.epc, TraceEventEpc.role, *EVENT_COLUMNS)
        .join(TraceEvent, TraceEvent.id == TraceEventEpc.event_pk)
        .where(
            TraceEventEpc.tenant_id == tenant_id,
            TraceEventEpc.epc.in_(list(epcs)),
            TraceEventEpc.role.in_(models.INSTANCE_ROLES),
        )
        .limit(MAX_EVENTS_PER_CODE * len(epcs))
    )
    found: dict[str, list[tuple[int, StoredEvent]]] = {epc: [] for epc in epcs}
    for epc, role, *columns in rows:
        found[str(epc)].append((int(role), StoredEvent(*columns)))
    return found


def _order(event: StoredEvent) -> tuple[datetime, int]:
    return (event.event_time, event.id)


def containers_of(epc: str, named: Sequence[tuple[int, StoredEvent]], depth: int) -> list[Interval]:
    """The intervals during which `epc` was inside a container, from the AggregationEvents naming it.

    An ADD with `epc` among the children opens an interval; a DELETE naming it as a child, or a
    DELETE of the container without children (it emptied the container), closes it.
    """
    open_since: dict[str, datetime] = {}
    intervals: list[Interval] = []
    for role, event in sorted(named, key=lambda item: _order(item[1])):
        if event.event_type != AGGREGATION or role != models.CHILD:
            continue
        parent = event.body.get("parentID")
        if not parent:
            continue
        container = normalize_epc(str(parent))
        if event.action == "ADD":
            # Packed again without an unpacking in between: the new container replaces the old.
            for other, since in list(open_since.items()):
                if other != container:
                    intervals.append(Interval(other, epc, since, event.event_time, depth))
                    del open_since[other]
            open_since.setdefault(container, event.event_time)
        elif event.action == "DELETE" and container in open_since:
            intervals.append(Interval(container, epc, open_since.pop(container), event.event_time, depth))
    intervals.extend(Interval(c, epc, since, None, depth) for c, since in open_since.items())
    return intervals


def _emptied_at(container: str, named: Sequence[tuple[int, StoredEvent]]) -> list[datetime]:
    """Times of DELETE AggregationEvents of `container` that list no children (all taken out)."""
    return sorted(
        event.event_time
        for role, event in named
        if role == models.PARENT
        and event.event_type == AGGREGATION
        and event.action == "DELETE"
        and not event.body.get("childEPCs")
    )


def _clip(interval: Interval, emptied: Sequence[datetime], outer: Interval | None) -> Interval | None:
    """`interval` ended by an emptying of its container, and bounded by the interval it inherits through."""
    start, end = interval.start, interval.end
    for moment in emptied:
        if moment > start and (end is None or moment < end):
            end = moment
            break
    if outer is not None:
        start = max(start, outer.start)
        if outer.end is not None:
            end = outer.end if end is None else min(end, outer.end)
    if end is not None and end <= start:
        return None
    return Interval(interval.container, interval.child, start, end, interval.depth)


def _inherited(role: int, event: StoredEvent) -> bool:
    """Is this event of a container about the container itself? Packing *other* codes into it is not."""
    return not (role == models.PARENT and event.event_type == AGGREGATION)


async def leaf_indexes(session: AsyncSession, tenant_id: uuid.UUID, hash_ids: Sequence[str]) -> dict[str, int]:
    """hash ID → its (first) leaf index in the tenant's log, in one indexed query."""
    if not hash_ids:
        return {}
    by_leaf = {merkle.leaf_hash(h.encode()): h for h in hash_ids}
    rows = await session.execute(
        select(TraceLogNode.hash, TraceLogNode.node_index).where(
            TraceLogNode.tenant_id == tenant_id,
            # A literal, not a parameter: a generic plan can then use the partial index (level = 0).
            TraceLogNode.level == literal_column("0"),
            TraceLogNode.hash.in_(list(by_leaf)),
        )
    )
    found: dict[str, int] = {}
    for leaf, index in rows:
        hash_id = by_leaf[bytes(leaf)]
        found[hash_id] = min(int(index), found.get(hash_id, int(index)))
    return found


async def trace_of(session: AsyncSession, tenant_id: uuid.UUID, epc: str) -> Trace:
    """The events of one code in time order, with those of its containers while it was inside them."""
    epc = normalize_epc(epc)
    trace = Trace(epc)
    named = await _events_naming(session, tenant_id, [epc])
    chosen: dict[int, tuple[StoredEvent, str | None]] = {event.id: (event, None) for _, event in named[epc]}
    frontier: list[tuple[Interval, Interval | None]] = [(i, None) for i in containers_of(epc, named[epc], 1)]
    depth = 1
    while frontier and depth <= MAX_DEPTH:
        containers = sorted({interval.container for interval, _outer in frontier})
        of_containers = await _events_naming(session, tenant_id, containers)
        next_frontier: list[tuple[Interval, Interval | None]] = []
        for raw, outer in frontier:
            interval = _clip(raw, _emptied_at(raw.container, of_containers[raw.container]), outer)
            if interval is None:
                continue
            trace.intervals.append(interval)
            for role, event in of_containers[interval.container]:
                if event.id not in chosen and _inherited(role, event) and interval.holds(event.event_time):
                    chosen[event.id] = (event, interval.container)
            above = containers_of(interval.container, of_containers[interval.container], depth + 1)
            next_frontier.extend((outer_interval, interval) for outer_interval in above)
        frontier = next_frontier
        depth += 1
    ordered = sorted(chosen.values(), key=lambda item: _order(item[0]))
    indexes = await leaf_indexes(session, tenant_id, [event.hash_id for event, _via in ordered])
    trace.entries = [TraceEntry(event, indexes.get(event.hash_id), via) for event, via in ordered]
    trace.intervals.sort(key=lambda i: (i.depth, i.start))
    return trace
