"""`zhongtai bench members` — identity resolution, segments and points earning at a brand's scale.

Identity resolution (per tier, PostgreSQL by default): N identifier links (default 10,000,000) over
N / 2 people, 20 % of them seen in two channels. A person seen once is one record with a verified phone
and a verified channel id (unionid, Alipay id or JD pin); a person seen twice is a POS record with the
phone and a marketplace record with the hashed phone (the same keyed hash), the second file loaded
after the first. `bulk.resolve_links` resolves them in one unit of work, then the same links are
loaded again (idempotent: nothing created). Limit of the same run: a plain in-memory union-find (Python
dicts, path halving) over the same links, no database.

Segments (in memory, tier-free): five-condition CEL expression over M members' facts (default
10,000,000) generated as numpy columns, dictionary-encoded strings: evaluation of the compiled
expression, bitmap materialisation, and an incremental patch after C members changed (default
100,000); the patched bitmap is compared with a full re-evaluation and the count with a brute force.
On PostgreSQL the resolved members also get facts rows (COPY), and loading them column-wise
(`facts.load_columns`) and a full `segments.evaluate_all` are timed, beside loading ORM rows.

Points (per tier): E members (default 4,000) each earn once through `points.do_earn` — a ledger entry
and a lot with its exactly-once key — 8 concurrent units of work; then each earns once more through
`points.do_earn_many`, 500 earnings per unit of work, 8 concurrent (each batch replayed once more adds
nothing); baseline of the same run: bare units of work (BEGIN, SELECT 1, COMMIT), one at a time and
8 concurrent.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from pyroaring import BitMap
from rich.console import Console
from sqlalchemy import func, select, text

from zhongtai.bench import servers
from zhongtai.bench.registry import benchmark
from zhongtai.core import accounts
from zhongtai.core.clock import utcnow
from zhongtai.core.db import Database
from zhongtai.core.ids import new_id
from zhongtai.core.settings import Settings
from zhongtai.ledger import service as ledger
from zhongtai.members import bulk, expressions, points, segments
from zhongtai.members import facts as facts_module
from zhongtai.members import oneid_rules as r
from zhongtai.members.bulk import Link
from zhongtai.members.loyalty_models import PointsLot, PointsRule
from zhongtai.members.models import Member, MemberIdentifier
from zhongtai.members.segment_models import MemberFacts

progress = Console(stderr=True)
TIERS = ("postgres",)
CONCURRENCY = 8
EARN_BATCH = 500  # earnings per `points.do_earn_many` in the batched measurement
SEGMENT = (
    'city in ["上海", "杭州"] && stage == "active" && monetary_score >= 4 && spend_fen > 50000 && "tmall" in channels'
)
CITIES = ("上海", "北京", "杭州", "广州", "深圳", "成都", "武汉", "南京", "西安", "重庆")
STAGES = ("new", "active", "at_risk", "dormant", "churned", "won_back")
SECOND_IDS = ("wechat_unionid", "alipay_user_id", "jd_pin")


async def new_brand(db: Database) -> uuid.UUID:
    """A brand of its own per measurement (the ledger benchmark's helper is not imported: importing
    it first would load the registry half-way through this module)."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work(all_tenants=True) as session:
        tenant, _ = await accounts.do_create_tenant(
            session, slug=slug, name="Bench brand", owner_email=f"owner@{slug}.example", owner_password=uuid.uuid4().hex
        )
    return tenant.id


def _env(name: str, default: int) -> int:
    return int(os.environ.get(f"ZT_BENCH_MEMBERS_{name}", str(default)))


# ------------------------------------------------------------------------------ identity resolution


def generated_links(count: int) -> list[Link]:
    """`count` links over `count // 2` people: 80 % one record of two identifiers, 20 % two records of
    one (a phone at the POS, its hash at a marketplace), the second records last."""
    people = count // 2
    multi = people // 5
    links: list[Link] = []
    later: list[Link] = []
    for p in range(people):
        phone = f"{p:064x}"
        if p < multi:
            links.append(Link(f"pos:{p}", "phone", phone))
            later.append(Link(f"mkt:{p}", "marketplace_phone_hash", phone))
        else:
            links.append(Link(f"app:{p}", "phone", phone))
            links.append(Link(f"app:{p}", SECOND_IDS[p % 3], f"{p:063x}s"))
    return links + later


