"""HTTP/1.1 keep-alive load against 127.0.0.1: `wrk` when installed, else a small asyncio client.

Both are closed-loop: each connection sends its next request as soon as the previous answer is read,
so latency percentiles describe the server at saturation, not under a fixed arrival rate.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

LOOPBACK = "127.0.0.1"
DEFAULT_MAX_REQUESTS = 5_000_000
GeneratorChoice = Literal["auto", "wrk", "python"]


@dataclass
class LoadResult:
    requests: int
    failed: int
    elapsed_s: float
    latencies_ns: list[int] = field(default_factory=list, repr=False)
    p50_ns: int | None = None
    p99_ns: int | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the recorded latencies (or wrk's own figure), in milliseconds."""
        given = {0.5: self.p50_ns, 0.99: self.p99_ns}.get(fraction)
        if given is not None:
            return given / 1e6
        if not self.latencies_ns:
            return 0.0
        ordered = sorted(self.latencies_ns)
        rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
        return ordered[rank - 1] / 1e6


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _wrk() -> str:
    path = wrk_path()
    if path is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk), choose the python generator")
    return path


def resolve_generator(choice: GeneratorChoice) -> Literal["wrk", "python"]:
    if choice == "auto":
        return "wrk" if wrk_path() else "python"
    if choice == "wrk" and not wrk_path():
        raise RuntimeError("wrk is not installed (apt-get install wrk), choose the python generator")
    return choice


