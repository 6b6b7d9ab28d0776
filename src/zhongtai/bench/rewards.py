"""`zhongtai bench rewards` — ItemEvents granted per second (a consumer open paying consumer, store,
guide and dealer from one fee pool) beside a plain ledger post in the same run, per tier.

Setup per tier: a brand, one funded fee pool with a daily cap (so the cap row is on the path), four
`consumer_open` rules (consumer random tiers, store, guide, dealer fixed), risk thresholds raised so
that nothing is held (the risk queries still run), 20 stores with a guide each and 5 dealers. Each
event is published in its own unit of work, as a scan request would: rules, risk signals, four grant
rows, the cap rows, one 8-line ledger entry.

Baseline of the same run: a plain `ledger.post` (pool → wallet, two lines) in its own unit of work —
what one reward costs without rules, caps, risk or grant rows. Both one at a time and concurrent (8
workers on PostgreSQL, 4 on SQLite, which has one writer);
all from the one pool (a campaign's hot balance row). Afterwards the books are recomputed and the
grants counted (4 per event).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from rich.console import Console
from sqlalchemy import func, select

from zhongtai.bench import servers
from zhongtai.bench.ledger import new_brand
from zhongtai.bench.registry import benchmark
from zhongtai.codes.events import ItemEvent
from zhongtai.core import domain_events
from zhongtai.core.clock import utcnow
from zhongtai.core.db import Database
from zhongtai.core.permissions import Role, permissions_for_role
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.settings import Settings
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line
from zhongtai.rewards import grants as _grants  # noqa: F401 - registers the subscriber
from zhongtai.rewards import service
from zhongtai.rewards.models import RewardGrant

progress = Console(stderr=True)
TIERS = ("embedded", "postgres")
CONCURRENCY = 8
# SQLite has one writer: eight queued writers of an event's ~15 statements can wait past the busy
# timeout on a loaded machine, so the embedded tier runs four.
EMBEDDED_CONCURRENCY = 4


def events_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_REWARDS_EVENTS", "1000"))


def _actor(tenant_id: uuid.UUID) -> Principal:
    return Principal(
        kind=PrincipalKind.SYSTEM,
        id=uuid.UUID(int=0),
        tenant_id=tenant_id,
        label="bench",
        permissions=permissions_for_role(Role.OWNER, is_platform_tenant=False),
        role=Role.OWNER.value,
    )


async def _setup(db: Database, tenant_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    actor = _actor(tenant_id)
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        pool = await service.do_create_pool(
            session, actor, service.PoolDraft(code="BENCH", name="Bench pool", daily_cap_fen=10**11)
        )
        await service.do_fund_pool(session, actor, pool.id, 10**11, idempotency_key="bench-fund")
        now = utcnow()
        tiers = {"type": "tiers", "tiers": [{"amount_fen": 88, "weight": 70}, {"amount_fen": 888, "weight": 1}]}
        for role, amount in (("consumer", None), ("store", 50), ("guide", 30), ("dealer", 20)):
            await service.do_create_rule(
                session,
                actor,
                service.RuleDraft(
                    name=f"bench {role}",
                    event_kind="consumer_open",
                    role=role,
                    pool_id=pool.id,
                    valid_from=now.replace(year=now.year - 1),
                    mode="random" if amount is None else "fixed",
                    amount_fen=amount,
                    distribution=tiers if amount is None else None,
                ),
            )
        await service.do_update_risk(
            session, actor, {"velocity_per_hour": 1_000_000, "consumer_opens_per_day": 100_000}
        )
        funding = await service.system_account(session, service.FUNDING_KEY)
        wallet = await ledger.open_account(session, key="wallet:bench", kind="consumer_wallet", name="bench", floor=0)
        # the baseline's pool is another funded pool account, so both runs draw from a hot row
        base_pool = await ledger.open_account(session, key="pool:baseline", kind="fee_pool", name="baseline", floor=0)
        await ledger.post(
            session, EntryDraft("fund:baseline", "funding", [Line(funding.id, -(10**11)), Line(base_pool.id, 10**11)])
        )
    return base_pool.id, wallet.id


async def _timed(concurrency: int, jobs: list[Any]) -> dict[str, float]:
    latencies: list[float] = []
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            job = queue.pop()
            start = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "per_s": round(len(jobs) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
    }


async def _measure(settings: Settings, events: int, concurrency: int) -> dict[str, Any]:
    db = Database(settings)
    try:
        tenant_id = await new_brand(db)
        base_pool, wallet = await _setup(db, tenant_id)
        stores = [(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()) for _ in range(20)]  # store, guide, dealer
        code = iter(range(1, 10**9))

        def publish_job() -> Any:
            store, guide, dealer = stores[next(code) % len(stores)]
            event = ItemEvent(
                tenant_id=tenant_id,
                kind="consumer_open",
                code_id=next(code),
                product_id=None,
                lot_id=None,
                occurred_at=utcnow(),
                source_ref="bench",
                consumer_id=uuid.uuid4(),
                store_id=store,
                guide_id=guide,
                dealer_id=dealer,
            )

            async def run() -> None:
                async with db.unit_of_work(tenant_id=tenant_id) as session:
                    answer = (await domain_events.publish(session, event))["rewards"]
                assert len(answer) == 4, answer

            return run

        posted = iter(range(10**9))

        def post_job() -> Any:
            i = next(posted)

            async def run() -> None:
                async with db.unit_of_work(tenant_id=tenant_id) as session:
                    await ledger.post(
                        session, EntryDraft(f"base:{i}", "reward", [Line(base_pool, -88), Line(wallet, 88)])
                    )

            return run

        figures: dict[str, Any] = {}
        for workers in (1, concurrency):
            label = "sequential" if workers == 1 else "concurrent"
            base = await _timed(workers, [post_job() for _ in range(events)])
            granted = await _timed(workers, [publish_job() for _ in range(events)])
            figures[f"{label}_ledger_posts_per_s"] = base["per_s"]
            figures[f"{label}_ledger_post_p50_ms"] = base["p50_ms"]
            figures[f"{label}_events_per_s"] = granted["per_s"]
            figures[f"{label}_rewards_per_s"] = round(granted["per_s"] * 4, 1)
            figures[f"{label}_event_p50_ms"] = granted["p50_ms"]
            figures[f"{label}_event_p95_ms"] = granted["p95_ms"]
            figures[f"{label}_event_cost_in_posts"] = round(base["per_s"] / granted["per_s"], 2)
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            report = await ledger.recompute_balances(session)
            count = await session.scalar(select(func.count()).select_from(RewardGrant))
        figures["books_balance"] = report.ok
        figures["grants"] = int(count or 0)
        figures["grants_expected"] = 4 * 2 * events
        return figures
    finally:
        await db.dispose()


@benchmark("rewards", "ItemEvents granted/s (4 parties, one pool) beside a plain ledger post, per tier")
def run_rewards_benchmark(
    events: int | None = None, *, tiers: list[str] | None = None, **_ignored: Any
) -> dict[str, Any]:
    events = events if events is not None else events_from_env()
    wanted = list(tiers) if tiers is not None else list(TIERS)
    if "postgres" in wanted and not servers.postgres_answers():
        wanted.remove("postgres")
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL does not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for tier in wanted:
        progress.print(f"[bold]{tier} tier[/bold]: {events:,} events per run")
        with servers.migrated_database(tier, "rewards") as settings:
            measured = asyncio.run(
                _measure(settings, events, EMBEDDED_CONCURRENCY if tier == "embedded" else CONCURRENCY)
            )
        figures.update({f"{tier}_{k}": v for k, v in measured.items()})
    return {
        "events": events,
        "tiers": wanted,
        "concurrency": {"embedded": EMBEDDED_CONCURRENCY, "postgres": CONCURRENCY},
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