def plain_union_find(links: list[Link]) -> int:
    """Components of the records over their values: the in-memory limit the resolver is read against."""
    ids: dict[object, int] = {}
    parent: list[int] = []

    def node(key: object) -> int:
        found = ids.get(key)
        if found is None:
            found = ids[key] = len(parent)
            parent.append(found)
        return found

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    records: set[int] = set()
    for link in links:
        record = node(link.record)
        records.add(record)
        a, b = root(record), root(node((r.cap_key(link.type), link.value_hash)))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return len({root(x) for x in records})


async def _resolve(db: Database, tenant_id: uuid.UUID, links: list[Link]) -> tuple[float, bulk.BulkReport]:
    start = time.perf_counter()
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        report = await bulk.resolve_links(session, links, source="import")
    return time.perf_counter() - start, report


async def _counts(db: Database, tenant_id: uuid.UUID) -> tuple[int, int]:
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        members = await session.scalar(select(func.count()).select_from(Member))
        identifiers = await session.scalar(select(func.count()).select_from(MemberIdentifier))
    return int(members or 0), int(identifiers or 0)


async def write_floor(db: Database, members: int, identifiers: int) -> dict[str, Any]:
    """The floor of the write on PostgreSQL: `members` and `identifiers` rows shaped like the resolver's
    (a 64-character hash per identifier, UUIDs made client-side, a bulk-load source) sent with binary
    `COPY` straight into copies of the two tables with every index (`LIKE … INCLUDING ALL`; logged like
    the real ones, no foreign keys) in one transaction, nothing else. No resolver can write faster than
    this through these tables and indexes; the figure says how much of the budget the schema alone takes."""
    now = utcnow()
    tenant_id = uuid.uuid4()
    member_ids = [uuid.uuid4() for _ in range(members)]
    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        for table in ("zt_bench_floor_identifiers", "zt_bench_floor_members"):
            await driver.execute(f"DROP TABLE IF EXISTS {table}")
        await driver.execute("CREATE TABLE zt_bench_floor_members (LIKE members INCLUDING ALL)")
        await driver.execute("CREATE TABLE zt_bench_floor_identifiers (LIKE member_identifiers INCLUDING ALL)")
        try:
            started = time.perf_counter()
            async with driver.transaction():
                await driver.copy_records_to_table(
                    "zt_bench_floor_members",
                    records=((m, tenant_id, "active", None, "{}", now, now) for m in member_ids),
                    columns=["id", "tenant_id", "status", "merged_into_id", "profile", "created_at", "updated_at"],
                )
                members_s = time.perf_counter() - started
                await driver.copy_records_to_table(
                    "zt_bench_floor_identifiers",
                    records=(
                        (
                            uuid.uuid4(),
                            tenant_id,
                            member_ids[i % members],
                            "phone",
                            f"{i:064x}",
                            "13*******00",
                            True,
                            "import",
                            now,
                            now,
                        )
                        for i in range(identifiers)
                    ),
                    columns=[
                        "id",
                        "tenant_id",
                        "member_id",
                        "type",
                        "value_hash",
                        "value_masked",
                        "verified",
                        "source",
                        "first_seen_at",
                        "last_seen_at",
                    ],
                )
            total_s = time.perf_counter() - started
        finally:
            for table in ("zt_bench_floor_identifiers", "zt_bench_floor_members"):
                await driver.execute(f"DROP TABLE IF EXISTS {table}")
    return {
        "write_floor_s": round(total_s, 2),
        "write_floor_members_s": round(members_s, 2),
        "write_floor_identifiers_s": round(total_s - members_s, 2),
        "write_floor_rows_per_s": round((members + identifiers) / total_s),
    }


async def measure_identity(settings: Settings, links: list[Link], *, with_facts: bool) -> dict[str, Any]:
    db = Database(settings)
    try:
        tenant_id = await new_brand(db)
        progress.print(f"  resolving {len(links):,} links")
        first_s, first = await _resolve(db, tenant_id, links)
        progress.print(f"  resolved in {first_s:.1f} s {first.seconds}; loading them again")
        again_s, again = await _resolve(db, tenant_id, links)
        members, identifiers = await _counts(db, tenant_id)
        figures: dict[str, Any] = {
            "records": first.records,
            "resolve_s": round(first_s, 2),
            "resolve_links_per_s": round(len(links) / first_s),
            **{f"resolve_{k}_s": v for k, v in first.seconds.items()},
            "members_created": first.members_created,
            "identifiers_added": first.identifiers_added,
            "reload_s": round(again_s, 2),
            **{f"reload_{k}_s": v for k, v in again.seconds.items()},
            "reload_members_created": again.members_created,
            "reload_identifiers_added": again.identifiers_added,
            "reload_members_attached": again.members_attached,
            "members": members,
            "identifiers": identifiers,
        }
        if db.engine.dialect.name == "postgresql":
            progress.print(f"  the write's floor: {members:,} members and {identifiers:,} identifiers by COPY")
            figures.update(await write_floor(db, members, identifiers))
        if with_facts:
            figures.update(await _measure_loading(db, tenant_id))
        return figures
    finally:
        await db.dispose()


