"""Commissioning and packing: codes become real items, items go into cases and cases onto pallets.

Every step is all-or-nothing: one refused code refuses the whole request and the error lists each
refused code with its reason. Each step records a `CodeEvent` for the trace module. Concurrency:
state changes are conditional updates (`… WHERE state = :expected AND parent_id IS NULL`) whose row
counts are checked, and packing locks the parent row first, so two lines packing into one case can
neither put an item in two cases nor overfill the case.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import queries as catalog_queries
from zhongtai.codes import rules
from zhongtai.codes.errors import CodeNotFound, CodeStepRefused, InvalidCodeStep
from zhongtai.codes.models import (
    CASE,
    COMMISSIONED,
    DECOMMISSIONED,
    GENERATED,
    ITEM,
    LEVEL_NAMES,
    PACKED,
    PALLET,
    STATE_NAMES,
    VOIDED,
    Code,
    CodeBatch,
    CodeEvent,
)
from zhongtai.codes.service import TRACE_TOPIC, batch_of, find_codes
from zhongtai.core import jobs, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.principals import Principal

MAX_CODES_PER_REQUEST = 100_000
LOOKUP_CHUNK = 1000


@dataclass
class Refusals:
    """Why codes were refused, collected before raising so that the caller sees them all."""

    problems: list[dict[str, str]] = field(default_factory=list)

    def add(self, code: str, reason: str, message: str) -> None:
        self.problems.append({"code": code, "reason": reason, "message": message})

    def raise_if_any(self, summary: str) -> None:
        if self.problems:
            first = self.problems[0]
            raise CodeStepRefused(
                f"{summary} {first['code']}: {first['message']}"
                + (f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""),
                refused=self.problems[:50],
                refused_count=len(self.problems),
            )


@dataclass(frozen=True)
class StepContext:
    actor: Principal
    event_time: datetime | None = None
    event_timezone: str = "+08:00"
    read_point: str | None = None
    idempotency_key: str | None = None


async def _replayed(session: AsyncSession, ctx: StepContext) -> CodeEvent | None:
    if not ctx.idempotency_key:
        return None
    return await session.scalar(select(CodeEvent).where(CodeEvent.idempotency_key == ctx.idempotency_key))


async def resolve(session: AsyncSession, texts: Sequence[str], refusals: Refusals) -> list[Code]:
    """Codes named by URIs, short URLs, serials or SSCCs, in the given order without repeats;
    unknown, foreign and unreadable ones go to `refusals`."""
    by_text = await resolve_map(session, texts, refusals)
    seen: set[int] = set()
    ordered = []
    for text in texts:
        code = by_text.get(text)
        if code is not None and code.id not in seen:
            seen.add(code.id)
            ordered.append(code)
    return ordered


async def resolve_map(session: AsyncSession, texts: Sequence[str], refusals: Refusals) -> dict[str, Code]:
    """The code each text names; unknown, foreign and unreadable ones go to `refusals` (once each)."""
    if len(texts) > MAX_CODES_PER_REQUEST:
        raise InvalidCodeStep(f"At most {MAX_CODES_PER_REQUEST:,} codes per request.", field="codes")
    parsed: list[tuple[str, str]] = []
    for text in texts:
        try:
            parsed.append((text, rules.parse_code(text).key))
        except rules.UnreadableCode as exc:
            refusals.add(text, "unreadable", str(exc))
    keys = list(dict.fromkeys(key for _, key in parsed))
    found = await find_codes(session, keys)
    missing = [key for key in keys if key not in found]
    foreign = await _foreign(session, missing)
    reported: set[str] = set()
    by_text: dict[str, Code] = {}
    for text, key in parsed:
        if key in found:
            by_text[text] = found[key]
        elif text in reported:
            continue
        elif key in foreign:
            refusals.add(text, "foreign", "This code belongs to another brand.")
        else:
            refusals.add(text, "unknown", "No such code.")
        reported.add(text)
    return by_text


async def _foreign(session: AsyncSession, keys: list[str]) -> set[str]:
    """Which of these codes exist for another brand (only their existence is revealed, to the holder of
    the printed code)."""
    if not keys:
        return set()
    scope = tenancy.current_scope(session)
    tenancy.scope_all_tenants(session)
    try:
        return set(await find_codes(session, keys[:LOOKUP_CHUNK]))
    finally:
        if isinstance(scope, uuid.UUID):
            tenancy.scope_to_tenant(session, scope)


def range_of(ids: list[int]) -> tuple[int | None, int | None, list[int] | None]:
    """The codes as a contiguous id range (first, last, None) when they are one, else (None, None, the sorted ids)."""
    ordered = sorted(ids)
    if ordered and ordered[-1] - ordered[0] + 1 == len(ordered):
        return ordered[0], ordered[-1], None
    return None, None, ordered


async def _record(
    session: AsyncSession,
    ctx: StepContext,
    *,
    kind: str,
    action: str,
    biz_step: str,
    disposition: str | None,
    code_ids: list[int],
    parent: Code | None = None,
    product_id: uuid.UUID | None = None,
    lot_id: uuid.UUID | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    idempotent: bool = True,
) -> CodeEvent:
    first, last, explicit = range_of(code_ids)
    event = CodeEvent(
        tenant_id=ctx.actor.tenant_id,
        kind=kind,
        action=action,
        biz_step=biz_step,
        disposition=disposition,
        parent_code_id=parent.id if parent else None,
        code_first=first,
        code_last=last,
        code_ids=explicit,
        quantity=len(code_ids),
        product_id=product_id,
        lot_id=lot_id,
        event_time=ctx.event_time or utcnow(),
        event_timezone=ctx.event_timezone,
        read_point=ctx.read_point,
        reason=reason,
        actor_kind=str(ctx.actor.kind),
        actor_label=ctx.actor.label,
        idempotency_key=ctx.idempotency_key if idempotent else None,
        data=data or {},
    )
    session.add(event)
    await session.flush()
    await jobs.enqueue(session, TRACE_TOPIC, {"code_event_id": event.id}, dedupe_key=f"{TRACE_TOPIC}:{event.id}")
    return event


async def _set_state(
    session: AsyncSession, ids: list[int], *, expected: tuple[int, ...], values: dict[str, Any], unpacked_only: bool
) -> int:
    changed = 0
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        statement = update(Code).where(Code.id.in_(chunk), Code.state.in_(expected))
        if unpacked_only:
            statement = statement.where(Code.parent_id.is_(None))
        result = await session.execute(
            statement.values(**values, changed_at=utcnow()).execution_options(synchronize_session=False)
        )
        changed += int(result.rowcount)  # type: ignore[attr-defined]
    return changed


def _state_problem(code: Code, allowed: tuple[int, ...]) -> tuple[str, str] | None:
    """Why a code in its state may not take this step, or None when it may."""
    if code.state in allowed:
        return None
    if code.state == VOIDED:
        return "voided", "This code is voided."
    if code.state == GENERATED:
        return "not_commissioned", "This code is not commissioned yet."
    if code.state == PACKED:
        return "packed", "This code is packed in a case or pallet; unpack it first."
    if code.state == COMMISSIONED:
        return "already_commissioned", "This code is already commissioned."
    return "wrong_state", f"This code is {STATE_NAMES[code.state]}."


# Commissioning.


@dataclass(frozen=True)
class Commissioned:
    event: CodeEvent
    count: int
    replayed: bool = False


async def do_commission(
    session: AsyncSession,
    ctx: StepContext,
    *,
    codes: Sequence[str] = (),
    batch_id: uuid.UUID | None = None,
    from_index: int | None = None,
    to_index: int | None = None,
    lot_id: uuid.UUID | None = None,
) -> Commissioned:
    """Declare printed codes as applied to real items (or cases, pallets): a list, or positions
    from_index..to_index of a batch. An item lot may be given; it must be of the codes' product."""
    replay = await _replayed(session, ctx)
    if replay is not None:
        return Commissioned(replay, replay.quantity, replayed=True)
    refusals = Refusals()
    if batch_id is not None:
        targets = await _batch_range_codes(session, batch_id, from_index, to_index)
    elif codes:
        targets = await resolve(session, codes, refusals)
    else:
        raise InvalidCodeStep("Name the codes: a list, or a batch with positions.", field="codes")
    products = await products_of(session, targets)
    lot = None
    if lot_id is not None:
        lot = await catalog_queries.lot_brief(session, lot_id)
        if lot is None:
            raise InvalidCodeStep("No such lot.", field="lot_id")
        wrong = [c for c in targets if products[c.id] != lot.product_id]
        for code in wrong[:50]:
            refusals.add(code.serial, "wrong_product", "The lot is of another product.")
    for code in targets:
        problem = _state_problem(code, (GENERATED,))
        if problem:
            refusals.add(code.serial, *problem)
    refusals.raise_if_any("Commissioning refused:")
    ids = [c.id for c in targets]
    changed = await _set_state(
        session, ids, expected=(GENERATED,), values={"state": COMMISSIONED, "lot_id": lot_id}, unpacked_only=False
    )
    if changed != len(ids):
        raise CodeStepRefused(
            "Some codes changed while commissioning; retry the request.", refused_count=len(ids) - changed
        )
    await _count_per_batch(session, targets, "commissioned_count", +1)
    product_ids = set(products.values())
    event = await _record(
        session,
        ctx,
        kind="commission",
        action="ADD",
        biz_step="commissioning",
        disposition="active",
        code_ids=ids,
        product_id=next(iter(product_ids)) if len(product_ids) == 1 else None,
        lot_id=lot_id,
        data={"lot_number": lot.lot_number} if lot else None,
    )
    return Commissioned(event, len(ids))


