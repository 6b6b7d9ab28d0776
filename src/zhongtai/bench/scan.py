"""`zhongtai bench scan`: the consumer's scan over real HTTP, per tier, beside a bare baseline.

Per tier (embedded: SQLite, no Redis; postgres: PostgreSQL + Redis when they answer) the benchmark runs
`zhongtai demo`, adds N commissioned item codes to the demo brand (not measured), starts granian with
one worker for the platform and one for a bare FastAPI app, and measures with keep-alive connections:

- `POST /api/v1/authenticity/verify` with the right PIN and a WGS-84 location, the codes in turn (the
  whole path: per-address request limit, code lookup, PIN attempt limits, PIN check, verdict, scan row,
  summary upsert, commit);
- `GET` of the codes' Digital Links as a phone browser asks for them (the H5 page: lookup, view row,
  summary upsert, template);
- the baseline's `GET /healthz` (framework only) and `GET /select` (one `SELECT 1` on the same database).

The per-address request limit is raised for the run (all load comes from 127.0.0.1); the limiter is
still called on every request. The load generator shares the machine's cores with the servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from sqlalchemy import select

from zhongtai.bench import loadgen, servers
from zhongtai.bench.registry import benchmark
from zhongtai.core.settings import Settings

APP_FACTORY = "zhongtai.app:app_factory"
BASELINE_FACTORY = "zhongtai.bench.baseline:baseline_factory"
TIERS = ("embedded", "postgres")
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36"
SHANGHAI = (31.2304, 121.4737)

progress = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True)
class Sample:
    path: str
    serial: str
    pin: str


async def add_codes(settings: Settings, slug: str, count: int) -> list[Sample]:
    """N commissioned item codes of the demo product, with their PINs."""
    from zhongtai.catalog.models import Product
    from zhongtai.codes import custody, generation
    from zhongtai.codes import service as codes
    from zhongtai.codes.models import Code, CodeBatch
    from zhongtai.codes.rules import pin_for
    from zhongtai.core.models import Tenant
    from zhongtai.core.runtime import Runtime

    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
            assert tenant is not None, "zhongtai demo made the brand"
        actor = servers.bench_actor(tenant.id)
        async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
            product = await session.scalar(select(Product).order_by(Product.created_at).limit(1))
            assert product is not None, "zhongtai demo made a product"
            batch, _ = await codes.do_request_batch(
                session,
                runtime.crypto,
                actor,
                codes.BatchRequest(product.id, "item", count, "bench scan"),
                public_url=settings.public_url,
            )
            gtin = product.gtin
        await generation.generate_batch(runtime.db, tenant.id, batch.id)
        async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
            await custody.do_commission(session, custody.StepContext(actor), batch_id=batch.id)
            row = await session.scalar(select(CodeBatch).where(CodeBatch.id == batch.id))
            assert row is not None
            key = await codes.pin_key(session, runtime.crypto, int(row.pin_key_version or 1))
            serials = list(
                await session.scalars(
                    select(Code.serial)
                    .where(Code.id >= row.first_code_id, Code.id < row.first_code_id + count)
                    .order_by(Code.id)
                )
            )
        return [Sample(f"/01/{gtin}/21/{serial}", serial, pin_for(key, serial)) for serial in serials]
    finally:
        await runtime.stop()


def tier_settings(tier: servers.Tier) -> Settings:
    return Settings(
        env="development",
        data_dir=tier.data_dir,
        database_url=tier.env.get("ZT_DATABASE_URL"),
        redis_url=None,
        in_process_worker=False,
        log_level="WARNING",
        log_json=False,
    )


class _Phases:
    def __init__(self, *, seconds: float, connections: int, warmup: float) -> None:
        self.seconds = seconds
        self.connections = connections
        self.warmup = warmup
        self.figures: dict[str, Any] = {}

    def measure(self, key: str, server: servers.RunningServer, requests: Sequence[bytes]) -> tuple[float, float]:
        if self.warmup > 0:
            asyncio.run(
                loadgen.run_requests(requests, port=server.port, connections=self.connections, seconds=self.warmup)
            )
        cpu_before = server.cpu_seconds()
        result = asyncio.run(
            loadgen.run_requests(requests, port=server.port, connections=self.connections, seconds=self.seconds)
        )
        cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / result.requests if result.requests else 0.0
        rate, p99 = result.requests_per_s, result.percentile_ms(0.99)
        self.figures.update(
            {
                f"{key}_requests_per_s": round(rate, 1),
                f"{key}_p50_ms": round(result.percentile_ms(0.5), 3),
                f"{key}_p99_ms": round(p99, 3),
                f"{key}_requests": result.requests,
                f"{key}_failed_requests": result.failed,
                f"{key}_server_cpu_ms_per_request": round(cpu_ms, 3),
            }
        )
        progress.print(
            f"  {key:30} {rate:8.0f} req/s   p50 {result.percentile_ms(0.5):7.2f} ms   p99 {p99:7.2f} ms"
            f"   server CPU {cpu_ms:6.3f} ms/req   failed {result.failed}"
        )
        return rate, p99

    def ratio(self, key: str, app_rate: float, baseline_rate: float) -> None:
        self.figures[key] = round(app_rate / baseline_rate, 3) if baseline_rate > 0 else None


def _run_tier(phases: _Phases, tier: servers.Tier, codes: int, workers: int = 1) -> None:
    progress.print(f"[bold]{tier.name} tier[/bold]: demo data and {codes:,} commissioned codes")
    tier = replace(tier, env={**tier.env, "ZT_SCAN_REQUESTS_PER_MINUTE": str(10**9)})
    servers.load_demo(tier)
    slug = json.loads((tier.data_dir / "demo-credentials.json").read_text())["tenant"]["slug"]
    samples = asyncio.run(add_codes(tier_settings(tier), slug, codes))
    with (
        servers.serve(tier, BASELINE_FACTORY, label=f"{tier.name}-baseline", workers=workers) as baseline,
        servers.serve(tier, APP_FACTORY, label=f"{tier.name}-app", workers=workers) as app,
    ):
        port = app.port
        verify = [
            loadgen.http_request(
                "POST",
                "/api/v1/authenticity/verify",
                port,
                {"Content-Type": "application/json", "Accept": "application/json"},
                json.dumps(
                    {"code": s.serial, "pin": s.pin, "latitude": SHANGHAI[0], "longitude": SHANGHAI[1], "accuracy": 30}
                ).encode(),
            )
            for s in samples
        ]
        pages = [
            loadgen.http_request("GET", s.path, port, {"Accept": "text/html", "Accept-Language": "zh-CN"})
            for s in samples
        ]
        healthz = [loadgen.http_request("GET", "/healthz", baseline.port, {})]
        select_one = [loadgen.http_request("GET", "/select", baseline.port, {})]
        bare, _ = phases.measure(f"{tier.name}_baseline_healthz", baseline, healthz)
        verified, _ = phases.measure(f"{tier.name}_verify", app, verify)
        phases.ratio(f"{tier.name}_verify_ratio_to_baseline_healthz", verified, bare)
        selected, _ = phases.measure(f"{tier.name}_baseline_select", baseline, select_one)
        phases.ratio(f"{tier.name}_verify_ratio_to_baseline_select", verified, selected)
        page, _ = phases.measure(f"{tier.name}_page", app, pages)
        phases.ratio(f"{tier.name}_page_ratio_to_baseline_healthz", page, bare)
        phases.ratio(f"{tier.name}_page_ratio_to_baseline_select", page, selected)


@benchmark("scan", "consumer PIN verifications/s and H5 scan pages/s over HTTP, per tier, vs bare FastAPI")
def run_scan_benchmark(
    seconds: float = 5.0,
    connections: int = 32,
    *,
    codes: int = 2000,
    tiers: Sequence[str] | None = None,
    warmup_seconds: float = 1.0,
    workers: int = 2,
) -> dict[str, Any]:
    """Measure every tier that can run here (or `tiers`). The postgres tier's servers (platform and
    baseline alike) run `workers` granian processes — its limits and hot state live in Redis; the
    embedded tier keeps one (its limiter is in-process and SQLite has one writer)."""
    wanted = list(tiers) if tiers is not None else list(TIERS)
    skipped: dict[str, str] = {}
    if "postgres" in wanted and not servers.services_answer():
        wanted.remove("postgres")
        skipped["postgres"] = "PostgreSQL or Redis does not answer"
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL or Redis does not answer")
    phases = _Phases(seconds=seconds, connections=connections, warmup=warmup_seconds)
    load_at_start = os.getloadavg()[0]
    for name in wanted:
        tier_context = servers.embedded_tier() if name == "embedded" else servers.postgres_tier()
        with tier_context as tier:
            _run_tier(phases, tier, codes, workers if name == "postgres" else 1)
    import granian

    return {
        "load_generator": "zhongtai asyncio client (1 process, closed loop, codes in turn)",
        "connections": connections,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "codes": codes,
        "server": f"granian {granian.__version__} (asgi, access log off)",
        "workers": {name: workers if name == "postgres" else 1 for name in wanted},
        "tiers": wanted,
        **({"skipped_tiers": skipped} if skipped else {}),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "run_id": uuid.uuid4().hex[:8],
        **phases.figures,
    }
