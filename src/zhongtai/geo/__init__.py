"""Geography for the platform: WGS-84 points, GCJ-02 display transform, distances, offline admin regions
of China (GB/T 2260) and dealer territories. See docs/geo.md."""

from zhongtai.geo.coords import EARTH_RADIUS_KM, Point, distance_km
from zhongtai.geo.gcj02 import gcj02_to_wgs84, in_mainland_china, wgs84_to_gcj02
from zhongtai.geo.regions import Region, all_regions, locate, preload, region_by_code, region_name
from zhongtai.geo.territory import Territory

__all__ = [
    "EARTH_RADIUS_KM",
    "Point",
    "Region",
    "Territory",
    "all_regions",
    "distance_km",
    "gcj02_to_wgs84",
    "in_mainland_china",
    "locate",
    "preload",
    "region_by_code",
    "region_name",
    "wgs84_to_gcj02",
]