async def _batch_range_codes(
    session: AsyncSession, batch_id: uuid.UUID, from_index: int | None, to_index: int | None
) -> list[Code]:
    batch = await session.scalar(select(CodeBatch).where(CodeBatch.id == batch_id))
    if batch is None:
        raise InvalidCodeStep("No such batch.", field="batch_id")
    first, last = from_index or 1, to_index or batch.quantity
    if not 1 <= first <= last <= batch.generated_count:
        raise InvalidCodeStep(
            f"Positions run from 1 to {batch.generated_count:,} (generated so far), first ≤ last.", field="from_index"
        )
    if last - first + 1 > MAX_CODES_PER_REQUEST:
        raise InvalidCodeStep(f"At most {MAX_CODES_PER_REQUEST:,} codes per request.", field="to_index")
    start = batch.first_code_id + first - 1
    rows = await session.scalars(
        select(Code).where(Code.id >= start, Code.id <= batch.first_code_id + last - 1).order_by(Code.id)
    )
    return list(rows)


async def products_of(session: AsyncSession, targets: list[Code]) -> dict[int, uuid.UUID]:
    """The product of each code, through its batch (batches are few; codes are many)."""
    batches: list[CodeBatch] = []
    result: dict[int, uuid.UUID] = {}
    for code in targets:
        batch = next((b for b in batches if b.first_code_id <= code.id < b.first_code_id + b.quantity), None)
        if batch is None:
            batch = await batch_of(session, code)
            batches.append(batch)
        result[code.id] = batch.product_id
    return result


