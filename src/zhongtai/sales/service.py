"""Orders: creation (one or many, idempotent on the seller's reference), the state machine, expiry.

Sellers (flash sales, lotteries) call `create_orders_bulk` / `create_order`; everything that moves an
order goes through `do_transition`, one conditional UPDATE per change, so that two callers racing on
the same order cannot both succeed. Services flush, never commit.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import domain_events, jobs, sql, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.ids import new_id
from zhongtai.sales import rules
from zhongtai.sales.errors import BadOrderDraft, IllegalTransition, OrderNotFound
from zhongtai.sales.events import OrderExpired
from zhongtai.sales.models import SalesOrder, SalesOrderEvent
from zhongtai.sales.rules import OrderDraft

EXPIRE_TOPIC = "sales.orders.expire"
EXPIRE_WINDOW_SECONDS = 60
BULK_BATCH = 500
EXPIRE_BATCH = 1000

_ORDERS = cast(Table, SalesOrder.__table__)
_EVENTS = cast(Table, SalesOrderEvent.__table__)


def _check_drafts(drafts: Sequence[OrderDraft], now: datetime) -> None:
    problems = {i: found for i, draft in enumerate(drafts) if (found := rules.draft_problems(draft, now))}
    if problems:
        first = min(problems)
        raise BadOrderDraft(
            f"Order {first} is not valid: {'; '.join(problems[first])}.",
            errors=[{"index": i, "problems": p} for i, p in sorted(problems.items())[:50]],
        )


async def create_orders_bulk(session: AsyncSession, tenant_id: uuid.UUID, drafts: Sequence[OrderDraft]) -> int:
    """Insert the orders in one statement per batch of `BULK_BATCH`, skipping any whose
    (tenant, source, source_ref) exists already; returns how many were new.

    Every draft is checked first, so a bad one writes nothing. Safe to call again with the same drafts
    (a retried worker batch) and from concurrent transactions: the unique key decides, never a read.
    """
    scope = tenancy.current_scope(session)
    if isinstance(scope, uuid.UUID) and scope != tenant_id:
        raise CrossTenantAccess("create_orders_bulk for another tenant from a tenant-scoped session")
    now = utcnow()
    _check_drafts(drafts, now)
    # One draft per key, in key order: concurrent callers then take the unique index's locks in the
    # same order, so duplicate batches wait for each other instead of deadlocking (PostgreSQL).
    unique: dict[tuple[str, str], OrderDraft] = {}
    for d in drafts:
        unique.setdefault((d.source, d.source_ref), d)  # the first of duplicates wins, as in the database
    drafts = [unique[key] for key in sorted(unique)]
    created = 0
    deadlines: set[int] = set()
    for start in range(0, len(drafts), BULK_BATCH):
        rows = [
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "order_no": rules.new_order_no(now),
                "source": d.source,
                "source_ref": d.source_ref,
                "consumer_id": d.consumer_id,
                "product_id": d.product_id,
                "quantity": d.quantity,
                "unit_price_fen": d.unit_price_fen,
                "amount_fen": d.unit_price_fen * d.quantity,
                "currency": d.currency,
                "store_id": d.store_id,
                "state": rules.PENDING_PAYMENT,
                "pay_deadline": d.pay_deadline,
                "created_at": d.created_at or now,
            }
            for d in drafts[start : start + BULK_BATCH]
        ]
        # Parameters as a list (not `.values(rows)`): the statement is compiled once and cached, and the
        # driver still sends multi-row INSERTs; compiling thousands of literal VALUES per batch cost more
        # than the database's work.
        statement = sql.insert_ignore(session, _ORDERS, "tenant_id", "source", "source_ref").returning(
            _ORDERS.c.pay_deadline
        )
        inserted = (await session.execute(statement, rows)).scalars().all()
        created += len(inserted)
        deadlines.update(expiry_window(deadline) for deadline in inserted)
    for window in sorted(deadlines):
        await schedule_expiry(session, tenant_id, window)
    return created


async def create_order(session: AsyncSession, tenant_id: uuid.UUID, draft: OrderDraft) -> SalesOrder:
    """One order, idempotent on (source, source_ref): the existing order when it was created before."""
    await create_orders_bulk(session, tenant_id, [draft])
    order = await session.scalar(
        select(SalesOrder).where(
            SalesOrder.tenant_id == tenant_id,
            SalesOrder.source == draft.source,
            SalesOrder.source_ref == draft.source_ref,
        )
    )
    if order is None:  # pragma: no cover - the insert or the earlier row guarantees it
        raise OrderNotFound()
    return order


# Reading.


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> SalesOrder:
    order = await session.scalar(select(SalesOrder).where(SalesOrder.id == order_id))
    if order is None:
        raise OrderNotFound(f"Order {order_id} was not found.", order_id=str(order_id))
    return order


async def get_order_by_no(session: AsyncSession, order_no: str) -> SalesOrder:
    order = await session.scalar(select(SalesOrder).where(SalesOrder.order_no == order_no.strip().upper()))
    if order is None:
        raise OrderNotFound(f"Order {order_no} was not found.", order_no=order_no)
    return order


async def get_order_by_source(session: AsyncSession, source: str, source_ref: str) -> SalesOrder | None:
    found: SalesOrder | None = await session.scalar(
        select(SalesOrder).where(SalesOrder.source == source, SalesOrder.source_ref == source_ref)
    )
    return found


async def list_orders(
    session: AsyncSession,
    *,
    state: str | None = None,
    source: str | None = None,
    store_id: uuid.UUID | None = None,
    consumer_id: uuid.UUID | None = None,
    consumer_ids: list[uuid.UUID] | None = None,
    order_no: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SalesOrder], int]:
    if state is not None and state not in rules.STATES:
        raise BadOrderDraft(f"Unknown state {state!r}; use one of {', '.join(rules.STATES)}.", field="state")
    conditions = []
    if state:
        conditions.append(SalesOrder.state == state)
    if source:
        conditions.append(SalesOrder.source == source)
    if store_id:
        conditions.append(SalesOrder.store_id == store_id)
    if consumer_id:
        conditions.append(SalesOrder.consumer_id == consumer_id)
    if consumer_ids is not None:
        conditions.append(SalesOrder.consumer_id.in_(consumer_ids))
    if order_no:
        conditions.append(SalesOrder.order_no == order_no.strip().upper())
    if created_from:
        conditions.append(SalesOrder.created_at >= created_from)
    if created_to:
        conditions.append(SalesOrder.created_at < created_to)
    total = await session.scalar(select(func.count()).select_from(SalesOrder).where(*conditions))
    rows = await session.scalars(
        select(SalesOrder)
        .where(*conditions)
        .order_by(SalesOrder.created_at.desc(), SalesOrder.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def history(session: AsyncSession, order_id: uuid.UUID) -> list[SalesOrderEvent]:
    rows = await session.scalars(
        select(SalesOrderEvent).where(SalesOrderEvent.order_id == order_id).order_by(SalesOrderEvent.id)
    )
    return list(rows)


# The state machine.


def check_transition(order: SalesOrder, to_state: str) -> None:
    if to_state not in rules.STATES:
        raise IllegalTransition(f"Unknown order state {to_state!r}.", state=order.state, target=to_state)
    if not rules.is_legal(order.state, to_state):
        allowed = sorted(rules.TRANSITIONS[order.state])
        raise IllegalTransition(
            f"Order {order.order_no} is {order.state}; it cannot become {to_state}"
            + (f" (from {order.state} only {', '.join(allowed)})." if allowed else " (that state is final)."),
            order_id=str(order.id),
            state=order.state,
            target=to_state,
            allowed=allowed,
        )


async def do_transition(
    session: AsyncSession,
    order: SalesOrder,
    to_state: str,
    *,
    actor: str = "system",
    note: str = "",
    now: datetime | None = None,
    values: dict[str, Any] | None = None,
) -> SalesOrder:
    """Move `order` to `to_state` with one conditional UPDATE on its current state; a concurrent change
    that got there first makes this a 409, never a double transition."""
    check_transition(order, to_state)
    now = now or utcnow()
    from_state = order.state
    result = await session.execute(
        update(SalesOrder)
        .where(SalesOrder.id == order.id, SalesOrder.state == from_state)
        .values(state=to_state, **{rules.STAMP_OF[to_state]: now}, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    await session.refresh(order)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        check_transition(order, to_state)  # explains the state it is in now
        raise IllegalTransition(f"Order {order.order_no} changed meanwhile; it is {order.state}.", state=order.state)
    session.add(
        SalesOrderEvent(
            tenant_id=order.tenant_id,
            order_id=order.id,
            from_state=from_state,
            to_state=to_state,
            actor=actor[:80],
            note=note[:200],
            occurred_at=now,
        )
    )
    await session.flush()
    return order


# Expiry.


def expiry_window(deadline: datetime) -> int:
    return math.ceil(deadline.timestamp() / EXPIRE_WINDOW_SECONDS)


async def schedule_expiry(session: AsyncSession, tenant_id: uuid.UUID, window: int) -> None:
    """At most one expiry job per tenant per minute of deadlines, due just after that minute ends."""
    due_in = max(0.0, window * EXPIRE_WINDOW_SECONDS + 1 - utcnow().timestamp())
    await jobs.enqueue(
        session,
        EXPIRE_TOPIC,
        {},
        tenant_id=tenant_id,
        dedupe_key=f"{EXPIRE_TOPIC}:{window}",
        delay_seconds=due_in,
    )


async def expire_due(session: AsyncSession, now: datetime | None = None, *, limit: int = EXPIRE_BATCH) -> int:
    """Expire up to `limit` unpaid orders whose deadline is at or before `now`, publishing one
    `OrderExpired` for each in this transaction; returns how many. Works in the session's scope (one
    tenant, or all tenants for platform work).

    The UPDATE re-checks `state = 'pending_payment'`, so an order paid or expired by a concurrent
    transaction is skipped: each expiry happens, and is announced, exactly once.
    """
    now = now or utcnow()
    due = (
        select(SalesOrder.id)
        .where(SalesOrder.state == rules.PENDING_PAYMENT, SalesOrder.pay_deadline <= now)
        .order_by(SalesOrder.pay_deadline)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = await session.execute(
        update(SalesOrder)
        .where(SalesOrder.id.in_(due.scalar_subquery()), SalesOrder.state == rules.PENDING_PAYMENT)
        .values(state=rules.EXPIRED, expired_at=now)
        .returning(
            SalesOrder.id,
            SalesOrder.tenant_id,
            SalesOrder.source,
            SalesOrder.source_ref,
            SalesOrder.product_id,
            SalesOrder.quantity,
            SalesOrder.consumer_id,
        )
        .execution_options(synchronize_session=False)
    )
    expired = sorted(result.all(), key=lambda row: row.id)
    if not expired:
        return 0
    await session.execute(
        insert(_EVENTS),
        [
            {
                "tenant_id": row.tenant_id,
                "order_id": row.id,
                "from_state": rules.PENDING_PAYMENT,
                "to_state": rules.EXPIRED,
                "actor": "system",
                "note": "payment deadline passed",
                "occurred_at": now,
            }
            for row in expired
        ],
    )
    for row in expired:
        await domain_events.publish(
            session,
            OrderExpired(
                tenant_id=row.tenant_id,
                order_id=row.id,
                source=row.source,
                source_ref=row.source_ref,
                product_id=row.product_id,
                quantity=row.quantity,
                consumer_id=row.consumer_id,
            ),
        )
    return len(expired)


async def next_deadline(session: AsyncSession) -> datetime | None:
    """The earliest deadline of an unpaid order in the session's scope."""
    found: datetime | None = await session.scalar(
        select(func.min(SalesOrder.pay_deadline)).where(SalesOrder.state == rules.PENDING_PAYMENT)
    )
    return found
