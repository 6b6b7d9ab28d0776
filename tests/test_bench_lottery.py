"""Smoke test of `zhongtai bench lottery` on the embedded tier: exact counts, no timing asserted."""

from __future__ import annotations

import pytest

from zhongtai.bench.lottery import STORES, run_lottery_benchmark


@pytest.mark.slow
def test_lottery_benchmark_embedded_tier() -> None:
    figures = run_lottery_benchmark(entries=3_000, intake=40, tiers=["embedded"])
    assert (figures["tiers"], figures["entries"], figures["stores"]) == (["embedded"], 3_000, STORES)
    assert 0 < figures["embedded_winners"] <= 3_000
    assert figures["embedded_excluded"] == 0
    assert (figures["embedded_intake_entries"], figures["embedded_intake_failed"]) == (40, 0)
    assert figures["draw_seconds"] == figures["embedded_draw_seconds"] > 0
    assert figures["entries_per_s"] == figures["embedded_entries_per_s"] > 0
