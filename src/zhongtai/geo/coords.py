"""Points and great-circle distance.

Everything the platform stores is WGS-84 (what a browser's geolocation and GPS report); the GCJ-02
display transform, which needs the admin regions, is in `zhongtai.geo.gcj02`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius of the WGS-84 ellipsoid


@dataclass(frozen=True, slots=True)
class Point:
    """A WGS-84 position in decimal degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        for label, value, limit in (("lat", self.lat, 90.0), ("lon", self.lon, 180.0)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{label} must be a number of degrees, got {value!r}")  # noqa: TRY004 (one error type for callers)
            if not math.isfinite(value) or not -limit <= value <= limit:
                raise ValueError(f"{label} must be within [-{limit:g}, {limit:g}] degrees, got {value!r}")


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance on the mean-radius sphere (haversine); within 0.5 % of the geodesic."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
