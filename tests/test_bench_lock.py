"""Benchmarks never overlap: each holds a machine-wide lock from start to end (a second one waits, or is
refused when told not to wait), and its figures carry the load average around it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from zhongtai.bench import registry

HOLD = """
import sys, time
from pathlib import Path
from zhongtai.bench import registry
with registry.machine_lock("holder", path=Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    Path(sys.argv[3]).write_text(repr(time.time()))  # the last thing the holder does under the lock
"""


def _holder(lock: Path, seconds: float, done: Path) -> subprocess.Popen[str]:
    arguments = [sys.executable, "-c", HOLD, str(lock), str(seconds), str(done)]
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_benchmark_is_refused_or_waits_for_the_first(tmp_path: Path) -> None:
    lock, done = tmp_path / "bench.lock", tmp_path / "holder-done"
    holder = _holder(lock, 1.0, done)
    try:
        assert "bench holder (pid" in lock.read_text()
        with (
            pytest.raises(registry.BenchmarkBusy, match="bench holder"),
            registry.machine_lock("second", wait=False, path=lock),
        ):
            pass
        with registry.machine_lock("second", path=lock):
            # Taken only after the holder's last step under the lock: no overlap, however slow the machine.
            assert done.exists()
            assert time.time() >= float(done.read_text())
            assert "bench second" in lock.read_text()
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait()
    assert lock.read_text() == ""  # released: nobody named as holder


def _take_lock_now() -> None:
    with registry.machine_lock("other", wait=False):
        pass


def test_figures_carry_the_load_around_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "LOCK_PATH", tmp_path / "bench.lock")
    monkeypatch.setattr(registry, "RESULTS_DIR", tmp_path / "results")
    inside: list[bool] = []

    def probe(**_options: Any) -> dict[str, Any]:
        # While it runs, the lock is held: another run cannot start.
        with pytest.raises(registry.BenchmarkBusy):
            _take_lock_now()
        inside.append(True)
        return {"value": 1}

    monkeypatch.setitem(registry.BENCHMARKS, "probe", registry.Benchmark("probe", "test", probe))
    figures = registry.run("probe")
    assert inside == [True]
    assert figures["value"] == 1
    load = figures["load_average"]
    assert len(load["before"]) == len(load["after"]) == 3
    assert load["quiet_at_start"] is (load["before"][0] <= registry.QUIET_LOAD)
    assert (tmp_path / "results" / "probe.json").exists()
