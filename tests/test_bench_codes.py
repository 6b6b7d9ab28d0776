"""Smoke test of `zhongtai bench codes` on the embedded tier: a small batch, exact counts, no timing asserted."""

from __future__ import annotations

import pytest

from zhongtai.bench.codes import run_codes_benchmark

CODES = 20_000
# `http://127.0.0.1:8000/01/<gtin14>/21/` — the default public URL and the benchmark's GTIN.
LINK_PREFIX_LENGTH = len("http://127.0.0.1:8000/01/06901234567892/21/")


@pytest.mark.slow
def test_codes_benchmark_embedded_tier() -> None:
    # A chunk size that leaves a partial last chunk.
    figures = run_codes_benchmark(codes=CODES, tiers=["embedded"], chunk_size=7_000)

    assert figures["tiers"] == ["embedded"]
    assert (figures["codes"], figures["chunk_size"]) == (CODES, 7_000)
    assert figures["embedded_generated_codes"] == CODES
    assert figures["embedded_export_rows"] == CODES
    assert figures["embedded_export_pins_rows"] == CODES
    index_digits = sum(len(str(index)) for index in range(1, CODES + 1))
    # index,uri,serial\r\n and index,serial,pin\r\n: 16-character serials, 8-digit PINs.
    assert figures["embedded_export_bytes"] == len("index,uri,serial\r\n") + index_digits + CODES * (
        1 + LINK_PREFIX_LENGTH + 16 + 1 + 16 + 2
    )
    assert figures["embedded_export_pins_bytes"] == len("index,serial,pin\r\n") + index_digits + CODES * (
        1 + 16 + 1 + 8 + 2
    )
    for key in (
        "embedded_generate_codes_per_s",
        "embedded_generate_seconds",
        "embedded_raw_insert_rows_per_s",
        "embedded_generate_ratio_to_raw_insert",
        "embedded_peak_rss_mib",
        "embedded_export_rows_per_s",
        "embedded_export_pins_rows_per_s",
    ):
        assert figures[key] > 0, key
    assert not any(key.startswith("postgres_") for key in figures)
