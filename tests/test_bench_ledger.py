"""Smoke test of `zhongtai bench ledger` with small numbers: exact counts, no timing asserted."""

from __future__ import annotations

import pytest

from tests.conftest import HAS_SERVICES
from zhongtai.bench.ledger import run_ledger_benchmark


@pytest.mark.slow
def test_ledger_benchmark_small() -> None:
    tiers = ["embedded", "postgres"] if HAS_SERVICES else ["embedded"]
    figures = run_ledger_benchmark(posts=40, entries=2_500, tiers=tiers)
    for tier in tiers:
        assert figures[f"{tier}_posting_books_balance"] is True
        # 10 funding entries, then three runs of 40 rewards: two lines each
        assert figures[f"{tier}_posting_journal_lines"] == 2 * (10 + 3 * 40)
        for run in ("sequential", "concurrent8", "hot_pool_concurrent8"):
            assert figures[f"{tier}_{run}_posts_per_s"] > 0
    if HAS_SERVICES:
        assert figures["postgres_journal_entries"] == 2_500 + 100
        assert figures["postgres_journal_lines"] == 2 * (2_500 + 100)
        assert (figures["postgres_mismatches"], figures["postgres_unbalanced_entries"]) == (0, 0)
        assert figures["postgres_balance_totals"] == {"CNY": 0}
