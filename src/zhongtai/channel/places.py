"""Where things are, through `zhongtai.geo` (offline GB/T 2260 regions and territories).

The channel asks three questions: is this region code known, which province/city/county holds this
WGS-84 point, and does a dealer's territory contain it. When the geography package is not
installed the answers degrade visibly — codes are checked by format only, points resolve to no
region, and territory membership is unknown (None) — rather than guessed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from zhongtai.catalog.rules import Problem
from zhongtai.channel.rules import Polygon


@cache
def _geo() -> Any | None:
    try:
        return importlib.import_module("zhongtai.geo")
    except ImportError:
        return None


def geography_available() -> bool:
    return _geo() is not None


@dataclass(frozen=True)
class Place:
    province_code: str | None
    city_code: str | None
    county_code: str | None
    label: str


def region_label(code: str) -> str:
    geo = _geo()
    if geo is None:
        return code
    region = geo.region_by_code(code)
    if region is None:
        return code
    return "".join(name for name in (region.province_name, region.city_name, region.county_name) if name) or code


def check_region_codes(codes: list[str]) -> list[Problem]:
    """Problems for codes the atlas does not know (format was checked by the rules)."""
    geo = _geo()
    if geo is None:
        return []
    return [
        Problem(
            "region_codes",
            "{value} is not a known administrative region code (GB/T 2260).",
            {"value": code},
        )
        for code in codes
        if geo.region_by_code(code) is None
    ]


def check_polygon_shapes(polygons: list[Polygon]) -> list[Problem]:
    """Self-crossing or area-less polygons, as the territory test would refuse them."""
    geo = _geo()
    if geo is None or not polygons:
        return []
    try:
        geo.Territory(polygons=[[[(lon, lat) for lon, lat in ring] for ring in polygon] for polygon in polygons])
    except ValueError as exc:
        return [Problem("polygons", "The territory polygons are not valid: {reason}.", {"reason": str(exc)})]
    return []


def locate(latitude: float, longitude: float) -> Place | None:
    geo = _geo()
    if geo is None:
        return None
    region = geo.locate(geo.Point(latitude, longitude))
    if region is None:
        return None
    label = "".join(name for name in (region.province_name, region.city_name, region.county_name) if name)
    return Place(region.province_code, region.city_code, region.county_code, label)


def territory_contains(
    region_codes: list[str], polygons: list[Polygon], latitude: float, longitude: float
) -> bool | None:
    """Whether the territory holds the point; None when there is no territory or no geography."""
    geo = _geo()
    if geo is None or not (region_codes or polygons):
        return None
    territory = _territory(tuple(region_codes), _frozen(polygons))
    return bool(territory.contains(geo.Point(latitude, longitude)))


def _frozen(polygons: list[Polygon]) -> tuple[tuple[tuple[tuple[float, float], ...], ...], ...]:
    return tuple(tuple(tuple((lon, lat) for lon, lat in ring) for ring in polygon) for polygon in polygons)


@lru_cache(maxsize=512)
def _territory(region_codes: tuple[str, ...], polygons: tuple[Any, ...]) -> Any:
    geo = _geo()
    assert geo is not None
    return geo.Territory(region_codes=list(region_codes), polygons=[list(map(list, p)) for p in polygons])