async def _count_per_batch(session: AsyncSession, targets: list[Code], column: str, sign: int) -> None:
    batches = await session.scalars(select(CodeBatch))
    by_range = sorted(batches, key=lambda b: b.first_code_id)
    counts: dict[uuid.UUID, int] = {}
    for code in targets:
        for batch in by_range:
            if batch.first_code_id <= code.id < batch.first_code_id + batch.quantity:
                counts[batch.id] = counts.get(batch.id, 0) + 1
                break
    for batch_id, n in counts.items():
        await session.execute(
            update(CodeBatch)
            .where(CodeBatch.id == batch_id)
            .values({column: getattr(CodeBatch, column) + sign * n})
            .execution_options(synchronize_session=False)
        )


# Packing.

CHILD_LEVEL = {CASE: ITEM, PALLET: CASE}


@dataclass(frozen=True)
class Packed:
    event: CodeEvent | None
    parent: Code
    added: int
    contents: int
    capacity: int
    replayed: bool = False


async def _lock_parent(session: AsyncSession, text: str) -> Code:
    refusals = Refusals()
    found = await resolve(session, [text], refusals)
    refusals.raise_if_any("Packing refused:")
    parent = found[0]
    if parent.level not in CHILD_LEVEL:
        raise CodeStepRefused("Items hold nothing; pack into a case or a pallet code.", reason="not_a_container")
    await _lock(session, [parent.id])
    return parent


