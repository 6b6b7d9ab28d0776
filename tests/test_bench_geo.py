"""Smoke test of `zhongtai bench geo`: the figures are there and plausible, no timing asserted."""

from __future__ import annotations

from zhongtai.bench.geo import run_geo_benchmark


def test_geo_benchmark_figures() -> None:
    figures = run_geo_benchmark(seconds=0.05)
    assert figures["points"] == 20_000
    assert 5_000 < figures["points_in_china"] < 20_000
    for name in ("locate", "wgs84_to_gcj02", "territory_contains"):
        assert figures[f"{name}_per_s"] > 0
        assert 0 < figures[f"{name}_median_us"] <= figures[f"{name}_p95_us"]
