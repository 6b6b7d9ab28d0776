"""`ledger.batch.post_many` and `open_accounts` on both tiers: balanced, exactly once per key (also
for a batch that mixes new and replayed keys), a floor refusal writes nothing, concurrent batches on
one hot account keep the books balanced."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from tests.factories import make_brand
from tests.ledger_factories import assert_books_balance, make_books
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import batch
from zhongtai.ledger import service as ledger
from zhongtai.ledger.errors import AccountConflict, IdempotencyKeyReused, InsufficientFunds, UnbalancedEntry
from zhongtai.ledger.models import LedgerEntry, LedgerLine
from zhongtai.ledger.service import EntryDraft, Line


def reward(key: str, pool: uuid.UUID, wallet: uuid.UUID, amount: int) -> EntryDraft:
    return EntryDraft(key, "reward", [Line(pool, -amount), Line(wallet, amount)])


async def _balances(runtime: Runtime, tenant_id: uuid.UUID, *ids: uuid.UUID) -> list[int]:
    async with runtime.db.read_session(tenant_id=tenant_id) as session:
        return [await ledger.balance_of(session, i) for i in ids]


async def _count(runtime: Runtime, tenant_id: uuid.UUID, model: type) -> int:
    async with runtime.db.read_session(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_post_many_posts_each_entry_and_replays_known_keys(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=1000)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        first = await batch.post_many(session, [reward(f"r{i}", books.pool, books.wallet, 10) for i in range(3)])
    assert [p.created for p in first] == [True, True, True]
    mixed = [reward(f"r{i}", books.pool, books.wallet, 10) for i in range(5)]  # r0..r2 replayed, r3 r4 new
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        again = await batch.post_many(session, mixed)
    assert [p.created for p in again] == [False, False, False, True, True]
    assert [p.entry_id for p in again[:3]] == [p.entry_id for p in first]
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [950, 50]
    assert await _count(runtime, brand.id, LedgerEntry) == 1 + 5
    report = await assert_books_balance(runtime, brand.id)
    assert report.lines == 2 + 5 * 2


async def test_post_many_refuses_what_post_refuses_and_writes_nothing(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=100)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        # the batch takes 120 from a pool of 100: refused as a whole, the caller's transaction goes on
        with pytest.raises(InsufficientFunds) as refused:
            await batch.post_many(session, [reward(f"k{i}", books.pool, books.wallet, 40) for i in range(3)])
        assert refused.value.data["delta"] == -120
        with pytest.raises(UnbalancedEntry):
            await batch.post_many(session, [EntryDraft("u", "reward", [Line(books.pool, -1), Line(books.wallet, 2)])])
        await batch.post_many(session, [reward("ok", books.pool, books.wallet, 100)])
        with pytest.raises(IdempotencyKeyReused):
            await batch.post_many(session, [reward("ok", books.pool, books.wallet, 99)])
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [0, 100]
    assert await _count(runtime, brand.id, LedgerLine) == 2 + 2
    await assert_books_balance(runtime, brand.id)


async def test_concurrent_batches_on_one_hot_account_keep_the_books_balanced(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=10_000)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        specs = [batch.AccountSpec(f"w{i}", "consumer_wallet", f"W{i}", ledger.CNY, floor=0) for i in range(20)]
        wallets = list((await batch.open_accounts(session, specs)).values())

    async def run(n: int) -> list[bool]:
        # overlapping keys between batches (n and n + 1 share half): exactly one entry per key
        keys = [(n * 10 + i) % 60 for i in range(20)]
        drafts = [reward(f"k{k}", books.pool, wallets[k % 20], 7) for k in keys]
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return [p.created for p in await batch.post_many(session, drafts)]

    results = await asyncio.gather(*(run(n) for n in range(6)))
    assert sum(sum(r) for r in results) == 60
    assert await _count(runtime, brand.id, LedgerEntry) == 1 + 60
    assert await _balances(runtime, brand.id, books.pool) == [10_000 - 60 * 7]
    await assert_books_balance(runtime, brand.id)


async def test_open_accounts_is_idempotent_and_refuses_a_different_one(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    spec = batch.AccountSpec("points:member:1", "points", "Member points", ledger.POINTS, "member", "1", 0)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        first = await batch.open_accounts(session, [spec])
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await batch.open_accounts(session, [spec]) == first
        assert (await ledger.account_by_key(session, spec.key)).id == first[spec.key]  # type: ignore[union-attr]
        with pytest.raises(AccountConflict):
            await batch.open_accounts(session, [batch.AccountSpec(spec.key, "points", "x", ledger.POINTS)])
