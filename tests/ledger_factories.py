"""Helpers for tests that move money: a funded pool, wallets, and the books-balance check."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line


@dataclass
class Books:
    funding: uuid.UUID
    pool: uuid.UUID
    wallet: uuid.UUID


async def make_books(runtime: Runtime, tenant_id: uuid.UUID, *, pool_amount: int = 1000) -> Books:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        funding = await ledger.open_account(session, key="funding", kind="brand_funding", name="Brand funding")
        pool = await ledger.open_account(session, key="pool:spring", kind="fee_pool", name="Spring pool", floor=0)
        wallet = await ledger.open_account(
            session,
            key="wallet:consumer:1",
            kind="consumer_wallet",
            name="Consumer 1",
            owner_type="consumer",
            owner_id="1",
            floor=0,
        )
        if pool_amount:
            await ledger.post(
                session,
                EntryDraft("fund:spring", "funding", [Line(funding.id, -pool_amount), Line(pool.id, pool_amount)]),
            )
    return Books(funding.id, pool.id, wallet.id)


async def assert_books_balance(runtime: Runtime, tenant_id: uuid.UUID) -> ledger.RecomputeReport:
    """The ledger invariant: every balance equals its journal, every entry sums to 0, every currency
    sums to 0 across the tenant's balances."""
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        report = await ledger.recompute_balances(session)
    assert report.ok, report
    return report
