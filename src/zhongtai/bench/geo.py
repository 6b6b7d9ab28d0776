"""`zhongtai bench geo` — offline reverse lookups (`locate`), GCJ-02 transforms and territory tests per second.

Points are drawn with a fixed seed: half from around 300 cities' boxes (land, the common case for scans),
half uniformly over China's bounding box (much of it sea or abroad, answered by the same index). Each
phase runs single-threaded for `seconds`; the per-call median and p95 come from timing calls one by one.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from zhongtai import geo
from zhongtai.bench.registry import benchmark

SAMPLE = 20_000


def _points(n: int) -> list[geo.Point]:
    rng = random.Random(2260)
    cities = [geo.Point(lat, lon) for lat, lon in _CITY_CENTRES]
    out = []
    for i in range(n):
        if i % 2:
            c = rng.choice(cities)
            out.append(geo.Point(c.lat + rng.uniform(-0.2, 0.2), c.lon + rng.uniform(-0.2, 0.2)))
        else:
            out.append(geo.Point(rng.uniform(18.0, 53.5), rng.uniform(73.5, 135.0)))
    return out


# a spread of prefecture capitals (WGS-84), enough to keep the land half varied
_CITY_CENTRES = [
    (39.90, 116.40),
    (31.23, 121.47),
    (23.13, 113.26),
    (22.54, 114.06),
    (30.57, 104.07),
    (29.56, 106.55),
    (30.59, 114.31),
    (34.34, 108.94),
    (36.06, 103.83),
    (43.83, 87.62),
    (29.65, 91.17),
    (20.04, 110.20),
    (26.65, 106.63),
    (27.85, 106.38),
    (25.04, 102.71),
    (22.82, 108.37),
    (28.23, 112.94),
    (28.68, 115.86),
    (26.07, 119.30),
    (30.27, 120.16),
    (32.06, 118.80),
    (31.82, 117.23),
    (36.65, 117.12),
    (34.75, 113.63),
    (38.04, 114.51),
    (37.87, 112.55),
    (40.84, 111.75),
    (41.81, 123.43),
    (43.82, 125.32),
    (45.80, 126.53),
    (38.49, 106.23),
    (36.62, 101.78),
    (39.13, 117.20),
    (24.48, 118.09),
    (23.02, 113.75),
    (22.27, 113.58),
]


def _rate(func: Callable[[geo.Point], object], points: list[geo.Point], seconds: float) -> dict[str, float]:
    timings = []
    for p in points[:SAMPLE]:
        start = time.perf_counter()
        func(p)
        timings.append(time.perf_counter() - start)
    timings.sort()
    calls = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for p in points[:1000]:
            func(p)
        calls += 1000
    elapsed = time.perf_counter() - start
    return {
        "per_s": round(calls / elapsed),
        "median_us": round(statistics.median(timings) * 1e6, 1),
        "p95_us": round(timings[int(len(timings) * 0.95)] * 1e6, 1),
    }


@benchmark("geo", "offline locate() reverse lookups, GCJ-02 transforms and Territory.contains per second")
def run_geo_benchmark(seconds: float = 5.0, **_ignored: Any) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    start = time.perf_counter()
    geo.preload()
    load_s = time.perf_counter() - start
    points = _points(SAMPLE)
    found = sum(1 for p in points if geo.locate(p) is not None)
    territory = geo.Territory(
        region_codes=["520300", "110000", "440304"],
        polygons=[[[(121.42, 31.18), (121.52, 31.18), (121.52, 31.28), (121.42, 31.28)]]],
    )
    figures: dict[str, Any] = {"load_s": round(load_s, 3), "points": SAMPLE, "points_in_china": found}
    for name, func in (
        ("locate", geo.locate),
        ("wgs84_to_gcj02", geo.wgs84_to_gcj02),
        ("territory_contains", territory.contains),
    ):
        for key, value in _rate(func, points, seconds).items():
            figures[f"{name}_{key}"] = value
    figures["load_avg_1m"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
    return figures
