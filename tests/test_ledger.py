"""The ledger: balanced entries only, exactly once per idempotency key, floors never crossed under
concurrency, append-only journal, reversals, recomputation — on both tiers."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from typer.testing import CliRunner

from tests.factories import make_brand
from tests.ledger_factories import assert_books_balance, make_books
from tests.test_cli import cli_env  # noqa: F401 - fixture
from zhongtai.cli.main import app
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.ledger.errors import (
    AccountConflict,
    AlreadyReversed,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidEntry,
    UnbalancedEntry,
)
from zhongtai.ledger.models import LedgerBalance, LedgerEntry, LedgerLine
from zhongtai.ledger.service import EntryDraft, Line


async def _balances(runtime: Runtime, tenant_id: uuid.UUID, *ids: uuid.UUID) -> list[int]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return [await ledger.balance_of(session, i) for i in ids]


async def test_post_moves_money_and_keeps_the_books_balanced(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=1000)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        posted = await ledger.post(
            session,
            EntryDraft(
                "reward:code-1:open",
                "reward",
                [Line(books.pool, -88), Line(books.wallet, 88)],
                memo="red packet",
                reference_type="code",
                reference_id="code-1",
            ),
            posted_by="test",
        )
    assert posted.created
    assert posted.entry.kind == "reward"
    assert await _balances(runtime, brand.id, books.funding, books.pool, books.wallet) == [-1000, 912, 88]
    report = await assert_books_balance(runtime, brand.id)
    assert (report.accounts, report.lines, report.balance_totals) == (3, 4, {"CNY": 0})
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        entry, lines = await ledger.get_entry(session, posted.entry.id)
        assert (entry.memo, entry.reference_id, entry.posted_by) == ("red packet", "code-1", "test")
        assert lines == [Line(books.pool, -88), Line(books.wallet, 88)]
        rows, total = await ledger.account_lines(session, books.pool)
        assert total == 2
        assert [(line.amount, e.idempotency_key) for line, e in rows] == [
            (-88, "reward:code-1:open"),
            (1000, "fund:spring"),
        ]


@pytest.mark.parametrize(
    ("lines", "error", "message"),
    [
        ([(0, -100), (2, 99)], UnbalancedEntry, "sum to -1, not 0"),
        ([(0, -100)], InvalidEntry, "at least two lines"),
        ([], InvalidEntry, "at least two lines"),
        ([(0, 0), (2, 0)], InvalidEntry, "non-zero"),
        ([(0, -1.5), (2, 1.5)], InvalidEntry, "integer"),
        ([(0, True), (2, -1)], InvalidEntry, "integer"),
        ([(0, -(10**13)), (2, 10**13)], InvalidEntry, "at most"),
    ],
)
async def test_invalid_entries_are_refused_and_write_nothing(
    runtime: Runtime, lines: list[tuple[int, object]], error: type[Exception], message: str
) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    ids = [books.funding, books.pool, books.wallet]
    draft = EntryDraft("bad", "reward", [Line(ids[i], amount) for i, amount in lines])  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await ledger.post(session, draft)
    assert await _balances(runtime, brand.id, *ids) == [-1000, 1000, 0]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await ledger.entry_by_key(session, "bad") is None


async def test_unknown_foreign_and_mixed_currency_accounts_are_refused(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    other = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    foreign = await make_books(runtime, other.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        points = await ledger.open_account(session, key="points:1", kind="points", name="Points", currency="PTS")
    cases = [
        ([Line(books.pool, -1), Line(uuid.uuid4(), 1)], "Unknown ledger account"),
        ([Line(books.pool, -1), Line(foreign.wallet, 1)], "Unknown ledger account"),
        ([Line(books.pool, -1), Line(points.id, 1)], "one currency"),
    ]
    for lines, message in cases:
        with pytest.raises(InvalidEntry, match=message):
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await ledger.post(session, EntryDraft(f"x-{message}", "reward", lines))
    assert await _balances(runtime, other.id, foreign.pool, foreign.wallet) == [1000, 0]
    await assert_books_balance(runtime, brand.id)
    await assert_books_balance(runtime, other.id)


async def test_same_key_returns_the_first_entry_and_different_lines_are_refused(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    draft = EntryDraft("reward:c1", "reward", [Line(books.pool, -50), Line(books.wallet, 50)])
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        first = await ledger.post(session, draft)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        again = await ledger.post(session, draft)
    assert (first.created, again.created, again.entry.id) == (True, False, first.entry.id)
    with pytest.raises(IdempotencyKeyReused):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await ledger.post(
                session, EntryDraft("reward:c1", "reward", [Line(books.pool, -60), Line(books.wallet, 60)])
            )
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [950, 50]
    # the same key in another tenant is another entry
    other = await make_brand(runtime)
    other_books = await make_books(runtime, other.id)
    async with runtime.db.unit_of_work(tenant_id=other.id) as session:
        theirs = await ledger.post(
            session, EntryDraft("reward:c1", "reward", [Line(other_books.pool, -50), Line(other_books.wallet, 50)])
        )
    assert theirs.created
    assert theirs.entry.id != first.entry.id


async def test_floor_refuses_overspend_with_a_clear_error(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=100)
    with pytest.raises(InsufficientFunds) as refused:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await ledger.post(session, EntryDraft("big", "reward", [Line(books.pool, -101), Line(books.wallet, 101)]))
    assert refused.value.status_code == 409
    assert refused.value.data == {
        "account_id": str(books.pool),
        "account_key": "pool:spring",
        "balance": 100,
        "floor": 0,
        "delta": -101,
    }
    assert "holds 100" in refused.value.message
    # the refusal rolled back only its savepoint: the caller's transaction goes on
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        with pytest.raises(InsufficientFunds):
            await ledger.post(session, EntryDraft("big2", "reward", [Line(books.pool, -101), Line(books.wallet, 101)]))
        done = await ledger.post(
            session, EntryDraft("exact", "reward", [Line(books.pool, -100), Line(books.wallet, 100)])
        )
    assert done.created
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [0, 100]
    await assert_books_balance(runtime, brand.id)


async def test_concurrent_posts_never_overspend_a_pool(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=1000)

    async def spend(i: int) -> bool:
        try:
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await ledger.post(
                    session, EntryDraft(f"reward:{i}", "reward", [Line(books.pool, -100), Line(books.wallet, 100)])
                )
            return True
        except InsufficientFunds:
            return False

    results = await asyncio.gather(*(spend(i) for i in range(25)))
    assert results.count(True) == 10
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [0, 1000]
    report = await assert_books_balance(runtime, brand.id)
    assert report.lines == 2 + 10 * 2


async def test_racing_duplicates_post_exactly_one_entry(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    draft = EntryDraft("reward:code-9:open", "reward", [Line(books.pool, -10), Line(books.wallet, 10)])

    async def attempt() -> ledger.Posted:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await ledger.post(session, draft)

    results = await asyncio.gather(*(attempt() for _ in range(12)))
    assert sum(r.created for r in results) == 1
    assert len({r.entry.id for r in results}) == 1
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [990, 10]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        count = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.idempotency_key == draft.idempotency_key)
        )
    assert count == 1
    await assert_books_balance(runtime, brand.id)


async def test_reversal_restores_balances_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        original = await ledger.post(
            session, EntryDraft("r1", "reward", [Line(books.pool, -30), Line(books.wallet, 30)])
        )
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        reversal = await ledger.reverse(session, original.entry.id, memo="scan was fraudulent")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        again = await ledger.reverse(session, original.entry.id)
    assert reversal.created
    assert not again.created
    assert again.entry.id == reversal.entry.id
    assert reversal.entry.reverses_id == original.entry.id
    assert sorted(line.amount for line in reversal.lines) == [-30, 30]
    assert await _balances(runtime, brand.id, books.pool, books.wallet) == [1000, 0]
    with pytest.raises(AlreadyReversed):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await ledger.reverse(session, original.entry.id, idempotency_key="another key")
    with pytest.raises(InvalidEntry, match="not reversed"):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await ledger.reverse(session, reversal.entry.id)
    await assert_books_balance(runtime, brand.id)


async def test_reversal_respects_floors(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        reward = await ledger.post(session, EntryDraft("r1", "reward", [Line(books.pool, -30), Line(books.wallet, 30)]))
        await ledger.post(session, EntryDraft("spend", "payout", [Line(books.wallet, -30), Line(books.funding, 30)]))
    with pytest.raises(InsufficientFunds):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await ledger.reverse(session, reward.entry.id)
    await assert_books_balance(runtime, brand.id)


async def test_journal_is_append_only_in_the_database(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await make_books(runtime, brand.id)
    for statement in (
        update(LedgerLine).values(amount=5),
        delete(LedgerLine),
        update(LedgerEntry).values(memo="edited"),
        delete(LedgerEntry),
    ):
        with pytest.raises((DBAPIError, IntegrityError), match="append-only"):
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await session.execute(statement)
    await assert_books_balance(runtime, brand.id)


async def test_balance_check_constraint_backs_the_floor(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=10)
    with pytest.raises(IntegrityError):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await session.execute(
                update(LedgerBalance).where(LedgerBalance.account_id == books.pool).values(balance=-1)
            )


async def test_recompute_finds_and_repairs_a_tampered_balance(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=500)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await session.execute(
            text("UPDATE ledger_balances SET balance = 7 WHERE account_id = :a"),
            {"a": books.wallet if runtime.db.dialect == "postgresql" else books.wallet.hex},
        )
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        report = await ledger.recompute_balances(session)
    assert not report.ok
    assert report.mismatches == [ledger.Mismatch(books.wallet, "CNY", 7, 0)]
    assert report.balance_totals == {"CNY": 7}
    assert report.journal_totals == {"CNY": 0}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        repaired = await ledger.recompute_balances(session, repair=True)
    assert repaired.repaired == 1
    report = await assert_books_balance(runtime, brand.id)
    assert report.balance_totals == {"CNY": 0}


async def test_open_account_is_idempotent_and_refuses_a_different_one(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        a = await ledger.open_account(session, key="pool:x", kind="fee_pool", name="X", floor=0)
        b = await ledger.open_account(session, key="pool:x", kind="fee_pool", name="X renamed", floor=0)
        assert a.id == b.id
        with pytest.raises(AccountConflict):
            await ledger.open_account(session, key="pool:x", kind="fee_pool", name="X", floor=None)
        with pytest.raises(InvalidEntry, match="Unknown account kind"):
            await ledger.open_account(session, key="y", kind="piggy_bank", name="Y")
        with pytest.raises(InvalidEntry, match="Currency"):
            await ledger.open_account(session, key="y", kind="fee_pool", name="Y", currency="USD")
        with pytest.raises(InvalidEntry, match="floor"):
            await ledger.open_account(session, key="y", kind="fee_pool", name="Y", floor=5)

    async def race(i: int) -> uuid.UUID:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return (
                await ledger.open_account(session, key="wallet:race", kind="partner_wallet", name=f"W{i}", floor=0)
            ).id

    ids = await asyncio.gather(*(race(i) for i in range(8)))
    assert len(set(ids)) == 1
    await assert_books_balance(runtime, brand.id)


@pytest.mark.usefixtures("cli_env")
async def test_recompute_command_reports_and_repairs(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=300)

    def run(*args: str) -> tuple[int, dict[str, object]]:
        result = CliRunner().invoke(app, ["ledger", "recompute", "--tenant", brand.tenant.slug, *args])
        return result.exit_code, json.loads(result.output)

    code, report = await asyncio.to_thread(run)
    assert (code, report["ok"], report["accounts"], report["lines"]) == (0, True, 3, 2)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await session.execute(update(LedgerBalance).where(LedgerBalance.account_id == books.wallet).values(balance=9))
    code, report = await asyncio.to_thread(run)
    assert (code, report["ok"]) == (1, False)
    assert report["mismatches"] == [{"account_id": str(books.wallet), "currency": "CNY", "stored": 9, "computed": 0}]
    code, report = await asyncio.to_thread(run, "--repair")
    assert (code, report["repaired"]) == (0, 1)
    await assert_books_balance(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        audited = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ledger.repair_balances")
        )
    assert audited == 1