# ------------------------------------------------------------------------------ segments


def generated_columns(size: int, seed: int = 15) -> tuple[expressions.Columns, dict[str, np.ndarray[Any, Any]]]:
    """Facts of `size` members as the evaluation layer holds them, and the raw arrays for a brute force."""
    draw = np.random.default_rng(seed)
    raw: dict[str, np.ndarray[Any, Any]] = {
        "city": np.where(draw.random(size) < 0.05, -1, draw.integers(0, len(CITIES), size)).astype(np.int32),
        "stage": draw.integers(0, len(STAGES), size).astype(np.int32),
        "monetary_score": draw.integers(1, 6, size).astype(np.int64),
        "monetary_present": draw.random(size) < 0.9,
        "spend_fen": draw.integers(0, 200_000, size).astype(np.int64),
        "tmall": draw.random(size) < 0.3,
        "jd": draw.random(size) < 0.2,
    }
    return _columns_of(raw), raw


def _columns_of(raw: dict[str, np.ndarray[Any, Any]]) -> expressions.Columns:
    size = int(raw["city"].size)
    return expressions.Columns(
        size,
        {
            "city": raw["city"],
            "stage": raw["stage"],
            "monetary_score": raw["monetary_score"],
            "spend_fen": raw["spend_fen"],
        },
        {
            "city": raw["city"] >= 0,
            "stage": np.ones(size, dtype=np.bool_),
            "monetary_score": raw["monetary_present"],
            "spend_fen": np.ones(size, dtype=np.bool_),
        },
        {"channels": {"tmall": raw["tmall"], "jd": raw["jd"]}},
        {"city": {c: i for i, c in enumerate(CITIES)}, "stage": {s: i for i, s in enumerate(STAGES)}},
    )


def brute_force(raw: dict[str, np.ndarray[Any, Any]]) -> int:
    """The segment counted without the compiler, condition by condition."""
    wanted_cities = [CITIES.index("上海"), CITIES.index("杭州")]
    hits = (
        np.isin(raw["city"], wanted_cities)
        & (raw["stage"] == STAGES.index("active"))
        & raw["monetary_present"]
        & (raw["monetary_score"] >= 4)
        & (raw["spend_fen"] > 50_000)
        & raw["tmall"]
    )
    return int(hits.sum())


