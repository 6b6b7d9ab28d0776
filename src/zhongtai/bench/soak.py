"""`zhongtai bench soak`: mixed traffic against a real server for a long time — flat memory, no errors.

One tier (PostgreSQL + Redis when they answer, else the embedded tier; `tier=` to choose): `zhongtai
demo`, commissioned codes, a dealer and a store with a partner account each (through the API), a flash
sale with a large stock; then granian serves the platform (and on PostgreSQL `zhongtai flashsale
worker` persists the accepted buys) while, for `minutes` (default 30), at the same time:

- **consumers** (closed loop, `connections` keep-alive connections): `POST /api/v1/authenticity/verify`
  with the right PIN and a location, and the H5 page of a Digital Link, codes in turn;
- **channel** (paced below the per-partner limit): each code received by the dealer, shipped to the
  store, received and sold there — `POST /api/v1/channel/partner/scans`; codes reused after the last
  one are answered as replays;
- **flash sale** (paced): `POST /api/v1/flashsale/sales/{id}/buy`, each with a pass of its own.

Every `sample_seconds` (a minute) it samples the resident memory (RSS) of the server's processes, the
p99 latency of each kind and the errors (any answer other than the expected status, or no answer), and
prints a row. The run fails (`ok: false`, `zhongtai bench soak` exits 1) on any error, or when the RSS
of the last sample exceeds that of the first (taken after a minute of warm-up) by more than
`max_rss_growth_mb`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from zhongtai.bench import flashsale, loadgen, scan, servers
from zhongtai.bench.registry import benchmark
from zhongtai.core.settings import Settings

DEFAULT_MINUTES = 30.0
CHANNEL_SCANS_PER_SECOND = 1.5  # per partner 0.75/s: well under the 120 scans a minute a partner may send
BUYS_PER_SECOND = 5.0
MAX_RSS_GROWTH_MB = 64.0
CHANNEL_API = "/api/v1/channel"
PARTNER_PASSWORD = "soak partner 2026"

progress = Console(stderr=True, soft_wrap=True)


@dataclass
class Kind:
    """Latencies and errors of one kind of request within one sample."""

    requests: int = 0
    errors: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def record(self, started_ns: int, ok: bool, problem: str = "") -> None:
        self.requests += 1
        self.latencies_ns.append(time.perf_counter_ns() - started_ns)
        if not ok:
            self.errors += 1
            if len(self.problems) < 5:
                self.problems.append(problem)

    def p99_ms(self) -> float:
        if not self.latencies_ns:
            return 0.0
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered), max(1, math.ceil(0.99 * len(ordered)))) - 1] / 1e6


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the processes (Linux /proc), in MB."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb / 1024


@dataclass
class Channel:
    dealer_token: str
    store_token: str
    store_id: str
    codes: list[str]
    position: int = 0


async def _setup_channel(port: int, api_token: str, slug: str, codes: list[str]) -> Channel:
    """A dealer and its store, with a partner account each, through the operators' API."""
    auth = {"Authorization": f"Bearer {api_token}"}
    suffix = uuid.uuid4().hex[:6].upper()
    async with httpx.AsyncClient(base_url=f"http://{loadgen.LOOPBACK}:{port}", timeout=30) as client:

        async def created(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
            response = await client.post(path, json=body, headers=auth if headers is None else headers)
            if response.status_code != 201:
                raise RuntimeError(f"soak setup: POST {path} answered {response.status_code}: {response.text[:300]}")
            answer: dict[str, Any] = response.json()
            return answer

        dealer = await created(
            f"{CHANNEL_API}/dealers", {"code": f"SOAK-D{suffix}", "name": "Soak dealer", "region_codes": ["310000"]}
        )
        store = await created(
            f"{CHANNEL_API}/stores",
            {
                "code": f"SOAK-S{suffix}",
                "name": "Soak store",
                "dealer_code": dealer["code"],
                "latitude": scan.SHANGHAI[0],
                "longitude": scan.SHANGHAI[1],
            },
        )
        tokens = []
        for role, target, phone in (
            ("dealer", dealer["id"], f"1370{uuid.uuid4().int % 10**7:07d}"),
            ("store", store["id"], f"1371{uuid.uuid4().int % 10**7:07d}"),
        ):
            await created(
                f"{CHANNEL_API}/partners",
                {"role": role, "target_id": target, "phone": phone, "display_name": role, "password": PARTNER_PASSWORD},
            )
            signed = await created(
                f"{CHANNEL_API}/public/{slug}/partner/sessions", {"phone": phone, "password": PARTNER_PASSWORD}, {}
            )
            tokens.append(str(signed["token"]))
    return Channel(dealer_token=tokens[0], store_token=tokens[1], store_id=str(store["id"]), codes=codes)


async def _channel_loop(client: httpx.AsyncClient, channel: Channel, kind: Kind, until: float) -> None:
    """Each code in turn: received by the dealer, shipped to the store, received and sold there."""
    steps: tuple[tuple[str, str, dict[str, str]], ...] = (
        ("dealer_receive", channel.dealer_token, {}),
        ("ship", channel.dealer_token, {"to_store_id": channel.store_id}),
        ("store_receive", channel.store_token, {}),
        ("sale", channel.store_token, {}),
    )
    interval = 1.0 / CHANNEL_SCANS_PER_SECOND
    next_at = time.monotonic()
    while time.monotonic() < until:
        code = channel.codes[(channel.position // len(steps)) % len(channel.codes)]
        action, token, extra = steps[channel.position % len(steps)]
        channel.position += 1
        started = time.perf_counter_ns()
        try:
            response = await client.post(
                f"{CHANNEL_API}/partner/scans",
                json={"action": action, "codes": [code], **extra},
                headers={"Authorization": f"Bearer {token}"},
            )
            kind.record(started, response.status_code == 200, f"{action} {response.status_code} {response.text[:200]}")
        except httpx.HTTPError as exc:
            kind.record(started, False, f"{action}: {exc!r}")
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


@dataclass
class Sale:
    path: str
    passes: list[str]
    position: int = 0
    accepted: int = 0


async def _buy_loop(client: httpx.AsyncClient, sale: Sale, kind: Kind, until: float) -> None:
    interval = 1.0 / BUYS_PER_SECOND
    next_at = time.monotonic()
    while time.monotonic() < until and sale.position < len(sale.passes):
        token = sale.passes[sale.position]
        sale.position += 1
        started = time.perf_counter_ns()
        try:
            response = await client.post(sale.path, headers={"Authorization": f"Bearer {token}"})
            ok = response.status_code == 202
            sale.accepted += ok
            kind.record(started, ok, f"buy {response.status_code} {response.text[:200]}")
        except httpx.HTTPError as exc:
            kind.record(started, False, f"buy: {exc!r}")
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _window(
    port: int, consumer_requests: list[bytes], connections: int, seconds: float, channel: Channel, sale: Sale
) -> dict[str, Kind]:
    """One sample: the three kinds of traffic at once for `seconds`."""
    until = time.monotonic() + seconds
    kinds = {"consumer": Kind(), "channel": Kind(), "flashsale": Kind()}
    async with httpx.AsyncClient(base_url=f"http://{loadgen.LOOPBACK}:{port}", timeout=30) as client:
        consumers, _, _ = await asyncio.gather(
            loadgen.run_requests(consumer_requests, port=port, connections=connections, seconds=seconds),
            _channel_loop(client, channel, kinds["channel"], until),
            _buy_loop(client, sale, kinds["flashsale"], until),
        )
    kinds["consumer"] = Kind(
        requests=consumers.requests,
        errors=consumers.failed,
        latencies_ns=consumers.latencies_ns,
        problems=[f"{consumers.failed} answer(s) other than 2xx"] if consumers.failed else [],
    )
    return kinds


def _consumer_requests(port: int, samples: list[scan.Sample]) -> list[bytes]:
    requests = []
    for sample in samples:
        body = {
            "code": sample.serial,
            "pin": sample.pin,
            "latitude": scan.SHANGHAI[0],
            "longitude": scan.SHANGHAI[1],
            "accuracy": 30,
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        requests.append(
            loadgen.http_request("POST", "/api/v1/authenticity/verify", port, headers, json.dumps(body).encode())
        )
        requests.append(
            loadgen.http_request("GET", sample.path, port, {"Accept": "text/html", "Accept-Language": "zh-CN"})
        )
    return requests


def _settings(tier: servers.Tier) -> Settings:
    if tier.name == "postgres":
        return flashsale._settings(tier)
    return scan.tier_settings(tier)


KINDS = ("consumer", "channel", "flashsale")


def judge(rows: list[dict[str, Any]], max_rss_growth_mb: float) -> tuple[float, int, list[str]]:
    """(RSS growth from the first sample to the last in MB, errors, problems): a problem per failed rule."""
    growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
    error_count = sum(row[f"{key}_errors"] for row in rows for key in KINDS)
    problems = []
    if error_count:
        first = next((p for row in rows for p in row["problems"]), "")
        problems.append(f"{error_count} error(s); first: {first}")
    if growth > max_rss_growth_mb:
        problems.append(f"server RSS grew by {growth:.1f} MB (bound {max_rss_growth_mb:.0f} MB)")
    return growth, error_count, problems


@contextmanager
def _tier(name: str) -> Iterator[servers.Tier]:
    with servers.postgres_tier() if name == "postgres" else servers.embedded_tier() as made:
        env = {
            **made.env,
            # All the load comes from 127.0.0.1: the per-address limits would refuse it.
            "ZT_SCAN_REQUESTS_PER_MINUTE": str(10**9),
            "ZT_FLASHSALE_REQUESTS_PER_SECOND_PER_ADDRESS": str(10**9),
        }
        if name == "postgres":
            env["ZT_IN_PROCESS_WORKER"] = "false"  # as `bench flashsale`: the persister runs on its own
        yield replace(made, env=env)


@benchmark("soak", "mixed traffic (scans, PINs, channel scans, flash-sale buys) for --minutes: RSS, p99, errors")
def run_soak_benchmark(
    seconds: float = 5.0,
    connections: int = 4,
    *,
    minutes: float = DEFAULT_MINUTES,
    sample_seconds: float = 60.0,
    tier: str | None = None,
    workers: int = 2,
    codes: int = 1000,
    max_rss_growth_mb: float = MAX_RSS_GROWTH_MB,
) -> dict[str, Any]:
    """`seconds` is not used (every benchmark takes it); the run lasts `minutes`, sampled every
    `sample_seconds`."""
    del seconds
    name = tier or ("postgres" if servers.services_answer() else "embedded")
    if name == "postgres" and not servers.services_answer():
        raise RuntimeError("the postgres tier needs PostgreSQL and Redis")
    workers = workers if name == "postgres" else 1  # SQLite: one writer, the limiter in-process
    total_seconds = minutes * 60
    windows = max(1, math.ceil(total_seconds / sample_seconds))
    channel_codes = max(50, math.ceil(total_seconds * CHANNEL_SCANS_PER_SECOND / 4) + 10)
    load_at_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    with _tier(name) as made, ExitStack() as stack:
        progress.print(f"[bold]soak, {name} tier[/bold]: demo data, {codes + channel_codes:,} codes, a sale")
        api_token = servers.load_demo(made)
        slug = json.loads((made.data_dir / "demo-credentials.json").read_text())["tenant"]["slug"]
        settings = _settings(made)
        samples = asyncio.run(scan.add_codes(settings, slug, codes + channel_codes))
        consumer_samples, channel_samples = samples[:codes], samples[codes:]
        sale_id = asyncio.run(flashsale._make_sales(settings, slug, {"soak": 10**7}))["soak"]
        passes = flashsale._passes(settings, sale_id, math.ceil(total_seconds * BUYS_PER_SECOND) + 10)
        persister = stack.enter_context(flashsale._persister(made)) if name == "postgres" else None
        server = stack.enter_context(servers.serve(made, scan.APP_FACTORY, label="soak-app", workers=workers))
        channel = asyncio.run(_setup_channel(server.port, api_token, slug, [s.serial for s in channel_samples]))
        sale = Sale(path=f"/api/v1/flashsale/sales/{sale_id}/buy", passes=passes)
        consumer_requests = _consumer_requests(server.port, consumer_samples)
        progress.print(
            f"  {'minute':>6} {'RSS MB':>8} {'consumer req':>12} {'p99 ms':>8} {'channel':>8} {'p99 ms':>8}"
            f" {'buys':>6} {'p99 ms':>8} {'errors':>6}"
        )
        started = time.monotonic()
        for index in range(windows):
            length = min(sample_seconds, total_seconds - index * sample_seconds)
            kinds = asyncio.run(_window(server.port, consumer_requests, connections, length, channel, sale))
            pids = servers._process_tree(server.pid) + ([persister.pid] if persister is not None else [])
            row = {
                "minute": round((time.monotonic() - started) / 60, 2),
                "rss_mb": round(rss_mb(pids), 1),
                **{f"{key}_requests": kind.requests for key, kind in kinds.items()},
                **{f"{key}_p99_ms": round(kind.p99_ms(), 2) for key, kind in kinds.items()},
                **{f"{key}_errors": kind.errors for key, kind in kinds.items()},
                "problems": [p for kind in kinds.values() for p in kind.problems],
            }
            rows.append(row)
            errors = sum(kind.errors for kind in kinds.values())
            progress.print(
                f"  {row['minute']:6.2f} {row['rss_mb']:8.1f} {row['consumer_requests']:12,} "
                f"{row['consumer_p99_ms']:8.2f} {row['channel_requests']:8,} {row['channel_p99_ms']:8.2f} "
                f"{row['flashsale_requests']:6,} {row['flashsale_p99_ms']:8.2f} {errors:6}"
            )
    growth, error_count, problems = judge(rows, max_rss_growth_mb)
    for problem in problems:
        progress.print(f"[red]soak failed:[/red] {problem}")
    import granian

    return {
        "ok": not problems,
        "problems": problems,
        "tier": name,
        "minutes": minutes,
        "sample_seconds": sample_seconds,
        "rss_growth_mb": round(growth, 1),
        "max_rss_growth_mb": max_rss_growth_mb,
        "errors": error_count,
        "accepted_buys": sale.accepted,
        "samples": rows,
        "connections": connections,
        "codes": codes,
        "channel_scans_per_s": CHANNEL_SCANS_PER_SECOND,
        "buys_per_s": BUYS_PER_SECOND,
        "server": f"granian {granian.__version__} (asgi, {workers} worker(s), access log off)",
        "load_generator": "zhongtai asyncio client (consumers closed loop) and httpx (channel, buys paced)",
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "run_id": uuid.uuid4().hex[:8],
    }
