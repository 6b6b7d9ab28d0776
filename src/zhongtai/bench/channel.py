"""`zhongtai bench channel`: consumers opening bottles that pay four parties, over real HTTP, beside the
plain consumer scan of the same run; and the ledger's balance recomputation over a large journal.

Per tier (embedded: SQLite, no Redis; postgres: PostgreSQL + Redis when they answer):

1. `zhongtai demo`, then 2·N commissioned bottles of the demo product (not measured), 5 dealers with
   4 stores each and a guide per store, and the channel's custody of every bottle as the partner scans
   leave it — received by a dealer, shipped, received by a store and sold there by its guide — written
   directly (setup, not measured; `bench custody` and the channel tests cover the scans).
2. **Plain opens**: N first PIN verifications (`POST /api/v1/authenticity/verify`, each code once, a
   distinct phone cookie per request) while no reward rule exists — the whole consumer scan, its
   `consumer_open` event published and no rule matching.
3. **Rewarded opens**: a funded fee pool (with a daily cap, so the cap row is on the path) and four
   `consumer_open` rules — consumer (random red packet), store, guide, dealer — with the risk
   thresholds raised so that nothing is held (the risk queries still run); then the other N bottles
   verified the same way. Each open pays the consumer, and through the bottle's custody its store,
   guide and dealer: four grants and one 8-line ledger entry.

On PostgreSQL + Redis the verdict is decided in Redis and written behind by the scan stream workers
in the server processes, which also publish `consumer_open` and so pay the rewards. A phase's
*persisted* rate is therefore measured end to end: N over the time from its first request until the
database holds all its scan rows (plain) or all 4·N grants (rewarded). On SQLite the request does all
of it before it answers. The figure is `rewards_per_s` beside `plain_opens_per_s` of the same run.

Afterwards the tier's books are recomputed (every balance against its journal) and the grants
checked: exactly four per rewarded open, none for the plain ones, the pool's balance equal to its
funding less what was granted.

4. **Recomputation** (PostgreSQL): the ledger's balance check over `ledger_entries` journal entries
   (default 10,000,000, `ZT_BENCH_CHANNEL_LEDGER_ENTRIES`; 0 skips it), the same generator and check
   as `zhongtai bench ledger`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, insert, select

from zhongtai.bench import loadgen, servers
from zhongtai.bench.registry import benchmark
from zhongtai.bench.scan import APP_FACTORY, SHANGHAI, Sample, add_codes, tier_settings
from zhongtai.core.settings import Settings

TIERS = ("embedded", "postgres")
DEALERS = 5
STORES_PER_DEALER = 4
POOL_FUNDING_FEN = 10**11
PERSIST_TIMEOUT_S = 300.0

progress = Console(stderr=True, soft_wrap=True)


def opens_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_CHANNEL_OPENS", "3000"))


def ledger_entries_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_CHANNEL_LEDGER_ENTRIES", "10000000"))


@dataclass(frozen=True)
class _Brand:
    tenant_id: uuid.UUID
    plain: list[Sample]
    rewarded: list[Sample]


async def _channel(settings: Settings, slug: str, samples: list[Sample]) -> uuid.UUID:
    """Dealers, stores and guides; every bottle in a store's custody, sold by its guide."""
    from zhongtai.channel import rules as channel_rules
    from zhongtai.channel import service as channel
    from zhongtai.channel.scan_models import HOLDER_SOLD, Custody
    from zhongtai.codes.models import Code
    from zhongtai.core.clock import utcnow
    from zhongtai.core.models import Tenant
    from zhongtai.core.runtime import Runtime

    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
            assert tenant is not None, "zhongtai demo made the brand"
        actor = servers.bench_actor(tenant.id)
        outlets: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []  # dealer, store, guide
        async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
            for d in range(DEALERS):
                dealer = await channel.do_create_dealer(
                    session,
                    actor,
                    runtime.crypto,
                    channel_rules.DealerDraft(code=f"BENCH-D{d}", name=f"Bench dealer {d}", region_codes=["310000"]),
                )
                for s in range(STORES_PER_DEALER):
                    store = await channel.do_create_store(
                        session,
                        actor,
                        runtime.crypto,
                        channel_rules.StoreDraft(
                            code=f"BENCH-S{d}-{s}",
                            name=f"Bench store {d}-{s}",
                            dealer_code=dealer.code,
                            latitude=SHANGHAI[0] + 0.01 * s,
                            longitude=SHANGHAI[1] + 0.01 * d,
                        ),
                    )
                    guide = await channel.do_create_guide(
                        session,
                        actor,
                        runtime.crypto,
                        store.id,
                        channel_rules.GuideDraft(name=f"Guide {d}-{s}", phone=f"1370{d:03d}{s:04d}"),
                    )
                    outlets.append((dealer.id, store.id, guide.id))
        serials = [s.serial for s in samples]
        now = utcnow()
        async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
            for start in range(0, len(serials), 5_000):
                rows = (
                    await session.execute(
                        select(Code.id, Code.lot_id).where(Code.serial.in_(serials[start : start + 5_000]))
                    )
                ).all()
                values = []
                for n, (code_id, lot_id) in enumerate(rows):
                    dealer_id, store_id, guide_id = outlets[(start + n) % len(outlets)]
                    values.append(
                        {
                            "code_id": code_id,
                            "tenant_id": tenant.id,
                            "lot_id": lot_id,
                            "dealer_id": dealer_id,
                            "holder": HOLDER_SOLD,
                            "store_id": store_id,
                            "guide_id": guide_id,
                            "received_at": now,
                            "shipped_at": now,
                            "updated_at": now,
                        }
                    )
                await session.execute(insert(Custody), values)
        return tenant.id
    finally:
        await runtime.stop()


