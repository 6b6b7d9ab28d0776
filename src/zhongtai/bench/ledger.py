"""`zhongtai bench ledger` — posting rate per tier, and balance recomputation over a 10M-entry journal.

Posting: a brand with 10 funded fee pools (floor 0) and 1,000 consumer wallets; each post is one
`ledger.post` in its own unit of work (a reward: pool → wallet, two lines, its own idempotency key),
as a scan request would post it. Three runs per tier: one at a time, 8 concurrent over spread
accounts, and 8 concurrent all drawing from ONE pool (the contended balance row of a hot campaign).

Baseline of the same run: a bare unit of work (BEGIN, SELECT 1, COMMIT), one at a time, so that the
posting cost reads as a multiple of the tier's transaction cost on a shared machine.

Recomputation (PostgreSQL): a journal of N reward entries (default 10,000,000: 20,000,000 lines) over
100 pools and 10,000 wallets, plus one funding entry per pool, is generated inside the database
(INSERT … SELECT over generate_series, 1M entries per statement, triggers off for the load), balances
are set to their expected values, then `recompute_balances` is timed: the per-account sums compared
with the stored balances (one statement), and the check that every entry sums to zero.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from rich.console import Console
from sqlalchemy import insert, text

from zhongtai.bench import servers
from zhongtai.bench.registry import benchmark
from zhongtai.core import accounts
from zhongtai.core.clock import utcnow
from zhongtai.core.db import Database
from zhongtai.core.ids import new_id
from zhongtai.core.settings import Settings
from zhongtai.ledger import service as ledger
from zhongtai.ledger.models import LedgerAccount, LedgerBalance
from zhongtai.ledger.service import EntryDraft, Line

progress = Console(stderr=True)
TIERS = ("embedded", "postgres")
CONCURRENCY = 8
CHUNK = 1_000_000


def posts_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_LEDGER_POSTS", "2000"))


def entries_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_LEDGER_ENTRIES", "10000000"))


async def new_brand(db: Database) -> uuid.UUID:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work(all_tenants=True) as session:
        tenant, _ = await accounts.do_create_tenant(
            session, slug=slug, name="Bench brand", owner_email=f"owner@{slug}.example", owner_password=uuid.uuid4().hex
        )
    return tenant.id


async def _open(
    db: Database, tenant_id: uuid.UUID, pools: int, wallets: int, *, fund: int
) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    """The brand's funding account, `pools` fee pools and `wallets` consumer wallets (bulk-inserted:
    opening accounts is not what is measured), the pools funded with `fund` each."""
    pool_ids = [new_id() for _ in range(pools)]
    wallet_ids = [new_id() for _ in range(wallets)]
    accounts_rows = [
        {"id": i, "key": f"pool:{n}", "kind": "fee_pool", "name": f"Pool {n}", "owner_id": None, "floor": 0}
        for n, i in enumerate(pool_ids)
    ] + [
        {
            "id": i,
            "key": f"wallet:{n}",
            "kind": "consumer_wallet",
            "name": f"Wallet {n}",
            "owner_id": str(n),
            "floor": 0,
        }
        for n, i in enumerate(wallet_ids)
    ]
    now = utcnow()
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        funding = await ledger.open_account(session, key="funding", kind="brand_funding", name="Brand funding")
        for low in range(0, len(accounts_rows), 5000):
            chunk = accounts_rows[low : low + 5000]
            await session.execute(
                insert(LedgerAccount),
                [
                    {
                        **row,
                        "tenant_id": tenant_id,
                        "currency": "CNY",
                        "owner_type": "consumer" if row["owner_id"] else None,
                        "created_at": now,
                    }
                    for row in chunk
                ],
            )
            await session.execute(
                insert(LedgerBalance),
                [
                    {
                        "account_id": row["id"],
                        "tenant_id": tenant_id,
                        "currency": "CNY",
                        "balance": 0,
                        "floor": 0,
                        "updated_at": now,
                    }
                    for row in chunk
                ],
            )
        if fund:
            for i, pool in enumerate(pool_ids):
                await ledger.post(
                    session, EntryDraft(f"fund:{i}", "funding", [Line(funding.id, -fund), Line(pool, fund)])
                )
    return funding.id, pool_ids, wallet_ids


async def _post_run(
    db: Database, tenant_id: uuid.UUID, label: str, pairs: list[tuple[uuid.UUID, uuid.UUID]], concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue = list(enumerate(pairs))
    queue.reverse()

    async def worker() -> None:
        while queue:
            i, (pool, wallet) = queue.pop()
            start = time.perf_counter()
            async with db.unit_of_work(tenant_id=tenant_id) as session:
                await ledger.post(
                    session,
                    EntryDraft(f"{label}:{i}", "reward", [Line(pool, -(1 + i % 100)), Line(wallet, 1 + i % 100)]),
                )
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "posts_per_s": round(len(pairs) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
    }


async def _measure_posting(settings: Settings, posts: int) -> dict[str, Any]:
    db = Database(settings)
    try:
        tenant_id = await new_brand(db)
        _funding, pools, wallets = await _open(db, tenant_id, 10, 1000, fund=10**10)
        spread = [(pools[i % len(pools)], wallets[(i * 7) % len(wallets)]) for i in range(posts)]
        hot = [(pools[0], wallets[(i * 7) % len(wallets)]) for i in range(posts)]
        figures: dict[str, Any] = {}
        # The baseline of the same run: a bare unit of work with one SELECT (begin, round trip, commit).
        bare: list[float] = []
        for _ in range(max(50, posts // 4)):
            start = time.perf_counter()
            async with db.unit_of_work(tenant_id=tenant_id) as session:
                await session.execute(text("SELECT 1"))
            bare.append(time.perf_counter() - start)
        figures["baseline_transactions_per_s"] = round(len(bare) / sum(bare), 1)
        figures["baseline_p50_ms"] = round(statistics.median(bare) * 1000, 2)
        for name, pairs, concurrency in (
            ("sequential", spread, 1),
            (f"concurrent{CONCURRENCY}", spread, CONCURRENCY),
            (f"hot_pool_concurrent{CONCURRENCY}", hot, CONCURRENCY),
        ):
            measured = await _post_run(db, tenant_id, name, pairs, concurrency)
            figures.update({f"{name}_{k}": v for k, v in measured.items()})
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            report = await ledger.recompute_balances(session)
        figures["posting_books_balance"] = report.ok
        figures["posting_journal_lines"] = report.lines
        return figures
    finally:
        await db.dispose()


# ------------------------------------------------------------------------------ the 10M-entry journal

_ENTRY_ID = "('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid"
_AMOUNT = "(1 + (g * 7919) % 1000)"


async def _generate(
    db: Database,
    tenant_id: uuid.UUID,
    entries: int,
    pools: list[uuid.UUID],
    wallets: list[uuid.UUID],
    funding: uuid.UUID,
) -> float:
    """Write `entries` rewards (pool g % P → wallet g % W, two lines each) plus one funding entry per pool
    that covers exactly what the pool paid, and set every balance to what the journal says."""
    params = {"t": tenant_id, "pools": pools, "wallets": wallets, "np": len(pools), "nw": len(wallets)}
    started = time.perf_counter()
    for low in range(1, entries + 1, CHUNK):
        high = min(entries, low + CHUNK - 1)
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            await session.execute(text("SET LOCAL session_replication_role = replica"))
            await session.execute(
                text(
                    "INSERT INTO ledger_entries "  # noqa: S608 - constants only; values are bound
                    "(id, tenant_id, idempotency_key, kind, memo, data, posted_by, posted_at) "
                    f"SELECT {_ENTRY_ID}, CAST(:t AS uuid), 'reward:' || g, 'reward', '', "
                    "'{}'::jsonb, 'bench', now() "
                    "FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint)) AS g"
                ),
                {**params, "low": low, "high": high},
            )
            await session.execute(
                text(
                    "INSERT INTO ledger_lines (tenant_id, entry_id, account_id, amount) "  # noqa: S608 - constants only
                    f"SELECT CAST(:t AS uuid), {_ENTRY_ID}, (CAST(:pools AS uuid[]))[1 + g % :np], -{_AMOUNT} "
                    "FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint)) AS g "
                    "UNION ALL "
                    f"SELECT CAST(:t AS uuid), {_ENTRY_ID}, (CAST(:wallets AS uuid[]))[1 + g % :nw], {_AMOUNT} "
                    "FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint)) AS g"
                ),
                {**params, "low": low, "high": high},
            )
        progress.print(f"  journal: {high:,} / {entries:,} entries ({time.perf_counter() - started:.0f} s)")
    # Fund each pool with what it paid out (so it ends at 0, its floor), then set the balances.
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        rows = (
            await session.execute(
                text(
                    f"SELECT g % :np AS p, SUM({_AMOUNT}) "  # noqa: S608 - constants only
                    "FROM generate_series(1, CAST(:n AS bigint)) AS g GROUP BY 1"
                ),
                {"np": len(pools), "n": entries},
            )
        ).all()
        for p, spent in rows:
            await ledger.post(
                session,
                EntryDraft(f"fund:{p}", "funding", [Line(funding, -int(spent)), Line(pools[int(p)], int(spent))]),
            )
        await session.execute(
            text(
                "UPDATE ledger_balances SET balance = ledger_balances.balance + x.total FROM ("  # noqa: S608 - constants only
                f"  SELECT (CAST(:pools AS uuid[]))[1 + g % :np] AS account_id, -SUM({_AMOUNT}) AS total "
                "   FROM generate_series(1, CAST(:n AS bigint)) AS g GROUP BY 1"
                "  UNION ALL "
                f"  SELECT (CAST(:wallets AS uuid[]))[1 + g % :nw], SUM({_AMOUNT}) "
                "   FROM generate_series(1, CAST(:n AS bigint)) AS g GROUP BY 1"
                ") AS x WHERE ledger_balances.account_id = x.account_id "
                "AND ledger_balances.tenant_id = CAST(:t AS uuid)"
            ),
            {**params, "n": entries},
        )
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        await session.execute(text("ANALYZE ledger_entries"))
        await session.execute(text("ANALYZE ledger_lines"))
    return time.perf_counter() - started


async def measure_recompute(settings: Settings, entries: int) -> dict[str, Any]:
    db = Database(settings)
    try:
        tenant_id = await new_brand(db)
        funding, pools, wallets = await _open(db, tenant_id, 100, 10_000, fund=0)
        progress.print(f"  generating {entries:,} entries ({2 * entries:,} lines) on PostgreSQL")
        generate_s = await _generate(db, tenant_id, entries, pools, wallets, funding)
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            size = (
                await session.execute(
                    text("SELECT pg_total_relation_size('ledger_lines'), pg_total_relation_size('ledger_entries')")
                )
            ).one()
        start = time.perf_counter()
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            balances_only = await ledger.recompute_balances(session, check_entries=False)
        balances_s = time.perf_counter() - start
        start = time.perf_counter()
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            full = await ledger.recompute_balances(session)
        full_s = time.perf_counter() - start
        assert balances_only.ok, balances_only
        assert full.ok, full
        return {
            "journal_entries": entries + len(pools),
            "journal_lines": full.lines,
            "accounts": full.accounts,
            "generate_s": round(generate_s, 1),
            "lines_table_mb": round(size[0] / 2**20),
            "entries_table_mb": round(size[1] / 2**20),
            "recompute_balances_s": round(balances_s, 2),
            "recompute_with_entry_check_s": round(full_s, 2),
            "mismatches": len(full.mismatches),
            "unbalanced_entries": len(full.unbalanced_entries),
            "balance_totals": full.balance_totals,
        }
    finally:
        await db.dispose()


@benchmark(
    "ledger", "ledger posts/s per tier (sequential, concurrent, hot pool) and recompute over a 10M-entry journal"
)
def run_ledger_benchmark(
    posts: int | None = None,
    entries: int | None = None,
    *,
    tiers: list[str] | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    posts = posts if posts is not None else posts_from_env()
    entries = entries if entries is not None else entries_from_env()
    wanted = list(tiers) if tiers is not None else list(TIERS)
    if "postgres" in wanted and not servers.postgres_answers():
        wanted.remove("postgres")
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL does not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for tier in wanted:
        progress.print(f"[bold]{tier} tier[/bold]: {posts:,} posts per run")
        with servers.migrated_database(tier, "ledger") as settings:
            measured = asyncio.run(_measure_posting(settings, posts))
        figures.update({f"{tier}_{k}": v for k, v in measured.items()})
    if "postgres" in wanted and entries > 0:
        progress.print(f"[bold]postgres recompute[/bold]: {entries:,} entries")
        with servers.migrated_database("postgres", "ledger-recompute") as settings:
            measured = asyncio.run(measure_recompute(settings, entries))
        figures.update({f"postgres_{k}": v for k, v in measured.items()})
    return {
        "posts": posts,
        "entries": entries,
        "tiers": wanted,
        "concurrency": CONCURRENCY,
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
