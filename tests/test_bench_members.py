"""Smoke test of `zhongtai bench members` with small numbers: exact counts, no timing asserted."""

from __future__ import annotations

import pytest

from tests.conftest import HAS_SERVICES
from zhongtai.bench import registry  # noqa: F401 - loads the benchmarks in registry order
from zhongtai.bench.members import run_members_benchmark


@pytest.mark.slow
def test_members_benchmark_small() -> None:
    tiers = ["embedded", "postgres"] if HAS_SERVICES else ["embedded"]
    figures = run_members_benchmark(links=2_000, facts=20_000, changes=1_000, earnings=40, tiers=tiers)
    # 1,000 people: 800 seen once (a record of two links), 200 seen twice (two records of one link)
    assert (figures["people"], figures["union_find_components"]) == (1_000, 1_000)
    for tier in tiers:
        assert figures[f"{tier}_records"] == 800 + 2 * 200
        assert (figures[f"{tier}_members_created"], figures[f"{tier}_identifiers_added"]) == (1_000, 2_000)
        assert (figures[f"{tier}_reload_members_created"], figures[f"{tier}_reload_identifiers_added"]) == (0, 0)
        assert figures[f"{tier}_reload_members_attached"] == 1_000
        assert (figures[f"{tier}_members"], figures[f"{tier}_identifiers"]) == (1_000, 2_000)
        assert figures[f"{tier}_earn_members"] == 40
        assert figures[f"{tier}_earn_lots"] == 80  # one earning each, one by one and in a batch
        assert figures[f"{tier}_earn_points_total"] == 800
        assert figures[f"{tier}_earn_issued_balance"] == -800
        assert figures[f"{tier}_earn_books_balance"] is True
    assert figures["segment_members"] == figures["segment_brute_force_members"] > 0
    assert figures["segment_members_after_changes"] == figures["segment_brute_force_members_after_changes"]
    assert figures["segment_incremental_equals_full"] is True
    if HAS_SERVICES:
        assert figures["postgres_facts_rows"] == figures["postgres_facts_columns_loaded"] == 1_000
        # The write's floor: the same rows by COPY into copies of the tables, which are dropped again.
        assert figures["postgres_write_floor_s"] > 0
        assert figures["postgres_write_floor_rows_per_s"] > 0