async def _rules(settings: Settings, tenant_id: uuid.UUID) -> uuid.UUID:
    from zhongtai.core.clock import utcnow
    from zhongtai.core.db import Database
    from zhongtai.rewards import service

    db = Database(settings)
    try:
        actor = servers.bench_actor(tenant_id)
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            pool = await service.do_create_pool(
                session, actor, service.PoolDraft(code="BENCH-OPEN", name="开瓶红包", daily_cap_fen=POOL_FUNDING_FEN)
            )
            await service.do_fund_pool(session, actor, pool.id, POOL_FUNDING_FEN, idempotency_key="bench-fund")
            now = utcnow()
            tiers = {"type": "tiers", "tiers": [{"amount_fen": 88, "weight": 70}, {"amount_fen": 888, "weight": 1}]}
            for role, amount in (("consumer", None), ("store", 50), ("guide", 30), ("dealer", 20)):
                await service.do_create_rule(
                    session,
                    actor,
                    service.RuleDraft(
                        name=f"bench open {role}",
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
        return pool.id
    finally:
        await db.dispose()


async def _counts(settings: Settings, tenant_id: uuid.UUID) -> tuple[int, int]:
    """(PIN-check scan rows, reward grants) the database holds for the brand."""
    from zhongtai.authenticity.models import KIND_PIN_OK, Scan
    from zhongtai.core.db import Database
    from zhongtai.rewards.models import RewardGrant

    db = Database(settings)
    try:
        async with db.read_only(tenant_id=tenant_id) as session:
            scans = await session.scalar(select(func.count()).select_from(Scan).where(Scan.kind == KIND_PIN_OK))
            grants = await session.scalar(select(func.count()).select_from(RewardGrant))
        return int(scans or 0), int(grants or 0)
    finally:
        await db.dispose()


async def _books(settings: Settings, tenant_id: uuid.UUID, pool_id: uuid.UUID) -> dict[str, Any]:
    from zhongtai.core.db import Database
    from zhongtai.ledger import service as ledger
    from zhongtai.rewards import service
    from zhongtai.rewards.models import RewardGrant

    db = Database(settings)
    try:
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            report = await ledger.recompute_balances(session)
            by_role = dict(
                (
                    await session.execute(
                        select(RewardGrant.role, func.count())
                        .where(RewardGrant.status == "paid")
                        .group_by(RewardGrant.role)
                    )
                ).all()
            )
            granted = await session.scalar(select(func.coalesce(func.sum(RewardGrant.amount_fen), 0)))
            account = await ledger.account_by_key(session, service.pool_key(pool_id))
            assert account is not None
            pool_balance = await ledger.balance_of(session, account.id)
        return {
            "books_balance": report.ok,
            "paid_grants_by_role": {role: int(n) for role, n in sorted(by_role.items())},
            "granted_fen": int(granted or 0),
            "pool_balance_matches": pool_balance == POOL_FUNDING_FEN - int(granted or 0),
        }
    finally:
        await db.dispose()


def _verify_requests(port: int, samples: Sequence[Sample], phone_prefix: str) -> list[bytes]:
    return [
        loadgen.http_request(
            "POST",
            "/api/v1/authenticity/verify",
            port,
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Cookie": f"zt_cid={phone_prefix}-{n}",
            },
            json.dumps(
                {"code": s.serial, "pin": s.pin, "latitude": SHANGHAI[0], "longitude": SHANGHAI[1], "accuracy": 30}
            ).encode(),
        )
        for n, s in enumerate(samples)
    ]


def _phase(
    label: str,
    settings: Settings,
    tenant_id: uuid.UUID,
    server: servers.RunningServer,
    requests: list[bytes],
    *,
    connections: int,
    want_scans: int,
    want_grants: int,
) -> dict[str, Any]:
    """Send every request once, then wait until the database holds what they must leave behind."""
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    result = asyncio.run(loadgen.run_each_once(requests, port=server.port, connections=connections))
    answered = time.perf_counter()
    with Progress(
        TextColumn(f"  {label}: persisted"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(), console=progress, transient=True,
    ) as bar:  # fmt: skip
        target = want_grants if want_grants else want_scans
        task = bar.add_task(label, total=target)
        while True:
            scans, grants = asyncio.run(_counts(settings, tenant_id))
            bar.update(task, completed=min(target, grants if want_grants else scans))
            if scans >= want_scans and grants >= want_grants:
                break
            if time.perf_counter() - answered > PERSIST_TIMEOUT_S:
                raise RuntimeError(
                    f"{label}: after {PERSIST_TIMEOUT_S:.0f} s the database holds {scans} scans and {grants} grants,"
                    f" expected {want_scans} and {want_grants}"
                )
            time.sleep(0.05)
    persisted = time.perf_counter()
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / max(1, result.requests)
    opens = len(requests)
    figures = {
        "requests": result.requests,
        "failed_requests": result.failed,
        "http_requests_per_s": round(result.requests_per_s, 1),
        "http_p50_ms": round(result.percentile_ms(0.5), 2),
        "http_p99_ms": round(result.percentile_ms(0.99), 2),
        "persisted_s": round(persisted - started, 3),
        "opens_per_s": round(opens / (persisted - started), 1),
        "server_cpu_ms_per_open": round(cpu_ms, 3),
        "scans_stored": scans,
        "grants_stored": grants,
    }
    progress.print(
        f"  {label:9} HTTP {figures['http_requests_per_s']:8.0f} req/s  p99 {figures['http_p99_ms']:7.2f} ms"
        f"   persisted {figures['opens_per_s']:8.0f} opens/s   failed {result.failed}"
    )
    return figures


def _run_tier(tier: servers.Tier, opens: int, connections: int, workers: int) -> dict[str, Any]:
    progress.print(f"[bold]{tier.name} tier[/bold]: demo data, {2 * opens:,} bottles in the channel")
    tier = replace(tier, env={**tier.env, "ZT_SCAN_REQUESTS_PER_MINUTE": str(10**9)})
    servers.load_demo(tier)
    slug = json.loads((tier.data_dir / "demo-credentials.json").read_text())["tenant"]["slug"]
    settings = tier_settings(tier)
    samples = asyncio.run(add_codes(settings, slug, 2 * opens))
    tenant_id = asyncio.run(_channel(settings, slug, samples))
    brand = _Brand(tenant_id, samples[:opens], samples[opens:])
    scans_before, grants_before = asyncio.run(_counts(settings, tenant_id))
    assert grants_before == 0
    with servers.serve(tier, APP_FACTORY, label=f"{tier.name}-app", workers=workers) as app:
        # a short warm-up on codes outside both phases would verify them: warm up on the page instead
        asyncio.run(
            loadgen.run_requests(
                [loadgen.http_request("GET", "/healthz", app.port, {})], port=app.port, connections=4, seconds=0.5
            )
        )
        plain = _phase(
            "plain",
            settings,
            tenant_id,
            app,
            _verify_requests(app.port, brand.plain, "plain"),
            connections=connections,
            want_scans=scans_before + opens,
            want_grants=0,
        )
        pool_id = asyncio.run(_rules(settings, tenant_id))
        rewarded = _phase(
            "rewarded",
            settings,
            tenant_id,
            app,
            _verify_requests(app.port, brand.rewarded, "rewarded"),
            connections=connections,
            want_scans=scans_before + 2 * opens,
            want_grants=4 * opens,
        )
    books = asyncio.run(_books(settings, tenant_id, pool_id))
    out: dict[str, Any] = {f"plain_{k}": v for k, v in plain.items()}
    out |= {f"rewarded_{k}": v for k, v in rewarded.items()}
    out |= {
        "plain_opens_per_s": plain["opens_per_s"],
        "rewards_per_s": round(4 * rewarded["opens_per_s"], 1),
        "rewarded_opens_per_s": rewarded["opens_per_s"],
        "rewarded_to_plain_ratio": round(rewarded["opens_per_s"] / plain["opens_per_s"], 3)
        if plain["opens_per_s"]
        else None,
        "grants_expected": 4 * opens,
        **books,
    }
    return out


@benchmark("channel", "consumer open-scans paying 4 parties over HTTP (rewards/s beside plain opens/s); 10M recompute")
def run_channel_benchmark(
    seconds: float = 5.0,
    connections: int = 32,
    *,
    opens: int | None = None,
    ledger_entries: int | None = None,
    tiers: Sequence[str] | None = None,
    workers: int = 2,
    **_ignored: Any,
) -> dict[str, Any]:
    """`seconds` is unused (each phase sends its N opens once); the postgres tier's server runs
    `workers` granian processes, the embedded one a single process (SQLite has one writer)."""
    opens = opens if opens is not None else opens_from_env()
    entries = ledger_entries if ledger_entries is not None else ledger_entries_from_env()
    wanted = list(tiers) if tiers is not None else list(TIERS)
    skipped: dict[str, str] = {}
    if "postgres" in wanted and not servers.services_answer():
        wanted.remove("postgres")
        skipped["postgres"] = "PostgreSQL or Redis does not answer"
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL or Redis does not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for name in wanted:
        tier_context = servers.embedded_tier() if name == "embedded" else servers.postgres_tier()
        with tier_context as tier:
            measured = _run_tier(tier, opens, connections, workers if name == "postgres" else 1)
        figures |= {f"{name}_{k}": v for k, v in measured.items()}
    if "postgres" in wanted and entries > 0:
        from zhongtai.bench.ledger import measure_recompute

        progress.print(f"[bold]postgres ledger recompute[/bold]: {entries:,} entries")
        with servers.migrated_database("postgres", "channel-ledger") as settings:
            recomputed = asyncio.run(measure_recompute(settings, entries))
        figures |= {f"postgres_ledger_{k}": v for k, v in recomputed.items()}
    import granian

    return {
        "load_generator": "zhongtai asyncio client (1 process, closed loop, each code verified once)",
        "connections": connections,
        "opens": opens,
        "ledger_entries": entries if "postgres" in wanted else 0,
        "server": f"granian {granian.__version__} (asgi, access log off)",
        "workers": {name: workers if name == "postgres" else 1 for name in wanted},
        "tiers": wanted,
        **({"skipped_tiers": skipped} if skipped else {}),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
