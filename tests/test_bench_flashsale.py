"""Smoke test of `zhongtai bench flashsale` on PostgreSQL + Redis: real servers, a small sale, no timing
asserted — but the sale's outcome is: exactly the stock accepted, nothing oversold, nothing lost."""

from __future__ import annotations

import pytest

from zhongtai.bench import servers
from zhongtai.bench.flashsale import run_flashsale_benchmark


@pytest.mark.slow
@pytest.mark.skipif(not servers.services_answer(), reason="needs PostgreSQL and Redis")
def test_flashsale_benchmark_small_sale() -> None:
    figures = run_flashsale_benchmark(seconds=0.5, connections=8, stock=300, workers=1)

    assert figures["accepted"] == 300
    assert figures["sale_answers"] == {"accepted": 300, "sold_out": 60}
    assert figures["oversold"] == 0
    assert figures["lost"] == 0
    assert figures["never_persisted"] == 0
    assert figures["orders_in_postgres"] == 300
    assert set(figures["sold_out_phase_answers"]) == {"sold_out"}
    assert figures["baseline_orders_per_s"] > 0
    assert figures["naive_orders_per_s"] > 0
    assert figures["accepted_orders_per_s"] > 0
