"""`zhongtai bench flashsale`: a flash sale over real HTTP on PostgreSQL + Redis, load generator included.

One run, on this machine's cores shared by everything:

1. **baseline** — a bare ASGI endpoint that only runs the gate's Lua script (`flashsale_baseline`), under
   the same granian settings: `baseline_orders_per_s`.
2. **the sale** — the platform (`zhongtai.app`, granian with `workers` processes, the persister as a
   separate `zhongtai flashsale worker` process) sells `stock` units to
   `1.2 × stock` distinct members, each with their own sale pass, as fast as the connections go:
   `accepted_orders_per_s` is the accepted buys over the time until the last one was accepted. Then
   the same connections keep buying for `seconds` after the sell-out: `sold_out_answers_per_s`.
   `oversold` = accepted − stock (and orders in PostgreSQL − stock), `lost` = accepted references not in
   PostgreSQL's `sales_orders` within 10 s of the sale's end (when the last unit was accepted);
   `never_persisted` = those still missing after 120 s (late is not lost).
3. **the naive design** — the same endpoint with `ZT_FLASHSALE_GATE=database`: one conditional UPDATE
   of the sale's stock row in PostgreSQL (plus the member's count and the purchase) per buy, in one
   transaction: `naive_orders_per_s`.

The load generator is a closed-loop asyncio client in this process (one request per connection in
flight), sending each member's request once; it reads every answer and keeps the references.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import func, select

from zhongtai.bench import servers
from zhongtai.bench.loadgen import LOOPBACK
from zhongtai.bench.registry import benchmark
from zhongtai.core.settings import Settings

APP_FACTORY = "zhongtai.app:app_factory"
BASELINE_FACTORY = "zhongtai.bench.flashsale_baseline:baseline_factory"
LOST_AFTER_SECONDS = 10.0
LATE_WAIT_SECONDS = 120.0
TARGET_ACCEPTED_PER_S = 5136
TARGET_SOLD_OUT_PER_S = 15000

progress = Console(stderr=True, soft_wrap=True)


@dataclass
class Tally:
    """What the load generator saw."""

    started: float = 0.0
    answers: Counter[str] = field(default_factory=Counter)
    references: list[str] = field(default_factory=list)
    last_accepted_at: float = 0.0
    first_sold_out_at: float = 0.0
    ended: float = 0.0
    sent: int = 0

    @property
    def accepted(self) -> int:
        return self.answers["accepted"]


class _Budget:
    def __init__(self, seconds: float, max_requests: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.left = max_requests

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


class _Buyer(asyncio.Protocol):
    """One keep-alive connection sending its requests in turn, reading each answer whole."""

    def __init__(self, requests: Sequence[bytes], budget: _Budget, tally: Tally, done: asyncio.Future[None]) -> None:
        self.requests = requests
        self.turn = 0
        self.budget = budget
        self.tally = tally
        self.done = done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._next()

    def _next(self) -> None:
        assert self.transport is not None
        if self.turn >= len(self.requests) or not self.budget.take():
            self.transport.close()
            return
        self.transport.write(self.requests[self.turn])
        self.turn += 1
        self.tally.sent += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            marker = head.find(b"\r\ncontent-length:")
            line_end = head.find(b"\r\n", marker + 2)
            length = int(head[marker + 17 : line_end if line_end >= 0 else len(head)])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(self.buffer[9:12])
            body = bytes(self.buffer[head_end + 4 : total])
            del self.buffer[:total]
            self._record(status, body)
            self._next()

    def _record(self, status: int, body: bytes) -> None:
        now = time.perf_counter()
        tally = self.tally
        if status == 202:
            tally.answers["accepted"] += 1
            tally.references.append(json.loads(body)["reference"])
            tally.last_accepted_at = now
        elif status == 409 and b'"sold_out"' in body:
            tally.answers["sold_out"] += 1
            if not tally.first_sold_out_at:
                tally.first_sold_out_at = now
        else:
            code = json.loads(body).get("error", str(status)) if body.startswith(b"{") else str(status)
            tally.answers[code] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _same(protocol: _Buyer) -> _Buyer:
    return protocol


async def drive(
    requests: Sequence[bytes], *, port: int, connections: int, seconds: float, tally: Tally | None = None
) -> Tally:
    """Send each request once (spread over the connections) or until `seconds` pass."""
    tally = tally or Tally()
    loop = asyncio.get_running_loop()
    budget = _Budget(seconds, len(requests))
    tally.started = tally.started or time.perf_counter()
    futures = []
    for index in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        protocol = _Buyer(requests[index::connections], budget, tally, done)
        await loop.create_connection(functools.partial(_same, protocol), LOOPBACK, port)
        futures.append(done)
    await asyncio.gather(*futures)
    tally.ended = time.perf_counter()
    return tally


def buy_request(port: int, path: str, token: str | None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "Content-Length: 0"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _settings(tier: servers.Tier) -> Settings:
    return Settings(
        env="development",
        data_dir=tier.data_dir,
        database_url=tier.env["ZT_DATABASE_URL"],
        redis_url=tier.env["ZT_REDIS_URL"],
        redis_prefix=tier.env["ZT_REDIS_PREFIX"],
        in_process_worker=False,
        log_level="WARNING",
        log_json=False,
    )


async def _make_sales(settings: Settings, slug: str, stocks: dict[str, int]) -> dict[str, uuid.UUID]:
    """Scheduled sales open now, one per name, of the demo brand's first product."""
    from zhongtai.catalog.models import Product
    from zhongtai.core.clock import utcnow
    from zhongtai.core.models import Tenant
    from zhongtai.core.runtime import Runtime
    from zhongtai.flashsale import rules, service
    from zhongtai.flashsale.fastpath import state_of

    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
            assert tenant is not None, "zhongtai demo made the brand"
        made = {}
        async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
            product = await session.scalar(select(Product).order_by(Product.created_at).limit(1))
            assert product is not None, "zhongtai demo made a product"
            for name, stock in stocks.items():
                sale = await service.do_create_sale(
                    session,
                    rules.SaleDraft(
                        title=f"bench {name}",
                        product_id=product.id,
                        price_fen=149_900,
                        stock=stock,
                        starts_at=utcnow() - timedelta(seconds=1),
                        ends_at=utcnow() + timedelta(hours=2),
                        requires_verification=False,  # checked when the pass is issued, not per buy
                    ),
                )
                if name != "baseline":
                    await service.do_schedule_sale(session, state_of(runtime), sale)
                made[name] = sale.id
        return made
    finally:
        await runtime.stop()


