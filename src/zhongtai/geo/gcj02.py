"""The GCJ-02 ("Mars coordinates") transform.

Everything the platform stores is WGS-84 (what a browser's geolocation and GPS report). GCJ-02 is the
obfuscated datum every map published in mainland China (Amap, Tencent, Tianditu tiles) must use; it is
applied only at the map/display boundary: `wgs84_to_gcj02` before drawing a stored point on such a map,
`gcj02_to_wgs84` for a point picked on one. The forward transform is the widely published one
(Krasovsky 1940 ellipsoid constants); the inverse is iterative. Whether it applies at all is decided by
the admin regions (mainland provinces only), so this module sits above both `coords` and `regions`.
"""

from __future__ import annotations

import math

from zhongtai.geo.coords import Point
from zhongtai.geo.regions import locate

_A = 6378245.0  # semi-major axis of the Krasovsky ellipsoid, as used by GCJ-02
_EE = 0.00669342162296594323  # its first eccentricity squared


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _offset(lat: float, lon: float) -> tuple[float, float]:
    """The GCJ-02 shift (dlat, dlon) in degrees at a WGS-84 position, without the mainland test."""
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = math.radians(lat)
    magic = 1 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return dlat, dlon


def in_mainland_china(p: Point) -> bool:
    """Whether GCJ-02 applies at `p`: inside a mainland province (not Hong Kong, Macao or Taiwan)."""
    if not (0.8293 <= p.lat <= 55.8271 and 72.004 <= p.lon <= 137.8347):
        return False
    region = locate(p)
    return region is not None and region.province_code not in ("710000", "810000", "820000")


def wgs84_to_gcj02(p: Point) -> Point:
    """WGS-84 → GCJ-02 for display on a Chinese map; identity outside mainland China."""
    if not in_mainland_china(p):
        return p
    dlat, dlon = _offset(p.lat, p.lon)
    return Point(p.lat + dlat, p.lon + dlon)


def gcj02_to_wgs84(p: Point) -> Point:
    """GCJ-02 → WGS-84 by fixed-point iteration (error well below 0.5 m); identity outside mainland China."""
    lat, lon = p.lat, p.lon
    for _ in range(30):
        dlat, dlon = _offset(lat, lon)
        nlat, nlon = p.lat - dlat, p.lon - dlon
        if abs(nlat - lat) < 1e-10 and abs(nlon - lon) < 1e-10:
            lat, lon = nlat, nlon
            break
        lat, lon = nlat, nlon
    candidate = Point(max(-90.0, min(90.0, lat)), max(-180.0, min(180.0, lon)))
    return candidate if in_mainland_china(candidate) else p
