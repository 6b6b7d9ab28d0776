"""Territories: a union of administrative regions (codes at any level) and drawn polygons, tested offline."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import shapely

from zhongtai.geo.coords import Point
from zhongtai.geo.regions import locate, region_by_code


def _ring(raw: Sequence[Sequence[float]], where: str) -> list[tuple[float, float]]:
    ring: list[tuple[float, float]] = []
    for i, vertex in enumerate(raw):
        if len(vertex) < 2:
            raise ValueError(f"{where}, vertex {i}: expected (lon, lat), got {vertex!r}")
        lon, lat = vertex[0], vertex[1]
        try:
            Point(lat, lon)
        except ValueError as exc:
            raise ValueError(f"{where}, vertex {i} (lon, lat) = {tuple(vertex)!r}: {exc}") from None
        ring.append((float(lon), float(lat)))
    if ring and ring[0] == ring[-1]:
        ring.pop()
    if len(set(ring)) < 3:
        raise ValueError(f"{where}: a ring needs at least 3 distinct (lon, lat) vertices")
    return ring


class Territory:
    """Union of administrative regions (GB/T 2260 codes, any level) and polygons.

    A polygon is a sequence of rings of (lon, lat) WGS-84 vertices, GeoJSON-like: the first ring is the
    outline, the others are holes. Points on a polygon's edge are inside.
    """

    __slots__ = ("_geometry", "codes", "polygons")

    def __init__(
        self,
        region_codes: Iterable[str] = (),
        polygons: Iterable[Sequence[Sequence[tuple[float, float]]]] = (),
    ) -> None:
        codes: set[str] = set()
        for code in region_codes:
            region = region_by_code(code)
            if region is None:
                raise ValueError(f"unknown region code {code!r}: expected a 6-digit GB/T 2260 code such as 440300")
            codes.add(region.code)
        self.codes = frozenset(codes)
        shapes = []
        for index, rings in enumerate(polygons):
            where = f"polygon {index}"
            if not rings:
                raise ValueError(f"{where}: no rings")
            outline = _ring(rings[0], f"{where}, ring 0")
            holes = [_ring(r, f"{where}, ring {k}") for k, r in enumerate(rings[1:], start=1)]
            polygon = shapely.Polygon(outline, holes)
            if not polygon.is_valid:
                reason = shapely.is_valid_reason(polygon)
                raise ValueError(f"{where} is not a valid polygon ({reason}): check ring order and self-crossings")
            if polygon.area == 0 or not math.isfinite(polygon.area):
                raise ValueError(f"{where} has no area")
            shapes.append(polygon)
        self.polygons = tuple(shapes)
        self._geometry = shapely.union_all(shapes) if shapes else None
        if self._geometry is not None:
            shapely.prepare(self._geometry)

    def contains(self, p: Point) -> bool:
        if self._geometry is not None and shapely.intersects_xy(self._geometry, p.lon, p.lat):
            return True
        if not self.codes:
            return False
        region = locate(p)
        return region is not None and not self.codes.isdisjoint(region.codes)

    def __repr__(self) -> str:
        return f"Territory(region_codes={sorted(self.codes)!r}, polygons={len(self.polygons)})"