def _passes(settings: Settings, sale_id: uuid.UUID, count: int) -> list[str]:
    from zhongtai.core.crypto import Crypto
    from zhongtai.flashsale import rules

    key = rules.pass_key(Crypto(settings.secrets).secret_key)
    expires = int(time.time()) + 7200
    return [
        rules.issue_pass(key, sale_id=sale_id, consumer_id=uuid.uuid4(), expires_epoch=expires) for _ in range(count)
    ]


async def _persisted(settings: Settings, references: set[str]) -> tuple[int, int]:
    """(accepted references found among the flash-sale orders, all flash-sale orders)."""
    from zhongtai.core.db import Database
    from zhongtai.sales.models import SalesOrder

    database = Database(settings)
    try:
        async with database.unit_of_work(all_tenants=True) as session:
            refs = set(await session.scalars(select(SalesOrder.source_ref).where(SalesOrder.source == "flashsale")))
            total = await session.scalar(select(func.count()).select_from(SalesOrder))
        return len(references & refs), int(total or 0)
    finally:
        await database.dispose()


@contextmanager
def _persister(tier: servers.Tier) -> Iterator[subprocess.Popen[bytes]]:
    log = (tier.data_dir / "persister.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "zhongtai.cli.main", "flashsale", "worker"],
        env=tier.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


@benchmark("flashsale", "flash-sale buys over HTTP on PostgreSQL + Redis: accepted/s, sold-out answers/s, vs bare Lua")
def run_flashsale_benchmark(
    seconds: float = 5.0,
    connections: int = 128,
    *,
    stock: int = 40_000,
    workers: int = 2,
    naive_seconds: float | None = None,
) -> dict[str, Any]:
    if not servers.services_answer():
        raise RuntimeError("bench flashsale needs PostgreSQL and Redis (the production tier)")
    figures: dict[str, Any] = {}
    load_at_start = os.getloadavg()[0]
    with servers.postgres_tier() as made:
        progress.print("[bold]postgres tier[/bold]: demo data, sales")
        tier = replace(
            made,
            env={
                **made.env,
                "ZT_IN_PROCESS_WORKER": "false",
                "ZT_FLASHSALE_REQUESTS_PER_SECOND_PER_ADDRESS": str(10**9),  # all load comes from 127.0.0.1
            },
        )
        servers.load_demo(tier)
        slug = json.loads((tier.data_dir / "demo-credentials.json").read_text())["tenant"]["slug"]
        settings = _settings(tier)
        sales = asyncio.run(_make_sales(settings, slug, {"sale": stock, "naive": 10**6, "baseline": 10**6}))
        figures.update(_baseline_phase(tier, sales["baseline"], seconds, connections, workers))
        figures.update(_sale_phase(tier, settings, sales["sale"], stock, seconds, connections, workers))
        figures.update(_naive_phase(tier, settings, sales["naive"], naive_seconds or seconds, connections, workers))
    baseline = figures["baseline_orders_per_s"]
    figures["accepted_ratio_to_baseline"] = round(figures["accepted_orders_per_s"] / baseline, 3) if baseline else None
    naive = figures["naive_orders_per_s"]
    figures["accepted_ratio_to_naive"] = round(figures["accepted_orders_per_s"] / naive, 1) if naive else None
    import granian

    return {
        "accepted_orders_per_s": figures.pop("accepted_orders_per_s"),
        "sold_out_answers_per_s": figures.pop("sold_out_answers_per_s"),
        "oversold": figures.pop("oversold"),
        "lost": figures.pop("lost"),
        "baseline_orders_per_s": figures.pop("baseline_orders_per_s"),
        "naive_orders_per_s": figures.pop("naive_orders_per_s"),
        "targets": {
            "accepted_orders_per_s": TARGET_ACCEPTED_PER_S,
            "sold_out_answers_per_s": TARGET_SOLD_OUT_PER_S,
            "oversold": 0,
            "lost": 0,
        },
        **figures,
        "stock": stock,
        "buyers": int(stock * 1.2),
        "connections": connections,
        "seconds": seconds,
        "server": f"granian {granian.__version__} (asgi, {workers} workers, access log off)",
        "persister": "zhongtai flashsale worker, 1 process, during and after the sale",
        "load_generator": "zhongtai asyncio client (1 process, closed loop, one request per member)",
        "redis_appendonly": _redis_config("appendonly"),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "run_id": uuid.uuid4().hex[:8],
    }


def _redis_config(name: str) -> str:
    from redis import Redis

    client = Redis.from_url(servers.REDIS_URL)
    try:
        value = client.config_get(name).get(name)
        return str(value)
    except Exception:  # CONFIG may be disabled on a managed Redis
        return "unknown"
    finally:
        client.close()


def _baseline_phase(
    tier: servers.Tier, sale_id: uuid.UUID, seconds: float, connections: int, workers: int
) -> dict[str, Any]:
    from redis import Redis

    client = Redis.from_url(servers.REDIS_URL)
    try:
        from zhongtai.flashsale.gate import SaleKeys

        client.set(SaleKeys(tier.env["ZT_REDIS_PREFIX"], sale_id).stock, 10**9)
    finally:
        client.close()
    env_tier = replace(tier, env={**tier.env, "ZT_BENCH_FLASHSALE_SALE": str(sale_id)})
    with servers.serve(env_tier, BASELINE_FACTORY, label="flashsale-baseline", workers=workers) as server:
        requests = [buy_request(server.port, "/buy", None)] * 10_000_000
        asyncio.run(drive(requests[:2000], port=server.port, connections=connections, seconds=1))  # warm-up
        tally = asyncio.run(drive(requests, port=server.port, connections=connections, seconds=seconds))
    rate = _rate(tally.accepted, tally.ended - tally.started)
    progress.print(f"  baseline (bare Lua)        {rate:8.0f} orders/s   answers {dict(tally.answers)}")
    return {"baseline_orders_per_s": rate, "baseline_answers": dict(tally.answers)}


def _sale_phase(
    tier: servers.Tier,
    settings: Settings,
    sale_id: uuid.UUID,
    stock: int,
    seconds: float,
    connections: int,
    workers: int,
) -> dict[str, Any]:
    path = f"/api/v1/flashsale/sales/{sale_id}/buy"
    progress.print(f"  signing {int(stock * 1.2):,} sale passes")
    passes = _passes(settings, sale_id, int(stock * 1.2))
    with _persister(tier), servers.serve(tier, APP_FACTORY, label="flashsale-app", workers=workers) as server:
        requests = [buy_request(server.port, path, token) for token in passes]
        warm = [buy_request(server.port, f"/api/v1/flashsale/sales/{uuid.uuid4()}/buy", passes[0])] * 2000
        asyncio.run(drive(warm, port=server.port, connections=connections, seconds=1))  # warm-up: refusals only
        cpu_before = server.cpu_seconds()
        tally = asyncio.run(drive(requests, port=server.port, connections=connections, seconds=600))
        sell_seconds = tally.last_accepted_at - tally.started
        cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / max(1, tally.sent)
        sale_end = time.perf_counter()
        # After the sell-out: everyone keeps trying for `seconds`.
        sold_out = Tally()
        repeat = (requests * (1 + int(seconds * 40_000 / max(1, len(requests)))))[: int(seconds * 40_000)]
        asyncio.run(drive(repeat, port=server.port, connections=connections, seconds=seconds, tally=sold_out))
        references = set(tally.references)
        found, orders = asyncio.run(_persisted(settings, references))
        while found < len(references) and time.perf_counter() - sale_end < LOST_AFTER_SECONDS:
            time.sleep(0.2)
            found, orders = asyncio.run(_persisted(settings, references))
        persisted_after = time.perf_counter() - sale_end
        found_in_time = found
        # Late is not lost: wait longer for the rest, to tell the two apart.
        while found < len(references) and time.perf_counter() - sale_end < LATE_WAIT_SECONDS:
            time.sleep(0.5)
            found, orders = asyncio.run(_persisted(settings, references))
        all_after = time.perf_counter() - sale_end
    accepted_rate = _rate(tally.accepted, sell_seconds)
    sold_out_rate = _rate(sold_out.answers["sold_out"], sold_out.ended - sold_out.started)
    progress.print(
        f"  sale: {tally.accepted:,} accepted of {stock:,} in {sell_seconds:.2f} s = {accepted_rate:,.0f}/s; "
        f"sold-out answers {sold_out_rate:,.0f}/s; in PostgreSQL {found_in_time:,} after {persisted_after:.1f} s, "
        f"{found:,} after {all_after:.1f} s"
    )
    return {
        "accepted_orders_per_s": accepted_rate,
        "sold_out_answers_per_s": sold_out_rate,
        "oversold": max(0, tally.accepted - stock, orders - stock),
        "lost": len(references) - found_in_time,
        "never_persisted": len(references) - found,
        "accepted": tally.accepted,
        "sell_out_seconds": round(sell_seconds, 3),
        "sale_answers": dict(tally.answers),
        "sold_out_phase_answers": dict(sold_out.answers),
        "orders_in_postgres": orders,
        "in_postgres_within_10_s": found_in_time,
        "all_orders_in_postgres_after_s": round(all_after, 2) if found == len(references) else None,
        "server_cpu_ms_per_buy": round(cpu_ms, 3),
    }


def _naive_phase(
    tier: servers.Tier, settings: Settings, sale_id: uuid.UUID, seconds: float, connections: int, workers: int
) -> dict[str, Any]:
    naive_tier = replace(tier, env={**tier.env, "ZT_FLASHSALE_GATE": "database"})
    path = f"/api/v1/flashsale/sales/{sale_id}/buy"
    passes = _passes(settings, sale_id, int(seconds * 4000))
    with servers.serve(naive_tier, APP_FACTORY, label="flashsale-naive", workers=workers) as server:
        requests = [buy_request(server.port, path, token) for token in passes]
        tally = asyncio.run(drive(requests, port=server.port, connections=connections, seconds=seconds))
    rate = _rate(tally.accepted, tally.ended - tally.started)
    progress.print(f"  naive (one PostgreSQL stock row) {rate:8.0f} orders/s   answers {dict(tally.answers)}")
    return {"naive_orders_per_s": rate, "naive_answers": dict(tally.answers)}
