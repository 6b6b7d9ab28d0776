"""Smoke test of `zhongtai bench channel`: real servers, tiny load, no timing asserted — every open
answered, every rewarded open paid to four parties, the plain ones to none, the books balanced."""

from __future__ import annotations

import pytest

from zhongtai.bench import servers
from zhongtai.bench.channel import run_channel_benchmark


def _check(figures: dict[str, object], tier: str, opens: int) -> None:
    for phase in ("plain", "rewarded"):
        assert figures[f"{tier}_{phase}_requests"] == opens
        assert figures[f"{tier}_{phase}_failed_requests"] == 0
    assert figures[f"{tier}_plain_grants_stored"] == 0
    assert figures[f"{tier}_rewarded_grants_stored"] == 4 * opens
    assert figures[f"{tier}_paid_grants_by_role"] == {
        "consumer": opens,
        "dealer": opens,
        "guide": opens,
        "store": opens,
    }
    assert figures[f"{tier}_books_balance"] is True
    assert figures[f"{tier}_pool_balance_matches"] is True
    assert figures[f"{tier}_rewards_per_s"] == pytest.approx(4 * figures[f"{tier}_rewarded_opens_per_s"], rel=1e-3)  # type: ignore[operator]


@pytest.mark.slow
def test_channel_benchmark_embedded_tier() -> None:
    figures = run_channel_benchmark(connections=4, opens=40, ledger_entries=0, tiers=["embedded"])
    assert figures["tiers"] == ["embedded"]
    _check(figures, "embedded", 40)
    assert not any(key.startswith("postgres_") for key in figures)


@pytest.mark.slow
@pytest.mark.skipif(not servers.services_answer(), reason="PostgreSQL or Redis does not answer")
def test_channel_benchmark_postgres_tier_with_recompute() -> None:
    figures = run_channel_benchmark(connections=8, opens=40, ledger_entries=2_000, tiers=["postgres"], workers=1)
    _check(figures, "postgres", 40)
    assert figures["postgres_ledger_mismatches"] == 0
    assert figures["postgres_ledger_unbalanced_entries"] == 0
