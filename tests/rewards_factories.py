"""Helpers for reward tests: a funded pool, rules, ItemEvents published in a unit of work."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from tests.factories import system_actor
from zhongtai.codes.events import ItemEvent
from zhongtai.core import domain_events
from zhongtai.core.clock import utcnow
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.rewards import grants as _grants  # noqa: F401 - registers the subscriber
from zhongtai.rewards import service
from zhongtai.rewards.models import FeePool, RewardRule


async def make_pool(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    *,
    funded: int = 100_000,
    code: str | None = None,
    daily_cap_fen: int | None = None,
    per_partner_cap_fen: int | None = None,
    product_id: uuid.UUID | None = None,
) -> FeePool:
    actor = system_actor(tenant_id)
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        pool = await service.do_create_pool(
            session,
            actor,
            service.PoolDraft(
                code=code or f"P{uuid.uuid4().hex[:6]}",
                name="春节开瓶",
                campaign="Spring",
                product_id=product_id,
                daily_cap_fen=daily_cap_fen,
                per_partner_cap_fen=per_partner_cap_fen,
            ),
        )
        if funded:
            await service.do_fund_pool(session, actor, pool.id, funded, idempotency_key="initial")
    return pool


async def make_rule(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    pool: FeePool,
    *,
    kind: str = "consumer_open",
    role: str = "consumer",
    amount_fen: int | None = 100,
    mode: str = "fixed",
    distribution: dict[str, Any] | None = None,
    product_id: uuid.UUID | None = None,
) -> RewardRule:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return await service.do_create_rule(
            session,
            system_actor(tenant_id),
            service.RuleDraft(
                name=f"{kind} {role}",
                event_kind=kind,
                role=role,
                pool_id=pool.id,
                valid_from=utcnow() - timedelta(days=1),
                valid_to=utcnow() + timedelta(days=30),
                product_id=product_id,
                mode=mode,
                amount_fen=amount_fen if mode == "fixed" else None,
                distribution=distribution,
            ),
        )


def item_event(tenant_id: uuid.UUID, code_id: int, kind: str = "consumer_open", **fields: Any) -> ItemEvent:
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "kind": kind,
        "code_id": code_id,
        "product_id": None,
        "lot_id": None,
        "occurred_at": utcnow(),
        "source_ref": f"test:{kind}:{code_id}",
    }
    values.update(fields)
    return ItemEvent(**values)


async def publish(runtime: Runtime, event: ItemEvent) -> list[dict[str, Any]]:
    async with runtime.db.unit_of_work(tenant_id=event.tenant_id) as session:
        results = await domain_events.publish(session, event)
    granted: list[dict[str, Any]] = results["rewards"]
    return granted


async def balance(runtime: Runtime, tenant_id: uuid.UUID, key: str) -> int:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        account = await ledger.account_by_key(session, key)
        return 0 if account is None else await ledger.balance_of(session, account.id)
