"""Smoke test of `zhongtai bench trace` on the embedded tier: tiny sizes, exact counts, no timing asserted."""

from __future__ import annotations

import pytest

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
