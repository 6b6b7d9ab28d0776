"""Pure channel rules: partner codes, names, phone numbers, WGS-84 locations and drawn territory
polygons (GeoJSON). No I/O.

Each rule reports a `Problem` (field, English template, values) as the catalog does, so that the
API shows the message and the console shows it translated. Region codes are checked against the
offline atlas in `channel.places`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zhongtai.catalog.rules import Problem
from zhongtai.core.consumers import check_phone
from zhongtai.core.errors import ValidationFailed

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
REGION_CODE_RE = re.compile(r"^[1-9]\d{5}$")
TEXT_LIMITS = {"name": 200, "contact_name": 80, "address": 300}
MAX_REGION_CODES = 500
MAX_POLYGONS = 50
MAX_VERTICES = 5_000  # over all rings of a territory

__all__ = ["Problem"]

# Partner roles (a partner account is a dealer's, a store's or a shopping guide's).
PARTNER_DEALER = "dealer"
PARTNER_STORE = "store"
PARTNER_GUIDE = "guide"
PARTNER_ROLES = (PARTNER_DEALER, PARTNER_STORE, PARTNER_GUIDE)

# Who holds an item now (custody).
HOLDER_DEALER = "dealer"
HOLDER_TRANSIT = "transit"  # shipped by the dealer, not yet received by the store
HOLDER_STORE = "store"
HOLDER_SOLD = "sold"
HOLDERS = (HOLDER_DEALER, HOLDER_TRANSIT, HOLDER_STORE, HOLDER_SOLD)

# A ring: positions of [lon, lat]; a polygon: outline then holes; a territory: any number of polygons.
Ring = list[list[float]]
Polygon = list[Ring]


@dataclass(frozen=True)
class DealerDraft:
    code: str
    name: str
    contact_name: str = ""
    phone: str = ""
    region_codes: Sequence[str] = ()
    polygons: Any = None  # a GeoJSON Polygon/MultiPolygon/Feature/FeatureCollection, or a list of polygons


@dataclass(frozen=True)
class StoreDraft:
    code: str
    name: str
    dealer_code: str
    address: str = ""
    contact_name: str = ""
    phone: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class GuideDraft:
    name: str
    phone: str


@dataclass
class Checked:
    """What passed the pure rules, with the problems of what did not."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def check_code(raw: str, checked: Checked, name: str = "code") -> None:
    code = (raw or "").strip()
    if not code:
        checked.problems.append(Problem(name, "Enter a code."))
    elif not CODE_RE.match(code):
        checked.problems.append(
            Problem(
                name,
                "A code has 1 to 40 letters, digits, dots, hyphens or underscores; '{value}' does not.",
                {"value": code[:60]},
            )
        )
    checked.values[name] = code


def check_text(name: str, raw: str, checked: Checked, *, required: bool = False) -> None:
    text = " ".join((raw or "").split())
    limit = TEXT_LIMITS[name]
    if required and not text:
        checked.problems.append(Problem(name, "Enter a name."))
    elif len(text) > limit:
        checked.problems.append(Problem(name, "At most {limit} characters.", {"limit": limit}))
    checked.values[name] = text


def check_optional_phone(raw: str, checked: Checked, *, required: bool = False) -> None:
    text = (raw or "").strip()
    if not text:
        if required:
            checked.problems.append(Problem("phone", "Enter a phone number."))
        checked.values["phone"] = None
        return
    try:
        checked.values["phone"] = check_phone(text)
    except ValidationFailed as exc:
        checked.problems.append(Problem("phone", exc.message))
        checked.values["phone"] = None


def check_location(latitude: float | None, longitude: float | None, checked: Checked) -> None:
    checked.values["latitude"] = checked.values["longitude"] = None
    if latitude is None and longitude is None:
        return
    if latitude is None or longitude is None:
        checked.problems.append(
            Problem("latitude" if latitude is None else "longitude", "Give both latitude and longitude, or neither.")
        )
        return
    for name, value, limit in (("latitude", latitude, 90.0), ("longitude", longitude, 180.0)):
        if not math.isfinite(value) or not -limit <= value <= limit:
            checked.problems.append(
                Problem(
                    name, "WGS-84 {name} runs from -{limit} to {limit} degrees; got {value}.", _deg(name, value, limit)
                )
            )
            return
    if latitude == 0 and longitude == 0:
        checked.problems.append(Problem("latitude", "0, 0 is not a store location; leave the location empty instead."))
        return
    checked.values["latitude"], checked.values["longitude"] = float(latitude), float(longitude)


def _deg(name: str, value: float, limit: float) -> dict[str, object]:
    return {"name": name, "value": value, "limit": f"{limit:g}"}


