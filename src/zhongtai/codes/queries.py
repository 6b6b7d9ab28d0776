"""What other domains may read of codes: batches, codes and custody steps as plain frozen values.

Codes answer for their tables (`code_batches`, `codes`, `code_events`…); other domains ask here rather
than query them. Levels and states are in `codes.states`. Every function reads within the session's
tenancy scope and returns values, not ORM rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from zhongtai.codes.models import Code, CodeBatch, CodeEvent

CHUNK = 1000
# The table of codes, for listeners that notice a statement changing codes (`changes_codes`).
CODES_TABLE = Code.__tablename__


@dataclass(frozen=True)
class BatchFacts:
    """A batch as other domains see it: its id range (first_code_id … +quantity-1), product, level,
    scheme ("serial" or "sscc"), resolver base and PIN key version."""

    id: uuid.UUID
    number: str
    product_id: uuid.UUID
    level: int
    quantity: int
    scheme: str
    first_code_id: int
    resolver_base: str
    pin_key_version: int | None
    status: str

    def holds(self, code_id: int) -> bool:
        return self.first_code_id <= code_id < self.first_code_id + self.quantity


@dataclass(frozen=True)
class CodeFacts:
    """One code's row: serial (or SSCC), level, state, the container it is in, its lot."""

    id: int
    tenant_id: uuid.UUID
    serial: str
    level: int
    state: int
    parent_id: int | None
    lot_id: uuid.UUID | None
    changed_at: datetime | None


@dataclass(frozen=True)
class CodeStep:
    """A custody step of codes as recorded (see `codes.models.CodeEvent`): what, which codes, when,
    where, by whom, with which lot data."""

    id: int
    kind: str
    action: str
    biz_step: str
    disposition: str | None
    parent_code_id: int | None
    code_first: int | None
    code_last: int | None
    code_ids: tuple[int, ...] | None
    quantity: int
    product_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    event_time: datetime
    event_timezone: str
    read_point: str | None
    reason: str | None
    actor_kind: str
    actor_label: str
    data: dict[str, Any]

    @property
    def code_id_list(self) -> list[int]:
        """The step's codes: its contiguous range, else its explicit list."""
        if self.code_first is not None and self.code_last is not None:
            return list(range(self.code_first, self.code_last + 1))
        return list(self.code_ids or ())


def _batch(batch: CodeBatch) -> BatchFacts:
    return BatchFacts(
        id=batch.id,
        number=batch.number,
        product_id=batch.product_id,
        level=batch.level,
        quantity=batch.quantity,
        scheme=batch.scheme,
        first_code_id=batch.first_code_id,
        resolver_base=batch.resolver_base,
        pin_key_version=batch.pin_key_version,
        status=batch.status,
    )


def _code(code: Code) -> CodeFacts:
    return CodeFacts(
        code.id, code.tenant_id, code.serial, code.level, code.state, code.parent_id, code.lot_id, code.changed_at
    )


def _step(event: CodeEvent) -> CodeStep:
    return CodeStep(
        id=event.id,
        kind=event.kind,
        action=event.action,
        biz_step=event.biz_step,
        disposition=event.disposition,
        parent_code_id=event.parent_code_id,
        code_first=event.code_first,
        code_last=event.code_last,
        code_ids=tuple(event.code_ids) if event.code_ids is not None else None,
        quantity=event.quantity,
        product_id=event.product_id,
        lot_id=event.lot_id,
        event_time=event.event_time,
        event_timezone=event.event_timezone,
        read_point=event.read_point,
        reason=event.reason,
        actor_kind=event.actor_kind,
        actor_label=event.actor_label,
        data=dict(event.data or {}),
    )


# Batches.


async def batches_of(session: AsyncSession, tenant_id: uuid.UUID | None = None) -> list[BatchFacts]:
    """All batches in the session's scope (of one brand when `tenant_id` is given), by first code id."""
    query = select(CodeBatch)
    if tenant_id is not None:
        query = query.where(CodeBatch.tenant_id == tenant_id)
    return [_batch(b) for b in await session.scalars(query.order_by(CodeBatch.first_code_id))]


async def batch_holding(session: AsyncSession, code_id: int) -> BatchFacts | None:
    """The batch whose id range holds this code, or None."""
    batch = await session.scalar(
        select(CodeBatch).where(CodeBatch.first_code_id <= code_id).order_by(CodeBatch.first_code_id.desc()).limit(1)
    )
    return _batch(batch) if batch is not None and code_id < batch.first_code_id + batch.quantity else None


# Codes.


async def code_serials(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """Code id → serial (or SSCC), for the ids that name a code."""
    wanted = list(dict.fromkeys(ids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(select(Code.id, Code.serial).where(Code.id.in_(wanted[start : start + CHUNK])))
        found.update((key, value) for key, value in rows.all())
    return found


async def codes_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, CodeFacts]:
    """The codes with these ids, read fresh from the database."""
    wanted = list(dict.fromkeys(ids))
    found: dict[int, CodeFacts] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.scalars(
            select(Code).where(Code.id.in_(wanted[start : start + CHUNK])).execution_options(populate_existing=True)
        )
        found.update({code.id: _code(code) for code in rows})
    return found


async def children_of(session: AsyncSession, parent_ids: Sequence[int]) -> list[CodeFacts]:
    """The codes packed directly in these containers, by id."""
    found: list[CodeFacts] = []
    for start in range(0, len(parent_ids), CHUNK):
        rows = await session.scalars(
            select(Code).where(Code.parent_id.in_(parent_ids[start : start + CHUNK])).order_by(Code.id)
        )
        found.extend(_code(code) for code in rows)
    return found


def changes_codes(session: Session) -> bool:
    """Whether the session holds changed or deleted code rows not yet flushed."""
    return any(isinstance(obj, Code) for obj in (*session.dirty, *session.deleted))


# Custody steps.


async def code_step(session: AsyncSession, step_id: int) -> CodeStep | None:
    event = await session.scalar(select(CodeEvent).where(CodeEvent.id == step_id))
    return _step(event) if event is not None else None


async def step_actors(session: AsyncSession, step_ids: Iterable[int]) -> dict[int, str]:
    """Custody step id → who recorded it."""
    wanted = list(dict.fromkeys(step_ids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(CodeEvent.id, CodeEvent.actor_label).where(CodeEvent.id.in_(wanted[start : start + CHUNK]))
        )
        found.update({int(step_id): str(label) for step_id, label in rows.all()})
    return found


async def unpack_data(session: AsyncSession, container_id: int) -> list[dict[str, Any]]:
    """The data of the unpacking steps (DELETE) that emptied this container."""
    rows = await session.scalars(
        select(CodeEvent.data).where(
            CodeEvent.parent_code_id == container_id, CodeEvent.kind == "unpack", CodeEvent.action == "DELETE"
        )
    )
    return [dict(d) for d in rows if isinstance(d, dict)]
