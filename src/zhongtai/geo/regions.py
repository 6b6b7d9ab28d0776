"""Offline administrative regions of China (GB/T 2260 codes): reverse lookup from coordinates and by code.

The boundaries ship in `data/cn_admin.bin` (built by scripts/build_geo_data.py, see docs/geo.md): the
prefecture level (which also holds the municipalities, Hong Kong, Macao, Taiwan and the county-level
units directly under a province) and the county level. Provinces derive from the first two code digits.
The file is loaded at the first call (about a second) and indexed with one STRtree per level over
prepared geometries, so a lookup is two tree queries and a few prepared point-in-polygon tests.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import shapely

from zhongtai.geo.coords import Point

_CODE = re.compile(r"^\d{6}$")
# A point in no polygon but this close (degrees, about 550 m) to one is placed there: it closes slivers
# between neighbouring boundaries and keeps beaches and piers on land after the source's simplification.
_SNAP_DEGREES = 0.005

PROVINCE_NAMES_EN = {
    "110000": "Beijing",
    "120000": "Tianjin",
    "130000": "Hebei",
    "140000": "Shanxi",
    "150000": "Inner Mongolia",
    "210000": "Liaoning",
    "220000": "Jilin",
    "230000": "Heilongjiang",
    "310000": "Shanghai",
    "320000": "Jiangsu",
    "330000": "Zhejiang",
    "340000": "Anhui",
    "350000": "Fujian",
    "360000": "Jiangxi",
    "370000": "Shandong",
    "410000": "Henan",
    "420000": "Hubei",
    "430000": "Hunan",
    "440000": "Guangdong",
    "450000": "Guangxi",
    "460000": "Hainan",
    "500000": "Chongqing",
    "510000": "Sichuan",
    "520000": "Guizhou",
    "530000": "Yunnan",
    "540000": "Tibet",
    "610000": "Shaanxi",
    "620000": "Gansu",
    "630000": "Qinghai",
    "640000": "Ningxia",
    "650000": "Xinjiang",
    "710000": "Taiwan",
    "810000": "Hong Kong",
    "820000": "Macao",
}


@dataclass(frozen=True, slots=True)
class Region:
    """An administrative division. Municipalities (and HK, MO, TW) are their own city."""

    province_code: str
    province_name: str
    city_code: str | None
    city_name: str | None
    county_code: str | None = None
    county_name: str | None = None

    @property
    def code(self) -> str:
        """The most precise code of this region."""
        return self.county_code or self.city_code or self.province_code

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code this region falls under, coarsest first (a territory listing any of them contains it)."""
        return tuple(c for c in (self.province_code, self.city_code, self.county_code) if c)


class _Layer:
    def __init__(self, codes: list[str], geoms: np.ndarray[Any, Any]) -> None:
        self.codes = codes
        self.geoms = geoms
        shapely.prepare(geoms)
        self.tree = shapely.STRtree(geoms)

    def find(self, x: float, y: float, point: shapely.Point) -> str | None:
        candidates = self.tree.query(point)
        if len(candidates):
            hits = candidates[shapely.intersects_xy(self.geoms[candidates], x, y)]
            if len(hits):
                return self.codes[int(hits.min())]
        near = self.tree.query_nearest(point, max_distance=_SNAP_DEGREES, return_distance=False)
        return self.codes[int(near.min())] if len(near) else None


