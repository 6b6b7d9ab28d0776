"""Smoke test of `zhongtai bench scan` on the embedded tier: real servers, tiny load, no timing asserted."""

from __future__ import annotations

import pytest

from zhongtai.bench.scan import run_scan_benchmark

PHASES = ("baseline_healthz", "verify", "baseline_select", "page")


@pytest.mark.slow
def test_scan_benchmark_embedded_tier() -> None:
    figures = run_scan_benchmark(seconds=0.5, connections=4, codes=50, tiers=["embedded"], warmup_seconds=0.2)

    assert figures["tiers"] == ["embedded"]
    assert figures["codes"] == 50
    for phase in PHASES:
        key = f"embedded_{phase}"
        assert figures[f"{key}_requests"] > 0, key
        assert figures[f"{key}_failed_requests"] == 0, key
        assert 0 < figures[f"{key}_p50_ms"] <= figures[f"{key}_p99_ms"], key
    assert figures["embedded_verify_ratio_to_baseline_select"] > 0
    assert figures["embedded_page_ratio_to_baseline_healthz"] > 0
    assert not any(key.startswith("postgres_") for key in figures)
