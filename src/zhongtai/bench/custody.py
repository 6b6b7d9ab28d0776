"""`zhongtai bench custody` — a production line's commissioning and packing through the REST API.

Per tier: N item codes and N / 10 case codes are generated (not measured), then the line's calls are
timed through the platform's ASGI application in-process (routing, validation, token authentication,
services, database; no network and no HTTP server): one `POST /api/v1/codes/commission` per batch
range of at most 100,000 codes, then the first half of the cases with one `POST /api/v1/codes/pack`
per case of ten items, as a packing station sends them, and the second half with one
`POST /api/v1/codes/pack-cases` per ten cases, as a line that closes several cases at once sends them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import select

from zhongtai.app import create_app
from zhongtai.bench import servers
from zhongtai.bench.registry import benchmark
from zhongtai.catalog import rules as catalog_rules
from zhongtai.catalog import service as catalog_service
from zhongtai.codes import custody, generation
from zhongtai.codes import service as codes_service
from zhongtai.codes.models import Code
from zhongtai.core import accounts
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings

TIERS = ("embedded", "postgres")
ITEMS_PER_CASE = 10
CASES_PER_REQUEST = 10
progress = Console(stderr=True)
COMMISSION_LIMIT = custody.MAX_CODES_PER_REQUEST


def items_from_env() -> int:
    return int(os.environ.get("ZT_BENCH_CUSTODY_ITEMS", "100000"))


async def _prepare(runtime: Runtime, items: int) -> tuple[str, list[str], list[str], dict[str, str]]:
    """A brand, a product of 10 items a case, generated item and case batches, and a line's token."""
    database, settings = runtime.db, runtime.settings
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work(all_tenants=True) as session:
        tenant, _owner = await accounts.do_create_tenant(
            session, slug=slug, name="Bench brand", owner_email=f"owner@{slug}.example", owner_password=uuid.uuid4().hex
        )
    actor = servers.bench_actor(tenant.id)
    async with database.unit_of_work(tenant_id=tenant.id) as session:
        product = await catalog_service.do_create_product(
            session,
            actor,
            catalog_rules.ProductDraft(gtin="06901234567892", name="Bench bottle", items_per_case=ITEMS_PER_CASE),
        )
        batches = []
        for level, quantity in (("item", items), ("case", items // ITEMS_PER_CASE)):
            batch, _ = await codes_service.do_request_batch(
                session,
                runtime.crypto,
                actor,
                codes_service.BatchRequest(product.id, level, quantity),
                public_url=settings.public_url,
            )
            batches.append(batch)
        issued = await accounts.do_create_token(
            session, actor, name="packing station", scopes=["codes.custody", "codes.read"]
        )
    for batch in batches:
        await generation.generate_batch(database, tenant.id, batch.id)
    serials: list[list[str]] = []
    async with database.unit_of_work(tenant_id=tenant.id) as session:
        for batch in batches:
            rows = await session.scalars(
                select(Code.serial)
                .where(Code.id >= batch.first_code_id, Code.id < batch.first_code_id + batch.quantity)
                .order_by(Code.id)
            )
            serials.append(list(rows))
    return str(batches[0].id), serials[0], serials[1], {"authorization": f"Bearer {issued.secret}"}


async def _measure(settings: Settings, items: int) -> dict[str, Any]:
    runtime = Runtime(settings)
    try:
        batch_id, item_serials, case_serials, auth = await _prepare(runtime, items)
        app = create_app(runtime=runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            # Commission the cases first (not measured), then the items by batch ranges.
            for start in range(0, len(case_serials), 1000):
                done = await client.post(
                    "/api/v1/codes/commission", json={"codes": case_serials[start : start + 1000]}, headers=auth
                )
                done.raise_for_status()
            started = time.perf_counter()
            for first in range(1, items + 1, COMMISSION_LIMIT):
                last = min(items, first + COMMISSION_LIMIT - 1)
                done = await client.post(
                    "/api/v1/codes/commission",
                    json={"batch_id": batch_id, "from_index": first, "to_index": last},
                    headers=auth,
                )
                done.raise_for_status()
            commission_seconds = time.perf_counter() - started
            half = len(case_serials) // 2
            latencies: list[float] = []
            started = time.perf_counter()
            for case_index, case in enumerate(case_serials[:half]):
                children = item_serials[case_index * ITEMS_PER_CASE : (case_index + 1) * ITEMS_PER_CASE]
                sent = time.perf_counter()
                packed = await client.post(
                    "/api/v1/codes/pack", json={"parent": case, "children": children}, headers=auth
                )
                latencies.append(time.perf_counter() - sent)
                packed.raise_for_status()
                if packed.json()["contents"] != ITEMS_PER_CASE:
                    raise RuntimeError(f"case {case} holds {packed.json()['contents']} items")
            pack_seconds = time.perf_counter() - started
            many_latencies: list[float] = []
            started = time.perf_counter()
            for first in range(half, len(case_serials), CASES_PER_REQUEST):
                body = {
                    "cases": [
                        {
                            "parent": case_serials[i],
                            "children": item_serials[i * ITEMS_PER_CASE : (i + 1) * ITEMS_PER_CASE],
                        }
                        for i in range(first, min(first + CASES_PER_REQUEST, len(case_serials)))
                    ]
                }
                sent = time.perf_counter()
                packed = await client.post("/api/v1/codes/pack-cases", json=body, headers=auth)
                many_latencies.append(time.perf_counter() - sent)
                packed.raise_for_status()
                if any(c["contents"] != ITEMS_PER_CASE for c in packed.json()["cases"]):
                    raise RuntimeError(f"a case of the request at case {first} does not hold {ITEMS_PER_CASE} items")
            pack_many_seconds = time.perf_counter() - started
        single_items = half * ITEMS_PER_CASE
        many_items = (len(case_serials) - half) * ITEMS_PER_CASE
        latencies.sort()
        many_latencies.sort()
        return {
            "commission_items_per_s": round(items / commission_seconds),
            "commission_seconds": round(commission_seconds, 2),
            "pack_items_per_s": round(single_items / pack_seconds),
            "pack_requests_per_s": round(half / pack_seconds),
            "pack_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "pack_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 2),
            "pack_items": single_items,
            "pack_cases_items_per_s": round(many_items / pack_many_seconds),
            "pack_cases_requests_per_s": round(len(many_latencies) / pack_many_seconds),
            "pack_cases_per_request": CASES_PER_REQUEST,
            "pack_cases_p50_ms": round(statistics.median(many_latencies) * 1000, 2),
            "pack_cases_items": many_items,
            "packed_items": single_items + many_items,
            "commission_plus_pack_items_per_s": round(
                items / (commission_seconds + pack_seconds * items / single_items)
            ),
        }
    finally:
        await runtime.stop()


@benchmark("custody", "commission N items and pack them into N/10 cases through the REST API, per tier")
def run_custody_benchmark(
    items: int | None = None, *, tiers: Sequence[str] | None = None, **_ignored: Any
) -> dict[str, Any]:
    quantity = items if items is not None else items_from_env()
    if quantity < ITEMS_PER_CASE or quantity % ITEMS_PER_CASE:
        raise ValueError(f"items must be a positive multiple of {ITEMS_PER_CASE}")
    wanted = list(tiers) if tiers is not None else list(TIERS)
    if "postgres" in wanted and not servers.postgres_answers():
        wanted.remove("postgres")
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL does not answer")
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for tier in wanted:
        progress.print(
            f"[bold]{tier} tier[/bold]: commission {quantity:,} items, pack them into {quantity // 10:,} cases"
        )
        with servers.migrated_database(tier, "custody") as settings:
            measured = asyncio.run(_measure(settings, quantity))
        figures.update({f"{tier}_{key}": value for key, value in measured.items()})
        progress.print(
            f"  commission {measured['commission_items_per_s']:,} items/s; "
            f"pack {measured['pack_items_per_s']:,} items/s "
            f"({measured['pack_requests_per_s']:,} cases/s, p95 {measured['pack_p95_ms']} ms); "
            f"pack-cases {measured['pack_cases_items_per_s']:,} items/s ({CASES_PER_REQUEST} cases a request)"
        )
    return {
        "items": quantity,
        "items_per_case": ITEMS_PER_CASE,
        "tiers": wanted,
        "transport": "in-process ASGI (no network, no HTTP server)",
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
