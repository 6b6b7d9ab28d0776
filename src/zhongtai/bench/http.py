"""`zhongtai bench http`: requests/s and latency of the real server on each tier, against a bare baseline.

Per tier (embedded: SQLite, no Redis; postgres: PostgreSQL + Redis when they answer) the benchmark
runs `zhongtai demo` for a fresh database, starts granian with one worker and measures `GET /healthz`
and an authenticated API read (`GET /api/v1/users` with the demo token). A bare FastAPI app under the
same granian settings gives the baseline (`/healthz`, and one `SELECT 1` on the same database), so the
ratio app / baseline is the figure to compare across machines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

from rich.console import Console

from zhongtai.bench import loadgen, servers
from zhongtai.bench.registry import benchmark

APP_FACTORY = "zhongtai.app:app_factory"
BASELINE_FACTORY = "zhongtai.bench.baseline:baseline_factory"
TIERS = ("embedded", "postgres")

progress = Console(stderr=True, soft_wrap=True)


class _Phases:
    """Runs measured phases (each after a warm-up) and collects figures under unit-named keys."""

    def __init__(self, generator: loadgen.GeneratorChoice, *, seconds: float, connections: int, warmup: float) -> None:
        self.generator = loadgen.resolve_generator(generator)
        self.seconds = seconds
        self.connections = connections
        self.warmup = warmup
        self.figures: dict[str, Any] = {}

    def measure(
        self, key: str, server: servers.RunningServer, path: str, headers: dict[str, str] | None = None
    ) -> float:
        headers = headers or {}
        if self.warmup > 0:
            loadgen.measure(
                self.generator,
                port=server.port,
                path=path,
                headers=headers,
                connections=self.connections,
                seconds=self.warmup,
            )
        cpu_before = server.cpu_seconds()
        result = loadgen.measure(
            self.generator,
            port=server.port,
            path=path,
            headers=headers,
            connections=self.connections,
            seconds=self.seconds,
        )
        cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / result.requests if result.requests else 0.0
        rate = result.requests_per_s
        self.figures.update(
            {
                f"{key}_requests_per_s": round(rate, 1),
                f"{key}_p50_ms": round(result.percentile_ms(0.5), 3),
                f"{key}_p99_ms": round(result.percentile_ms(0.99), 3),
                f"{key}_requests": result.requests,
                f"{key}_failed_requests": result.failed,
                f"{key}_server_cpu_ms_per_request": round(cpu_ms, 3),
            }
        )
        progress.print(
            f"  {key:28} {rate:9.0f} req/s   p50 {result.percentile_ms(0.5):7.2f} ms"
            f"   p99 {result.percentile_ms(0.99):7.2f} ms   server CPU {cpu_ms:6.3f} ms/req   failed {result.failed}"
        )
        return rate

    def ratio(self, key: str, app_rate: float, baseline_rate: float) -> None:
        self.figures[key] = round(app_rate / baseline_rate, 3) if baseline_rate > 0 else None


def _run_tier(phases: _Phases, tier: servers.Tier) -> None:
    progress.print(f"[bold]{tier.name} tier[/bold]: loading demo data")
    token = servers.load_demo(tier)
    # Both servers stay up and each app phase follows its baseline phase at once, so that a noisy
    # neighbour on the machine weighs on both sides of a ratio alike.
    with (
        servers.serve(tier, BASELINE_FACTORY, label=f"{tier.name}-baseline") as baseline,
        servers.serve(tier, APP_FACTORY, label=f"{tier.name}-app") as app,
    ):
        bare = phases.measure(f"{tier.name}_baseline_healthz", baseline, "/healthz")
        healthz = phases.measure(f"{tier.name}_healthz", app, "/healthz")
        phases.ratio(f"{tier.name}_healthz_ratio_to_baseline", healthz, bare)
        select = phases.measure(f"{tier.name}_baseline_select", baseline, "/select")
        users = phases.measure(f"{tier.name}_users_read", app, "/api/v1/users", {"Authorization": f"Bearer {token}"})
        phases.ratio(f"{tier.name}_users_read_ratio_to_baseline", users, select)


@benchmark("http", "requests/s and p50/p99 of /healthz and an authenticated API read, per tier, vs bare FastAPI")
def run_http_benchmark(
    seconds: float = 5.0,
    connections: int = 32,
    *,
    tiers: Sequence[str] | None = None,
    warmup_seconds: float = 1.0,
    generator: str | None = None,
) -> dict[str, Any]:
    """Measure every tier that can run here (or `tiers`); the generator defaults to ZT_BENCH_LOAD_GENERATOR or auto."""
    choice = generator or os.environ.get("ZT_BENCH_LOAD_GENERATOR", "auto")
    if choice not in ("auto", "wrk", "python"):
        raise ValueError(f"unknown load generator {choice!r}; use auto, wrk or python")
    phases = _Phases(
        cast(loadgen.GeneratorChoice, choice), seconds=seconds, connections=connections, warmup=warmup_seconds
    )
    wanted = list(tiers) if tiers is not None else list(TIERS)
    skipped: dict[str, str] = {}
    if "postgres" in wanted and not servers.services_answer():
        wanted.remove("postgres")
        skipped["postgres"] = "PostgreSQL or Redis does not answer"
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL or Redis does not answer")
    load_at_start = os.getloadavg()[0]
    label = loadgen.generator_label(phases.generator, connections)
    progress.print(
        f"load generator: {label}; {connections} connections, {seconds} s per phase after {warmup_seconds} s warm-up"
    )
    for name in wanted:
        tier_context = servers.embedded_tier() if name == "embedded" else servers.postgres_tier()
        with tier_context as tier:
            _run_tier(phases, tier)
    return {
        "load_generator": label,
        "connections": connections,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "server": f"granian {_granian_version()} (asgi, 1 worker, access log off)",
        "tiers": wanted,
        **({"skipped_tiers": skipped} if skipped else {}),
        # Other work on the machine shares the cores with server and load generator alike.
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **phases.figures,
    }


def _granian_version() -> str:
    import granian

    return str(granian.__version__)