def check_region_code_format(codes: Sequence[str], checked: Checked) -> list[str]:
    cleaned: list[str] = []
    for raw in codes:
        code = str(raw).strip()
        if not code:
            continue
        if not REGION_CODE_RE.match(code):
            checked.problems.append(
                Problem(
                    "region_codes",
                    "'{value}' is not an administrative region code: use 6 digits such as 440300 (深圳市).",
                    {"value": code[:20]},
                )
            )
            continue
        if code not in cleaned:
            cleaned.append(code)
    if len(cleaned) > MAX_REGION_CODES:
        checked.problems.append(
            Problem("region_codes", "A territory lists at most {limit} regions.", {"limit": MAX_REGION_CODES})
        )
    return cleaned


# Polygons.


class _Bad(ValueError):
    def __init__(self, template: str, **values: object) -> None:
        super().__init__(template)
        self.problem = Problem("polygons", template, values)


def _polygons_of(value: Any) -> list[Any]:
    """The list of polygons (each a list of rings) in a GeoJSON object or a bare list of polygons."""
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        raise _Bad("Territory polygons must be GeoJSON (a Polygon, MultiPolygon, Feature or FeatureCollection).")
    kind = value.get("type")
    if kind == "FeatureCollection":
        features = value.get("features")
        if not isinstance(features, list):
            raise _Bad("A GeoJSON FeatureCollection needs a list of features.")
        return [polygon for feature in features for polygon in _polygons_of(feature)]
    if kind == "Feature":
        return _polygons_of(value.get("geometry"))
    coordinates = value.get("coordinates")
    if kind == "Polygon" and isinstance(coordinates, list):
        return [coordinates]
    if kind == "MultiPolygon" and isinstance(coordinates, list):
        return coordinates
    raise _Bad("Only GeoJSON Polygon and MultiPolygon geometries can be a territory; got {kind}.", kind=str(kind)[:40])


def _position(raw: Any, where: str) -> list[float]:
    if (
        not isinstance(raw, list | tuple)
        or len(raw) < 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw[:2])
    ):
        raise _Bad("{where}: a position is [longitude, latitude] in degrees.", where=where)
    lon, lat = float(raw[0]), float(raw[1])
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise _Bad(
            "{where}: longitude {value} is outside -180 to 180 (positions are [longitude, latitude]).",
            where=where,
            value=raw[0],
        )
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise _Bad(
            "{where}: latitude {value} is outside -90 to 90 (positions are [longitude, latitude]).",
            where=where,
            value=raw[1],
        )
    return [lon, lat]


def parse_polygons(value: Any) -> list[Polygon]:
    """Drawn polygons as stored: closed rings of [lon, lat]. Raises `ValueError` with a `problem`."""
    if value is None or value in ([], {}):
        return []
    polygons = _polygons_of(value)
    if len(polygons) > MAX_POLYGONS:
        raise _Bad("A territory has at most {limit} polygons.", limit=MAX_POLYGONS)
    parsed: list[Polygon] = []
    vertices = 0
    for p, rings in enumerate(polygons, start=1):
        if not isinstance(rings, list) or not rings:
            raise _Bad("Polygon {polygon} has no rings.", polygon=p)
        polygon: Polygon = []
        for r, ring in enumerate(rings, start=1):
            where = f"polygon {p}, ring {r}"
            if not isinstance(ring, list) or len(ring) < 4:
                raise _Bad("{where}: a ring needs at least 4 positions, the last equal to the first.", where=where)
            positions = [_position(raw, f"{where}, position {i}") for i, raw in enumerate(ring, start=1)]
            if positions[0] != positions[-1]:
                raise _Bad("{where} is not closed: its last position must equal its first.", where=where)
            if len({tuple(pos) for pos in positions}) < 3:
                raise _Bad("{where} needs at least 3 distinct positions.", where=where)
            vertices += len(positions)
            polygon.append(positions)
        parsed.append(polygon)
    if vertices > MAX_VERTICES:
        raise _Bad(
            "The territory polygons have {count} positions; at most {limit} are allowed. Simplify the drawing.",
            count=vertices,
            limit=MAX_VERTICES,
        )
    return parsed


def check_polygons(value: Any, checked: Checked) -> None:
    try:
        checked.values["polygons"] = parse_polygons(value)
    except _Bad as exc:
        checked.problems.append(exc.problem)
        checked.values["polygons"] = []


def as_geojson(polygons: list[Polygon]) -> dict[str, Any] | None:
    if not polygons:
        return None
    return {"type": "MultiPolygon", "coordinates": polygons}


def vertex_count(polygons: list[Polygon]) -> int:
    return sum(len(ring) for polygon in polygons for ring in polygon)