class _Atlas:
    def __init__(self) -> None:
        raw = gzip.decompress(resources.files("zhongtai.geo").joinpath("data/cn_admin.bin").read_bytes())
        (size,) = struct.unpack_from("<I", raw)
        header = json.loads(raw[4 : 4 + size])
        scale = float(header["scale"])
        flat = np.cumsum(np.frombuffer(raw, dtype="<i4", offset=4 + size).astype(np.int64).reshape(-1, 2), axis=0)
        xy = flat / scale
        self.names: dict[str, str] = header["regions"]
        self.city_of: dict[str, str] = {}
        layers: dict[str, tuple[list[str], list[Any]]] = {"city": ([], []), "county": ([], [])}
        cursor = 0
        for feature in header["features"]:
            polygons = []
            for lengths in feature["parts"]:
                rings = []
                for n in lengths:
                    rings.append(xy[cursor : cursor + n])
                    cursor += n
                polygons.append(shapely.Polygon(rings[0], rings[1:]))
            codes, geoms = layers[feature["level"]]
            codes.append(feature["code"])
            geoms.append(shapely.MultiPolygon(polygons))
        city_codes = set(layers["city"][0])
        for code in layers["county"][0]:
            for parent in (code, code[:4] + "00", code[:2] + "0000"):
                if parent in city_codes:
                    self.city_of[code] = parent
                    break
        self.city_codes = city_codes
        self.county_codes = set(layers["county"][0])
        self.city = _Layer(layers["city"][0], np.array(layers["city"][1], dtype=object))
        self.county = _Layer(layers["county"][0], np.array(layers["county"][1], dtype=object))

    def region(self, province: str, city: str | None, county: str | None) -> Region | None:
        if province not in self.names:
            return None
        if county is not None and county == city:
            county = None
        return Region(
            province,
            self.names[province],
            city,
            self.names.get(city) if city else None,
            county,
            self.names.get(county) if county else None,
        )


_loaded: dict[str, _Atlas] = {}
_lock = threading.Lock()


def _get() -> _Atlas:
    atlas = _loaded.get("atlas")
    if atlas is None:
        with _lock:
            atlas = _loaded.get("atlas")
            if atlas is None:
                atlas = _loaded["atlas"] = _Atlas()
    return atlas


def preload() -> None:
    """Load and index the boundaries now (else the first `locate` does it)."""
    _get()


def locate(p: Point) -> Region | None:
    """The province, city and county containing `p` (WGS-84); None outside China or at sea."""
    if not (3.0 <= p.lat <= 54.0 and 73.0 <= p.lon <= 136.0):
        return None
    atlas = _get()
    point = shapely.Point(p.lon, p.lat)
    city = atlas.city.find(p.lon, p.lat, point)
    if city is None:
        return None
    county = atlas.county.find(p.lon, p.lat, point)
    if county is not None and atlas.city_of.get(county) != city:
        county = None  # a boundary sliver between two cities: trust the city level
    return atlas.region(city[:2] + "0000", city, county)


def region_by_code(code: str) -> Region | None:
    """The region of a 6-digit code: "440000" → 广东省 (city None), "440300" → 广东省/深圳市, a county code →
    province/city/county. A municipality's "xx0100" (市辖区) is the municipality itself. None when unknown."""
    if not isinstance(code, str) or not _CODE.match(code):
        return None
    atlas = _get()
    province = code[:2] + "0000"
    if code == province:
        return atlas.region(province, None, None)
    if code in atlas.county_codes:
        return atlas.region(province, atlas.city_of.get(code), code)
    if code in atlas.city_codes:
        return atlas.region(province, code, None)
    if code[4:] == "00" and code[2:4] in ("01", "02") and province in atlas.city_codes:
        return atlas.region(province, province, None)
    return None


def region_name(code: str, lang: str = "zh") -> str | None:
    """The name of a region code: Chinese by default; English for provinces (lang="en"), else None."""
    if lang.lower().startswith("en"):
        return PROVINCE_NAMES_EN.get(code)
    return _get().names.get(code) if isinstance(code, str) else None


def all_regions(level: str) -> list[tuple[str, str]]:
    """(code, name) of every region at `level` ("province", "city" or "county"), sorted by code."""
    atlas = _get()
    if level == "province":
        codes = {c[:2] + "0000" for c in atlas.city_codes}
    elif level == "city":
        codes = atlas.city_codes
    elif level == "county":
        codes = atlas.county_codes - atlas.city_codes
    else:
        raise ValueError(f"level must be province, city or county, got {level!r}")
    return sorted((c, atlas.names[c]) for c in codes if c in atlas.names)
