"""Smoke tests of `zhongtai bench trace`: tiny sizes, exact counts, no timing asserted; the kept
PostgreSQL database of ZT_BENCH_TRACE_KEEP is reused by the next run."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from zhongtai.bench import servers
from zhongtai.bench.trace import RUNS, TRACED_EVENTS, run_trace_benchmark


@pytest.mark.slow
def test_trace_benchmark_embedded_tier() -> None:
    figures = run_trace_benchmark(events=3_000, tiers=["embedded"], documents=3)

    assert figures["tiers"] == ["embedded"]
    assert figures["filler_events"] == {"embedded": 3_000}
    assert figures["embedded_capture_events"] == 300
    # The filler, then the traced item's 19 events captured through the real path onto the same log.
    assert figures["embedded_stored_events"] == 3_019
    assert figures["embedded_trace_entries"] == TRACED_EVENTS
    assert (figures["embedded_trace_runs"], figures["embedded_proof_runs"]) == (RUNS, RUNS)
    for key in (
        "embedded_capture_events_per_s",
        "embedded_raw_insert_events_per_s",
        "embedded_trace_p50_ms",
        "embedded_trace_p95_ms",
        "embedded_proof_p95_ms",
    ):
        assert figures[key] > 0, key
    assert not any(key.startswith("postgres_") for key in figures)
    assert figures["embedded_trace_with_proofs_p95_ms"] > 0


@pytest.mark.slow
def test_trace_benchmark_keeps_and_reuses_the_postgres_database(monkeypatch: pytest.MonkeyPatch) -> None:
    if not servers.postgres_answers():
        pytest.skip("PostgreSQL does not answer")
    name = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ZT_BENCH_TRACE_KEEP", name)
    try:
        first = run_trace_benchmark(events=2_000, tiers=["postgres"], documents=1)
        again = run_trace_benchmark(events=2_000, tiers=["postgres"], documents=1)
    finally:
        asyncio.run(servers._pg_admin(f'DROP DATABASE IF EXISTS "zt_bench_trace_{name}_2000" WITH (FORCE)'))
    assert first["postgres_stored_events"] == again["postgres_stored_events"] == 2_019
    assert first["postgres_bulk_load_seconds"] > 0
    assert again["postgres_bulk_load_seconds"] == 0, "the kept database is reused, not loaded again"
    assert again["postgres_trace_entries"] == TRACED_EVENTS