def generator_label(choice: Literal["wrk", "python"], connections: int) -> str:
    if choice == "wrk":
        version = subprocess.run([_wrk(), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        first = (version.stdout or version.stderr).strip().splitlines()
        name = first[0].split(" [")[0] if first else "wrk"
        return f"{name} ({wrk_threads(connections)} thread(s), closed loop)"
    return "zhongtai asyncio client (1 process, closed loop)"


def wrk_threads(connections: int) -> int:
    # On a small machine the server needs the cores; one wrk thread already outruns one granian worker.
    return max(1, min(connections, (os.cpu_count() or 1) // 2))


def measure(
    generator: Literal["wrk", "python"],
    *,
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> LoadResult:
    if generator == "wrk":
        return run_wrk(port=port, path=path, headers=headers, connections=connections, seconds=seconds)
    return asyncio.run(
        run_python(
            port=port,
            path=path,
            headers=headers,
            connections=connections,
            seconds=seconds,
            max_requests=max_requests,
        )
    )


# wrk: the Lua `done` hook prints one JSON line; `errors.status` counts answers with status >= 400.
_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nZT_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d,'
    .. ' "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(*, port: int, path: str, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="zt-wrk-") as scratch:
        script = Path(scratch) / "report.lua"
        script.write_text(_WRK_REPORT)
        command = [
            _wrk(),
            f"--threads={wrk_threads(connections)}",
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            "--timeout=10s",
            f"--script={script}",
        ]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        command.append(f"http://{LOOPBACK}:{port}{path}")
        # Our own argument list to a binary found on PATH; no shell, nothing from outside.
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)  # noqa: S603
    line = next((row for row in done.stdout.splitlines() if row.startswith("ZT_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    report = json.loads(line.removeprefix("ZT_JSON "))
    return LoadResult(
        requests=report["requests"],
        failed=report["status_errors"] + report["socket_errors"],
        elapsed_s=report["duration_us"] / 1e6,
        p50_ns=report["p50_us"] * 1000,
        p99_ns=report["p99_us"] * 1000,
    )


class _Budget:
    """Shared stop condition: a deadline and a maximum number of requests sent."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.left = max_requests

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending requests back to back; answers must carry Content-Length."""

    def __init__(
        self, request: bytes | Sequence[bytes], budget: _Budget, latencies: list[int], done: asyncio.Future[None]
    ) -> None:
        # One request sent again and again, or several sent in turn (e.g. one per code).
        self.rotation = [request] if isinstance(request, bytes) else list(request)
        self.turn = 0
        self.budget = budget
        self.latencies = latencies
        self.done = done
        self.buffer = bytearray()
        self.sent_at = 0
        self.requests = 0
        self.failed = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send_next()

    def _send_next(self) -> None:
        assert self.transport is not None
        if not self.budget.take():
            self.transport.close()
            return
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.rotation[self.turn % len(self.rotation)])
        self.turn += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buffer[:head_end]).lower()
        marker = head.find(b"\r\ncontent-length:")
        if marker < 0:
            self._fail("answer without Content-Length")
            return
        line_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : line_end if line_end >= 0 else len(head)])
        total = head_end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        self.latencies.append(time.perf_counter_ns() - self.sent_at)
        self.requests += 1
        if not 200 <= status < 300:
            self.failed += 1
        del self.buffer[:total]
        self._send_next()

    def _fail(self, reason: str) -> None:
        self.failed += 1
        if not self.done.done():
            self.done.set_exception(RuntimeError(reason))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer:
            self.failed += 1
        if not self.done.done():
            self.done.set_result(None)


def _same(protocol: _Connection) -> _Connection:
    return protocol


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One HTTP/1.1 keep-alive request as bytes, for `run_requests`."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "User-Agent: zhongtai-bench"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def run_requests(
    requests: Sequence[bytes], *, port: int, connections: int, seconds: float, max_requests: int = DEFAULT_MAX_REQUESTS
) -> LoadResult:
    """Like `run_python`, but each connection sends the given requests in turn (from its own offset)."""
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    budget = _Budget(seconds, max_requests)
    started = time.perf_counter()
    protocols: list[_Connection] = []
    step = max(1, len(requests) // max(1, connections))
    for index in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        offset = (index * step) % len(requests)
        protocol = _Connection([*requests[offset:], *requests[:offset]], budget, latencies, done)
        await loop.create_connection(functools.partial(_same, protocol), LOOPBACK, port)
        protocols.append(protocol)
    await asyncio.gather(*(protocol.done for protocol in protocols))
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=sum(p.requests for p in protocols),
        failed=sum(p.failed for p in protocols),
        elapsed_s=elapsed,
        latencies_ns=latencies,
    )


class _Queue(_Budget):
    """Every request exactly once, in order, whichever connection is free first."""

    def __init__(self, requests: Sequence[bytes]) -> None:
        super().__init__(float("inf"), len(requests))
        self.requests = list(requests)
        self.next = 0

    def pop(self) -> bytes:
        request = self.requests[self.next]
        self.next += 1
        return request


class _QueuedConnection(_Connection):
    def __init__(self, queue: _Queue, latencies: list[int], done: asyncio.Future[None]) -> None:
        super().__init__(b"", queue, latencies, done)
        self.queue = queue

    def _send_next(self) -> None:
        assert self.transport is not None
        if not self.queue.take():
            self.transport.close()
            return
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.queue.pop())


async def run_each_once(requests: Sequence[bytes], *, port: int, connections: int) -> LoadResult:
    """Send every request exactly once over `connections` keep-alive connections (closed loop), e.g.
    one first verification per code: none repeated, none left out."""
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    queue = _Queue(requests)
    started = time.perf_counter()
    protocols: list[_Connection] = []
    for _ in range(min(connections, len(requests))):
        done: asyncio.Future[None] = loop.create_future()
        protocol = _QueuedConnection(queue, latencies, done)
        await loop.create_connection(functools.partial(_same, protocol), LOOPBACK, port)
        protocols.append(protocol)
    await asyncio.gather(*(protocol.done for protocol in protocols))
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=sum(p.requests for p in protocols),
        failed=sum(p.failed for p in protocols),
        elapsed_s=elapsed,
        latencies_ns=latencies,
    )


async def run_python(
    *,
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> LoadResult:
    lines = [f"GET {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "User-Agent: zhongtai-bench"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    budget = _Budget(seconds, max_requests)
    started = time.perf_counter()
    protocols: list[_Connection] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        protocol = _Connection(request, budget, latencies, done)
        await loop.create_connection(functools.partial(_same, protocol), LOOPBACK, port)
        protocols.append(protocol)
    await asyncio.gather(*(protocol.done for protocol in protocols))
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=sum(p.requests for p in protocols),
        failed=sum(p.failed for p in protocols),
        elapsed_s=elapsed,
        latencies_ns=latencies,
    )
