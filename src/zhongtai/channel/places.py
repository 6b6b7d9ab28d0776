"""Where things are, through `zhongtai.geo` (offline GB/T 2260 regions and territories).

The channel asks three questions: is this region code known, which province/city/county holds this
WGS-84 point, and does a dealer's territory contain it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from zhongtai import geo
from zhongtai.catalog.rules import Problem
from zhongtai.channel.rules import Polygon

FrozenPolygons = tuple[tuple[tuple[tuple[float, float], ...], ...], ...]


@dataclass(frozen=True)
class Place:
    province_code: str | None
    city_code: str | None
    county_code: str | None
    label: str


def _label(region: geo.Region) -> str:
    names: list[str] = []
    for name in (region.province_name, region.city_name, region.county_name):
        if name and name not in names:  # a municipality is its own city: 北京市, not 北京市北京市
            names.append(name)
    return "".join(names)


def region_label(code: str) -> str:
    region = geo.region_by_code(code)
    return _label(region) or code if region is not None else code


def check_region_codes(codes: list[str]) -> list[Problem]:
    """Problems for codes the atlas does not know (the format was checked by the rules)."""
    return [
        Problem("region_codes", "{value} is not a known administrative region code (GB/T 2260).", {"value": code})
        for code in codes
        if geo.region_by_code(code) is None
    ]


def _frozen(polygons: list[Polygon]) -> FrozenPolygons:
    return tuple(tuple(tuple((lon, lat) for lon, lat in ring) for ring in polygon) for polygon in polygons)


def check_polygon_shapes(polygons: list[Polygon]) -> list[Problem]:
    """Self-crossing or area-less polygons, as the territory test would refuse them."""
    if not polygons:
        return []
    try:
        geo.Territory(polygons=[list(polygon) for polygon in _frozen(polygons)])
    except ValueError as exc:
        return [Problem("polygons", "The territory polygons are not valid: {reason}.", {"reason": str(exc)})]
    return []


def locate(latitude: float, longitude: float) -> Place | None:
    region = geo.locate(geo.Point(latitude, longitude))
    if region is None:
        return None
    return Place(region.province_code, region.city_code, region.county_code, _label(region))


def territory_contains(
    region_codes: list[str], polygons: list[Polygon], latitude: float, longitude: float
) -> bool | None:
    """Whether the territory holds the point; None when the dealer has no territory."""
    if not (region_codes or polygons):
        return None
    try:
        territory = _territory(tuple(sorted(region_codes)), _frozen(polygons))
    except ValueError:
        return None  # a stored code the atlas no longer knows: unknown rather than an error
    return territory.contains(geo.Point(latitude, longitude))


@lru_cache(maxsize=512)
def _territory(region_codes: tuple[str, ...], polygons: FrozenPolygons) -> geo.Territory:
    return geo.Territory(region_codes=list(region_codes), polygons=[list(polygon) for polygon in polygons])
