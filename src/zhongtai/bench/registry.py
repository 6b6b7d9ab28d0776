"""The benchmark registry: modules add entries; `run` executes one and saves its figures."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
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


def run(name: str, **options: Any) -> dict[str, Any]:
    figures = BENCHMARKS[name].func(**options)
    figures = {
        "benchmark": name,
        **figures,
        "machine": machine(),
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    return figures


_load_builtin()
