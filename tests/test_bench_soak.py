"""Smoke test of `zhongtai bench soak` on the embedded tier: a real server, a few seconds of mixed traffic
(consumer scans and PINs, channel scans, flash-sale buys), two samples; no timing asserted."""

from __future__ import annotations

from typing import Any

import pytest

from zhongtai.bench.soak import judge, run_soak_benchmark


@pytest.mark.slow
def test_soak_benchmark_embedded_tier() -> None:
    figures = run_soak_benchmark(minutes=0.1, sample_seconds=3.0, tier="embedded", connections=2, codes=40)

    assert figures["ok"] is True, figures["problems"]
    assert figures["tier"] == "embedded"
    assert figures["errors"] == 0
    assert len(figures["samples"]) == 2
    for sample in figures["samples"]:
        assert sample["rss_mb"] > 0
        for kind in ("consumer", "channel", "flashsale"):
            assert sample[f"{kind}_requests"] > 0, (kind, sample)
            assert sample[f"{kind}_errors"] == 0, (kind, sample)
            assert sample[f"{kind}_p99_ms"] > 0, (kind, sample)
    assert figures["accepted_buys"] == sum(s["flashsale_requests"] for s in figures["samples"])


def _row(rss_mb: float, errors: int = 0) -> dict[str, Any]:
    return {
        "rss_mb": rss_mb,
        "consumer_errors": errors,
        "channel_errors": 0,
        "flashsale_errors": 0,
        "problems": ["verify 500"] if errors else [],
    }


def test_soak_verdict_fails_on_errors_and_memory_growth() -> None:
    assert judge([_row(200.0), _row(230.0), _row(210.0)], 64.0) == (10.0, 0, [])
    growth, errors, problems = judge([_row(200.0), _row(250.0), _row(280.5)], 64.0)
    assert (growth, errors) == (80.5, 0)
    assert problems == ["server RSS grew by 80.5 MB (bound 64 MB)"]
    _growth, errors, problems = judge([_row(200.0), _row(200.0, errors=2)], 64.0)
    assert errors == 2
    assert problems == ["2 error(s); first: verify 500"]


def test_minutes_is_an_option_of_the_soak_only() -> None:
    from typer.testing import CliRunner

    from zhongtai.cli.main import app

    for args in (["bench", "http", "--minutes", "1"], ["bench", "soak", "--minutes", "0"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "--minutes" in result.output