def _timed(run: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """The median of `repeat` runs (ms) and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2), result


def measure_segments(size: int, changes: int) -> dict[str, Any]:
    columns, raw = generated_columns(size)
    seqs = np.arange(1, size + 1, dtype=np.uint32)
    program = expressions.compile_expression(SEGMENT)
    evaluate_ms, hits = _timed(lambda: program.matches(columns))
    bitmap_ms, bitmap = _timed(lambda: segments.bitmap_from(seqs[hits]))
    counted = brute_force(raw)
    draw = np.random.default_rng(16)
    changed = np.sort(draw.choice(size, size=min(changes, size), replace=False))
    # The behaviour changes: spend, a Tmall purchase, the stage they move the member to.
    raw["spend_fen"][changed] += draw.integers(0, 100_000, changed.size)
    raw["tmall"][changed] |= draw.random(changed.size) < 0.5
    raw["stage"][changed] = STAGES.index("active")

    def patch() -> BitMap:
        subset = _columns_of({name: values[changed] for name, values in raw.items()})
        patched = BitMap(bitmap)
        patched.difference_update(segments.bitmap_from(seqs[changed]))
        patched |= segments.bitmap_from(seqs[changed][program.matches(subset)])
        return patched

    patch_ms, patched = _timed(patch)
    full = segments.bitmap_from(seqs[program.matches(_columns_of(raw))])
    return {
        "segment_expression": SEGMENT,
        "segment_members_evaluated": size,
        "segment_evaluate_ms": evaluate_ms,
        "segment_bitmap_ms": bitmap_ms,
        "segment_answer_ms": round(evaluate_ms + bitmap_ms, 2),
        "segment_members": len(bitmap),
        "segment_brute_force_members": counted,
        "segment_changes": int(changed.size),
        "segment_incremental_patch_ms": patch_ms,
        "segment_incremental_equals_full": patched == full,
        "segment_members_after_changes": len(patched),
        "segment_brute_force_members_after_changes": brute_force(raw),
    }


# ------------------------------------------------------------------------------ facts from the database


async def _write_facts(db: Database, tenant_id: uuid.UUID) -> int:
    """A facts row for every member of the brand (COPY), values drawn like `generated_columns`."""
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        ids = list(await session.scalars(select(Member.id).order_by(Member.id)))
        draw = np.random.default_rng(17)
        size = len(ids)
        city = draw.integers(0, len(CITIES), size).tolist()
        stage = draw.integers(0, len(STAGES), size).tolist()
        score = draw.integers(1, 6, size).tolist()
        spend = draw.integers(0, 200_000, size).tolist()
        tmall = (draw.random(size) < 0.3).tolist()
        now, today = utcnow(), facts_module.today()
        rows = [
            (new_id(), tenant_id, member_id, n + 1, True, CITIES[city[n]], STAGES[stage[n]], today, score[n], 0, 0,
             spend[n], '["tmall"]' if tmall[n] else "[]", "[]", now, now)
            for n, member_id in enumerate(ids)
        ]  # fmt: skip
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            "member_facts",
            records=rows,
            columns=[
                "id", "tenant_id", "member_id", "seq", "is_active", "city", "stage", "stage_since",
                "monetary_score", "scans", "purchases", "spend_fen", "channels", "tags", "joined_at", "updated_at",
            ],
        )  # fmt: skip
        await session.execute(text("ANALYZE member_facts"))
    return size


async def _measure_loading(db: Database, tenant_id: uuid.UUID) -> dict[str, Any]:
    rows = await _write_facts(db, tenant_id)
    program = expressions.compile_expression(SEGMENT)
    orm_rows = min(rows, _env("ORM_ROWS", 200_000))
    async with db.unit_of_work(tenant_id=tenant_id) as session:
        start = time.perf_counter()
        loaded = list(await session.scalars(select(MemberFacts).where(MemberFacts.is_active.is_(True)).limit(orm_rows)))
        orm_s = time.perf_counter() - start
        start = time.perf_counter()
        seqs, _columns = await facts_module.load_columns(session, program.facts, facts_module.today())
        columns_s = time.perf_counter() - start
        start = time.perf_counter()
        result = await segments.evaluate_all(session, program, facts_module.today())
        full_s = time.perf_counter() - start
    return {
        "facts_rows": rows,
        "facts_orm_rows_loaded": len(loaded),
        "facts_orm_rows_per_s": round(len(loaded) / orm_s) if orm_s else None,
        "facts_columns_loaded": int(seqs.size),
        "facts_columns_load_s": round(columns_s, 2),
        "facts_columns_rows_per_s": round(seqs.size / columns_s) if columns_s else None,
        "facts_full_refresh_s": round(full_s, 2),
        "facts_full_refresh_members": len(result.bitmap),
    }


# ------------------------------------------------------------------------------ points earning


async def _concurrently(work: list[Callable[[], Awaitable[None]]], concurrency: int) -> tuple[float, list[float]]:
    queue = list(reversed(work))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            job = queue.pop()
            start = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, sorted(latencies)


async def measure_earning(settings: Settings, earnings: int) -> dict[str, Any]:
    db = Database(settings)
    try:
        tenant_id = await new_brand(db)
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            await bulk.resolve_links(
                session, [Link(str(n), "jd_pin", f"{n:064x}") for n in range(earnings)], source="import"
            )
            member_ids = list(await session.scalars(select(Member.id).order_by(Member.id)))
            session.add(PointsRule(kind="review", points=10))
        rule = PointsRule(kind="review", points=10, expiry="next_year_end", expiry_days=None)

        async def bare() -> None:
            async with db.unit_of_work(tenant_id=tenant_id) as session:
                await session.execute(text("SELECT 1"))

        def earn(n: int) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                async with db.unit_of_work(tenant_id=tenant_id) as session:
                    await points.do_earn(session, member_ids[n], rule, source=f"bench:{n}", points=10)

            return run

        def earn_batch(first: int) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                requests = [
                    points.EarnRequest(member_ids[n], rule, f"batch:{n}", 10)
                    for n in range(first, min(first + EARN_BATCH, len(member_ids)))
                ]
                async with db.unit_of_work(tenant_id=tenant_id) as session:
                    await points.do_earn_many(session, requests)

            return run

        bare_count = max(50, earnings // 4)
        bare_s, _ = await _concurrently([bare] * bare_count, 1)
        bare8_s, _ = await _concurrently([bare] * bare_count, CONCURRENCY)
        earn_s, latencies = await _concurrently([earn(n) for n in range(len(member_ids))], CONCURRENCY)
        replayed = min(100, len(member_ids))
        await _concurrently([earn(n) for n in range(replayed)], CONCURRENCY)  # exactly once: adds nothing
        batches = [earn_batch(first) for first in range(0, len(member_ids), EARN_BATCH)]
        batch_s, _ = await _concurrently(batches, CONCURRENCY)
        await _concurrently(batches[:1], CONCURRENCY)  # a replayed batch: adds nothing
        async with db.unit_of_work(tenant_id=tenant_id) as session:
            lots = await session.scalar(select(func.count()).select_from(PointsLot))
            total = await session.scalar(select(func.coalesce(func.sum(PointsLot.amount), 0)))
            issued = await ledger.balance_of(session, await points.issued_account(session))
            books = await ledger.recompute_balances(session)
        return {
            "baseline_transactions_per_s": round(bare_count / bare_s, 1),
            f"baseline_concurrent{CONCURRENCY}_transactions_per_s": round(bare_count / bare8_s, 1),
            f"earn_concurrent{CONCURRENCY}_members_per_s": round(len(member_ids) / earn_s, 1),
            f"earn_batched{EARN_BATCH}_concurrent{CONCURRENCY}_members_per_s": round(len(member_ids) / batch_s, 1),
            "earn_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "earn_p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
            "earn_members": len(member_ids),
            "earn_replayed": replayed,
            "earn_lots": int(lots or 0),
            "earn_points_total": int(total or 0),
            "earn_issued_balance": issued,
            "earn_books_balance": books.ok,
        }
    finally:
        await db.dispose()


# ------------------------------------------------------------------------------ the benchmark


@benchmark("members", "OneID bulk resolution of 10M links, a 5-condition segment over 10M members, points earned/s")
def run_members_benchmark(
    links: int | None = None,
    facts: int | None = None,
    changes: int | None = None,
    earnings: int | None = None,
    *,
    tiers: list[str] | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    links = links if links is not None else _env("LINKS", 10_000_000)
    facts = facts if facts is not None else _env("FACTS", 10_000_000)
    changes = changes if changes is not None else _env("CHANGES", 100_000)
    earnings = earnings if earnings is not None else _env("EARNINGS", 4_000)
    wanted = list(tiers) if tiers is not None else list(TIERS)
    if "postgres" in wanted and not servers.postgres_answers():
        wanted = [t for t in wanted if t != "postgres"] or ["embedded"]
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL does not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {"links": links, "people": links // 2, "tiers": wanted, "concurrency": CONCURRENCY}
    generated = generated_links(links)
    progress.print(f"[bold]plain union-find[/bold] over {len(generated):,} links")
    start = time.perf_counter()
    figures["union_find_components"] = plain_union_find(generated)
    figures["union_find_s"] = round(time.perf_counter() - start, 2)
    for tier in wanted:
        progress.print(f"[bold]{tier} tier[/bold]: identity resolution, then {earnings:,} earnings")
        with servers.migrated_database(tier, "members") as settings:
            measured = asyncio.run(measure_identity(settings, generated, with_facts=tier == "postgres"))
        figures.update({f"{tier}_{k}": v for k, v in measured.items()})
        with servers.migrated_database(tier, "members-points") as settings:
            measured = asyncio.run(measure_earning(settings, earnings))
        figures.update({f"{tier}_{k}": v for k, v in measured.items()})
    del generated
    progress.print(f"[bold]segments[/bold]: {facts:,} members in memory, {changes:,} changes")
    figures.update(measure_segments(facts, changes))
    figures["load_average_1m_at_start"] = round(load_at_start, 2)
    figures["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return figures
