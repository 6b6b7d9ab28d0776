"""The benchmark registry: modules add entries; `run` executes one and saves its figures."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path("bench/results")


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    func: Callable[..., dict[str, Any]]


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, description: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def register(func: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        BENCHMARKS[name] = Benchmark(name, description, func)
        return func

    return register


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "processor": platform.machine(),
    }


def _load_builtin() -> None:
    from zhongtai.bench import (  # noqa: F401
        channel,
        codes,
        custody,
        flashsale,
        geo,
        http,
        ledger,
        lottery,
        members,
        rewards,
        scan,
        soak,
        trace,
    )


# Two benchmarks on one machine spoil each other's figures: every run holds this machine-wide lock
# from start to end, and notes how loaded the machine was.
LOCK_PATH = Path(os.environ.get("ZT_BENCH_LOCK", "/tmp/zhongtai-bench.lock"))  # noqa: S108 - machine-wide on purpose
QUIET_LOAD = 1.5  # the one-minute load average above which a machine is not quiet


class BenchmarkBusy(RuntimeError):
    """Another benchmark holds the machine."""


@contextmanager
def machine_lock(name: str, *, wait: bool = True, path: Path | None = None) -> Iterator[None]:
    """Hold the machine-wide benchmark lock (an exclusive `flock` on a file in /tmp) for the block.
    Waits for the holder to finish, saying who it is; with `wait=False`, refuses with BenchmarkBusy."""
    path = path or LOCK_PATH
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another benchmark"
            if not wait:
                raise BenchmarkBusy(f"the machine is busy with {holder}") from None
            print(f"waiting for {holder} to finish (lock {path})", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"bench {name} (pid {os.getpid()}, since {datetime.now(UTC).isoformat(timespec='seconds')})")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(name: str, **options: Any) -> dict[str, Any]:
    """Run a benchmark under the machine lock; its figures with the machine and the load around it."""
    with machine_lock(name):
        before = load_average()
        if before[0] > QUIET_LOAD:
            print(
                f"the machine is not quiet: load average {before[0]} (> {QUIET_LOAD}); figures taken now are not "
                "figures — wait for a quiet machine",
                file=sys.stderr,
            )
        figures = BENCHMARKS[name].func(**options)
        after = load_average()
    figures = {
        "benchmark": name,
        **figures,
        "machine": machine(),
        "load_average": {"before": before, "after": after, "quiet_at_start": before[0] <= QUIET_LOAD},
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    return figures


_load_builtin()
