"""Smoke test of `zhongtai bench http` on the embedded tier: real servers, tiny load, no timing asserted."""

from __future__ import annotations

import asyncio

import pytest

from zhongtai.bench import loadgen
from zhongtai.bench.http import run_http_benchmark

PHASES = ("baseline_healthz", "healthz", "baseline_select", "users_read")


@pytest.mark.slow
@pytest.mark.parametrize(
    "generator",
    [
        "python",
        pytest.param("wrk", marks=pytest.mark.skipif(loadgen.wrk_path() is None, reason="wrk is not installed")),
    ],
)
def test_http_benchmark_embedded_tier(generator: str) -> None:
    figures = run_http_benchmark(
        seconds=0.5, connections=4, tiers=["embedded"], warmup_seconds=0.2, generator=generator
    )

    assert figures["tiers"] == ["embedded"]
    assert figures["connections"] == 4
    assert figures["load_generator"].startswith("wrk" if generator == "wrk" else "zhongtai asyncio client")
    for phase in PHASES:
        key = f"embedded_{phase}"
        assert figures[f"{key}_requests"] > 0, key
        assert figures[f"{key}_failed_requests"] == 0, key
        assert figures[f"{key}_requests_per_s"] > 0, key
        assert 0 < figures[f"{key}_p50_ms"] <= figures[f"{key}_p99_ms"], key
        assert figures[f"{key}_server_cpu_ms_per_request"] >= 0, key
    assert figures["embedded_healthz_ratio_to_baseline"] > 0
    assert figures["embedded_users_read_ratio_to_baseline"] > 0
    assert not any(key.startswith("postgres_") for key in figures)


async def test_python_generator_counts_answers_that_are_not_2xx() -> None:
    """A request the server refuses (404 here) is counted as failed, not as a success."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, loadgen.LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await loadgen.run_python(port=port, path="/", headers={}, connections=2, seconds=5, max_requests=50)
    finally:
        server.close()
        await server.wait_closed()
    assert result.requests == 50
    assert result.failed == 50