async def _lock(session: AsyncSession, ids: list[int]) -> None:
    """Lock container rows before counting their contents: PostgreSQL row locks, taken in id order so
    that two requests naming the same containers cannot deadlock; SQLite's BEGIN IMMEDIATE already
    serialises writers."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(Code)
            .where(Code.id.in_(ids))
            .order_by(Code.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )


@dataclass(frozen=True)
class BatchInfo:
    """A code batch's id range, its product and the product's packaging."""

    first_code_id: int
    quantity: int
    product_id: uuid.UUID
    items_per_case: int | None
    cases_per_pallet: int | None


async def batches_covering(session: AsyncSession, ids: Sequence[int]) -> list[BatchInfo]:
    """The batches (with their product's packaging) whose id ranges hold these codes: the batches in
    one query, their products' packaging from the catalog in another."""
    low, high = min(ids), max(ids)
    rows = (
        await session.execute(
            select(CodeBatch.first_code_id, CodeBatch.quantity, CodeBatch.product_id)
            .where(CodeBatch.first_code_id <= high, CodeBatch.first_code_id + CodeBatch.quantity > low)
            .order_by(CodeBatch.first_code_id)
        )
    ).all()
    products = await catalog_queries.product_briefs(session, {row.product_id for row in rows})
    return [
        BatchInfo(first, quantity, pid, products[pid].items_per_case, products[pid].cases_per_pallet)
        for first, quantity, pid in rows
        if pid in products
    ]


def batch_for(batches: list[BatchInfo], code_id: int) -> BatchInfo | None:
    """The batch whose id range holds `code_id` (`batches` sorted by first id, from `batches_covering`)."""
    index = bisect.bisect_right([b.first_code_id for b in batches], code_id) - 1
    if index >= 0 and code_id < batches[index].first_code_id + batches[index].quantity:
        return batches[index]
    return None


@dataclass(frozen=True)
class CaseRequest:
    """One container and the codes to pack into it."""

    parent_code: str
    children: Sequence[str]


MAX_CASES_PER_REQUEST = 500


async def do_pack(session: AsyncSession, ctx: StepContext, *, parent_code: str, children: Sequence[str]) -> Packed:
    """Aggregate items into a case, or cases onto a pallet. Children already in this parent are
    accepted again without change, so a retried request is harmless."""
    if not children:
        raise InvalidCodeStep("Name the codes to pack.", field="children")
    return (await do_pack_many(session, ctx, [CaseRequest(parent_code, children)]))[0]


async def do_pack_many(session: AsyncSession, ctx: StepContext, cases: Sequence[CaseRequest]) -> list[Packed]:
    """Pack several containers in one step — a line sending the cases it closed — all or nothing:
    one refused code refuses every case. Set-based: one lookup of every code named, one lock of the
    containers, one query for batches and packaging, one for the current contents, one update, one
    insert of the events (one per container that receives codes) and one of their trace jobs."""
    _check_pack_request(cases)
    replay = await _replayed(session, ctx)
    refusals = Refusals()
    parent_texts = [case.parent_code for case in cases]
    found = await resolve_map(session, [*parent_texts, *(t for case in cases for t in case.children)], refusals)
    refusals.raise_if_any("Packing refused:")
    parents = [found[text] for text in parent_texts]
    if len({p.id for p in parents}) != len(parents):
        raise InvalidCodeStep("A container is named twice; send each one once.", field="cases")
    if any(p.level not in CHILD_LEVEL for p in parents):
        raise CodeStepRefused("Items hold nothing; pack into a case or a pallet code.", reason="not_a_container")
    await _lock(session, sorted(p.id for p in parents))
    contents = await _contents_of(session, [p.id for p in parents])
    if replay is not None:
        return await _replayed_packs(session, ctx, parents, contents)
    everything = [p.id for p in parents] + [found[t].id for case in cases for t in case.children]
    batches = await batches_covering(session, everything)
    named_in: dict[int, int] = {}
    plans: list[tuple[Code, list[Code], int]] = []  # parent, new children, capacity
    overfull: CodeStepRefused | None = None
    for index, (case, parent) in enumerate(zip(cases, parents, strict=True)):
        parent_batch = batch_for(batches, parent.id)
        if parent_batch is None:
            raise CodeNotFound()
        if parent.state not in (COMMISSIONED, PACKED):
            problem = _state_problem(parent, (COMMISSIONED,))
            assert problem is not None
            refusals.add(parent.serial, *problem)
        new = await _new_children(session, index, case, parent, parents, found, batches, named_in, refusals)
        capacity = int((parent_batch.items_per_case if parent.level == CASE else parent_batch.cases_per_pallet) or 0)
        held = contents.get(parent.id, 0)
        if overfull is None and held + len(new) > capacity:
            overfull = CodeStepRefused(
                f"The {LEVEL_NAMES[parent.level]} {parent.serial} holds {capacity}; it has {held} and {len(new)} "
                "more would overfill it.",
                reason="overfull",
                capacity=capacity,
                contents=held,
                adding=len(new),
            )
        plans.append((parent, new, capacity))
    if overfull is not None and not refusals.problems:
        raise overfull
    refusals.raise_if_any("Packing refused:")
    moves = {code.id: parent.id for parent, new, _ in plans for code in new}
    if moves:
        changed = await _move_into(session, moves)
        if changed != len(moves):
            raise CodeStepRefused("Some codes were packed elsewhere meanwhile; retry the request.", reason="raced")
    events = await _record_many(
        session,
        ctx,
        [(parent, [c.id for c in new], batch_for(batches, parent.id)) for parent, new, _ in plans if new],
    )
    return [
        Packed(events.get(parent.id), parent, len(new), contents.get(parent.id, 0) + len(new), capacity)
        for parent, new, capacity in plans
    ]


def _check_pack_request(cases: Sequence[CaseRequest]) -> None:
    """At least one container and not too many, each naming the codes to pack into it."""
    if not cases:
        raise InvalidCodeStep("Name the containers to pack.", field="cases")
    if len(cases) > MAX_CASES_PER_REQUEST:
        raise InvalidCodeStep(f"At most {MAX_CASES_PER_REQUEST} containers per request.", field="cases")
    if sum(len(case.children) for case in cases) > MAX_CODES_PER_REQUEST:
        raise InvalidCodeStep(f"At most {MAX_CODES_PER_REQUEST:,} codes per request.", field="cases")
    for index, case in enumerate(cases):
        if not case.children:
            raise InvalidCodeStep(f"Name the codes to pack into {case.parent_code}.", field=f"cases.{index}.children")


async def _new_children(
    session: AsyncSession,
    index: int,
    case: CaseRequest,
    parent: Code,
    parents: list[Code],
    found: dict[str, Code],
    batches: list[BatchInfo],
    named_in: dict[int, int],
    refusals: Refusals,
) -> list[Code]:
    """The codes named for one container that are to move into it (each once); one already in it is
    skipped, one that may not go in goes to `refusals`."""
    parent_batch = batch_for(batches, parent.id)
    assert parent_batch is not None
    parent_product_id = parent_batch.product_id
    new: list[Code] = []
    for text in case.children:
        code = found[text]
        batch = batch_for(batches, code.id)
        if named_in.setdefault(code.id, index) != index:
            refusals.add(code.serial, "listed_twice", "This code is named for two containers.")
        elif code.id == parent.id or code.id in {p.id for p in parents}:
            refusals.add(code.serial, "self", "A code cannot be packed into itself.")
        elif code.level != CHILD_LEVEL[parent.level]:
            refusals.add(
                code.serial,
                "wrong_level",
                f"A {LEVEL_NAMES[parent.level]} holds {LEVEL_NAMES[CHILD_LEVEL[parent.level]]}s, "
                f"not {LEVEL_NAMES[code.level]}s.",
            )
        elif batch is None or batch.product_id != parent_product_id:
            refusals.add(code.serial, "wrong_product", "This code is of another product than the container.")
        elif code.parent_id == parent.id:
            continue
        elif code.parent_id is not None:
            holder = await session.scalar(select(Code.serial).where(Code.id == code.parent_id))
            refusals.add(code.serial, "packed_elsewhere", f"This code is already packed in {holder}.")
        elif (problem := _state_problem(code, (COMMISSIONED,))) is not None:
            refusals.add(code.serial, *problem)
        elif code not in new:
            new.append(code)
    return new


async def _move_into(session: AsyncSession, moves: dict[int, int]) -> int:
    """Pack codes (id → container id) that are commissioned and in no container; returns how many."""
    ids = list(moves)
    changed = 0
    now = utcnow()
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        targets = {moves[i] for i in chunk}
        parent_value: Any = (
            next(iter(targets)) if len(targets) == 1 else sql_case({i: moves[i] for i in chunk}, value=Code.id)
        )
        result = await session.execute(
            update(Code)
            .where(Code.id.in_(chunk), Code.state == COMMISSIONED, Code.parent_id.is_(None))
            .values(state=PACKED, parent_id=parent_value, changed_at=now)
            .execution_options(synchronize_session=False)
        )
        changed += int(result.rowcount)  # type: ignore[attr-defined]
    return changed


async def _record_many(
    session: AsyncSession, ctx: StepContext, packs: list[tuple[Code, list[int], BatchInfo | None]]
) -> dict[int, CodeEvent]:
    """The pack events of one request (the first carries the request's idempotency key, the others
    the key with `#n`), inserted together, and their trace jobs with one insert."""
    events: dict[int, CodeEvent] = {}
    when = ctx.event_time or utcnow()
    for number, (parent, ids, batch) in enumerate(packs):
        first, last, explicit = range_of(ids)
        key = ctx.idempotency_key if number == 0 or not ctx.idempotency_key else f"{ctx.idempotency_key}#{number}"
        events[parent.id] = CodeEvent(
            tenant_id=ctx.actor.tenant_id,
            kind="pack",
            action="ADD",
            biz_step="packing",
            disposition="in_progress",
            parent_code_id=parent.id,
            code_first=first,
            code_last=last,
            code_ids=explicit,
            quantity=len(ids),
            product_id=batch.product_id if batch else None,
            event_time=when,
            event_timezone=ctx.event_timezone,
            read_point=ctx.read_point,
            actor_kind=str(ctx.actor.kind),
            actor_label=ctx.actor.label,
            idempotency_key=key,
            data={},
        )
    if not events:
        return events
    session.add_all(events.values())
    await session.flush()
    await jobs.enqueue_many(
        session,
        TRACE_TOPIC,
        [({"code_event_id": e.id}, f"{TRACE_TOPIC}:{e.id}") for e in events.values()],
    )
    return events


async def _replayed_packs(
    session: AsyncSession, ctx: StepContext, parents: list[Code], contents: dict[int, int]
) -> list[Packed]:
    assert ctx.idempotency_key is not None
    key = ctx.idempotency_key
    keys = [key, *(f"{key}#{n}" for n in range(1, len(parents)))]
    events = {
        e.parent_code_id: e for e in await session.scalars(select(CodeEvent).where(CodeEvent.idempotency_key.in_(keys)))
    }
    return [
        Packed(
            events.get(p.id),
            p,
            events[p.id].quantity if p.id in events else 0,
            contents.get(p.id, 0),
            contents.get(p.id, 0),
            replayed=True,
        )
        for p in parents
    ]


async def _contents_of(session: AsyncSession, parent_ids: list[int]) -> dict[int, int]:
    rows = await session.execute(
        select(Code.parent_id, func.count()).where(Code.parent_id.in_(parent_ids)).group_by(Code.parent_id)
    )
    return {int(parent_id or 0): int(count) for parent_id, count in rows}


async def _contents(session: AsyncSession, parent_id: int) -> int:
    return int(await session.scalar(select(func.count()).select_from(Code).where(Code.parent_id == parent_id)) or 0)


async def do_unpack(
    session: AsyncSession, ctx: StepContext, *, parent_code: str, children: Sequence[str] = ()
) -> Packed:
    """Take some (or all) codes out of a case or pallet."""
    replay = await _replayed(session, ctx)
    parent = await _lock_parent(session, parent_code)
    if replay is not None:
        return Packed(replay, parent, replay.quantity, await _contents(session, parent.id), 0, replayed=True)
    refusals = Refusals()
    if children:
        targets = await resolve(session, children, refusals)
        for code in targets:
            if code.parent_id != parent.id:
                refusals.add(code.serial, "not_inside", f"This code is not packed in {parent.serial}.")
    else:
        targets = list(await session.scalars(select(Code).where(Code.parent_id == parent.id)))
    refusals.raise_if_any("Unpacking refused:")
    if not targets:
        raise CodeStepRefused(f"{parent.serial} is empty.", reason="empty")
    ids = [c.id for c in targets]
    for start in range(0, len(ids), LOOKUP_CHUNK):
        await session.execute(
            update(Code)
            .where(Code.id.in_(ids[start : start + LOOKUP_CHUNK]), Code.parent_id == parent.id)
            .values(state=COMMISSIONED, parent_id=None, changed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    event = await _record(
        session,
        ctx,
        kind="unpack",
        action="DELETE",
        biz_step="unpacking",
        disposition="in_progress",
        code_ids=ids,
        parent=parent,
    )
    return Packed(event, parent, len(ids), await _contents(session, parent.id), 0)


async def do_repack(session: AsyncSession, ctx: StepContext, *, parent_code: str, children: Sequence[str]) -> Packed:
    """Move codes from whatever case or pallet holds them into another one (two events: out, in)."""
    replay = await _replayed(session, ctx)
    if replay is not None:
        parent = await _lock_parent(session, parent_code)
        return Packed(replay, parent, replay.quantity, await _contents(session, parent.id), 0, replayed=True)
    refusals = Refusals()
    targets = await resolve(session, children, refusals)
    refusals.raise_if_any("Repacking refused:")
    holders: dict[int, list[Code]] = {}
    for code in targets:
        if code.parent_id is not None:
            holders.setdefault(code.parent_id, []).append(code)
    destination = await _lock_parent(session, parent_code)
    for holder_id, codes in holders.items():
        if holder_id == destination.id:
            continue
        holder_serial = await session.scalar(select(Code.serial).where(Code.id == holder_id))
        await do_unpack(
            session,
            StepContext(ctx.actor, ctx.event_time, ctx.event_timezone, ctx.read_point),
            parent_code=str(holder_serial),
            children=[c.serial for c in codes],
        )
    for code in targets:
        await session.refresh(code)
    return await do_pack(session, ctx, parent_code=parent_code, children=[c.serial for c in targets])


async def do_decommission(
    session: AsyncSession, ctx: StepContext, *, codes: Sequence[str], reason: str
) -> Commissioned:
    """Take commissioned codes out of use (damaged, destroyed, sample). Packed codes and non-empty
    containers are refused: unpack them first."""
    replay = await _replayed(session, ctx)
    if replay is not None:
        return Commissioned(replay, replay.quantity, replayed=True)
    if not reason.strip():
        raise InvalidCodeStep("Say why the codes are decommissioned.", field="reason")
    refusals = Refusals()
    targets = await resolve(session, codes, refusals)
    for code in targets:
        problem = _state_problem(code, (COMMISSIONED,))
        if problem:
            refusals.add(code.serial, *problem)
        elif code.level != ITEM and await _contents(session, code.id):
            refusals.add(code.serial, "not_empty", "This container still holds codes; unpack it first.")
    refusals.raise_if_any("Decommissioning refused:")
    ids = [c.id for c in targets]
    changed = await _set_state(
        session, ids, expected=(COMMISSIONED,), values={"state": DECOMMISSIONED}, unpacked_only=True
    )
    if changed != len(ids):
        raise CodeStepRefused("Some codes changed meanwhile; retry the request.", reason="raced")
    await _count_per_batch(session, targets, "commissioned_count", -1)
    event = await _record(
        session,
        ctx,
        kind="decommission",
        action="DELETE",
        biz_step="decommissioning",
        disposition="inactive",
        code_ids=ids,
        reason=reason.strip()[:200],
    )
    return Commissioned(event, len(ids))


async def packing_tree(session: AsyncSession, code: Code, *, limit: int = 200) -> dict[str, Any]:
    """The code with its containers above and its contents below (two levels, capped)."""
    ancestors = []
    current = code
    while current.parent_id is not None:
        holder = await session.scalar(select(Code).where(Code.id == current.parent_id))
        if holder is None:
            break
        ancestors.append({"serial": holder.serial, "level": LEVEL_NAMES[holder.level]})
        current = holder

    async def children_of(node: Code, depth: int) -> list[dict[str, Any]]:
        rows = list(await session.scalars(select(Code).where(Code.parent_id == node.id).order_by(Code.id).limit(limit)))
        return [
            {
                "serial": child.serial,
                "level": LEVEL_NAMES[child.level],
                "state": STATE_NAMES[child.state],
                "children": await children_of(child, depth - 1) if depth > 1 and child.level != ITEM else [],
            }
            for child in rows
        ]

    return {"serial": code.serial, "ancestors": ancestors, "children": await children_of(code, 2)}


async def list_events(
    session: AsyncSession, *, kind: str | None, limit: int, offset: int
) -> tuple[list[CodeEvent], int]:
    query = select(CodeEvent)
    count = select(func.count()).select_from(CodeEvent)
    if kind:
        query, count = query.where(CodeEvent.kind == kind), count.where(CodeEvent.kind == kind)
    total = await session.scalar(count)
    rows = await session.scalars(query.order_by(CodeEvent.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)
