"""Smoke test of `zhongtai bench custody` on the embedded tier: exact counts, no timing asserted."""

from __future__ import annotations

import pytest

from zhongtai.bench.custody import run_custody_benchmark


@pytest.mark.slow
def test_custody_benchmark_embedded_tier() -> None:
    figures = run_custody_benchmark(items=300, tiers=["embedded"])
    assert figures["tiers"] == ["embedded"]
    assert figures["embedded_packed_items"] == 300
    assert (figures["embedded_pack_items"], figures["embedded_pack_cases_items"]) == (150, 150)
    for key in (
        "commission_items_per_s",
        "pack_items_per_s",
        "pack_requests_per_s",
        "pack_p95_ms",
        "pack_cases_items_per_s",
        "pack_cases_requests_per_s",
    ):
        assert figures[f"embedded_{key}"] > 0
