"""A server-rendered SVG map of stores and drawn territories: no tiles, no network, no script.

Positions are projected equirectangularly around the mean latitude (x = lon·cos φ₀, y = −lat), which
keeps shapes recognizable at the scale of a city or a province. Dots are stores (green inside their
dealer's territory, red outside, grey unknown); shaded shapes are the dealers' drawn polygons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from zhongtai.channel.rules import Polygon

WIDTH, HEIGHT, PADDING = 960, 600, 24
PALETTE = ("#2563eb", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#dc2626", "#4b5563")
# Mainland China, for an empty map.
DEFAULT_BOUNDS = (73.5, 18.0, 135.0, 53.6)
LABEL_LIMIT = 60  # above this, names would overlap: the dots keep their names as tooltips


@dataclass(frozen=True)
class MapStore:
    code: str
    name: str
    latitude: float
    longitude: float
    dealer_code: str
    in_territory: bool | None


@dataclass(frozen=True)
class MapTerritory:
    dealer_code: str
    dealer_name: str
    polygons: list[Polygon]


@dataclass(frozen=True)
class MapMark:
    """A place to point at (where diverted goods were seen): an orange cross with a label."""

    label: str
    latitude: float
    longitude: float


def dealer_colors(codes: Sequence[str]) -> dict[str, str]:
    return {code: PALETTE[i % len(PALETTE)] for i, code in enumerate(sorted(set(codes)))}


def _bounds(
    stores: Sequence[MapStore], territories: Sequence[MapTerritory], marks: Sequence[MapMark] = ()
) -> tuple[float, float, float, float]:
    lons = [s.longitude for s in stores] + [m.longitude for m in marks]
    lats = [s.latitude for s in stores] + [m.latitude for m in marks]
    for territory in territories:
        for polygon in territory.polygons:
            for lon, lat in polygon[0]:
                lons.append(lon)
                lats.append(lat)
    if not lons:
        return DEFAULT_BOUNDS
    west, east, south, north = min(lons), max(lons), min(lats), max(lats)
    # At least ~2 km across, so that one store is not a division by zero.
    if east - west < 0.02:
        west, east = west - 0.01, east + 0.01
    if north - south < 0.02:
        south, north = south - 0.01, north + 0.01
    return west, south, east, north


class Projection:
    def __init__(self, bounds: tuple[float, float, float, float]) -> None:
        west, south, east, north = bounds
        self.k = math.cos(math.radians((south + north) / 2))
        span_x, span_y = (east - west) * self.k, north - south
        self.scale = min((WIDTH - 2 * PADDING) / span_x, (HEIGHT - 2 * PADDING) / span_y)
        self.x0 = west * self.k - (WIDTH - 2 * PADDING - span_x * self.scale) / 2 / self.scale
        self.y0 = north + (HEIGHT - 2 * PADDING - span_y * self.scale) / 2 / self.scale

    def __call__(self, lon: float, lat: float) -> tuple[float, float]:
        return PADDING + (lon * self.k - self.x0) * self.scale, PADDING + (self.y0 - lat) * self.scale


def render_map(
    stores: Sequence[MapStore], territories: Sequence[MapTerritory], *, title: str, marks: Sequence[MapMark] = ()
) -> str:
    project = Projection(_bounds(stores, territories, marks))
    colors = dealer_colors([t.dealer_code for t in territories] + [s.dealer_code for s in stores])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="channel-map" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#f8fafc" stroke="#cbd5e1"/>',
    ]
    for territory in territories:
        color = colors[territory.dealer_code]
        for polygon in territory.polygons:
            path = " ".join(
                "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in (project(lon, lat) for lon, lat in ring)) + " Z"
                for ring in polygon
            )
            parts.append(
                f'<path d="{path}" fill="{color}" fill-opacity="0.12" stroke="{color}" stroke-width="1.5"'
                f' fill-rule="evenodd" data-dealer="{escape(territory.dealer_code)}">'
                f"<title>{escape(territory.dealer_code)} {escape(territory.dealer_name)}</title></path>"
            )
    for store in stores:
        x, y = project(store.longitude, store.latitude)
        fill = {True: "#16a34a", False: "#dc2626", None: "#64748b"}[store.in_territory]
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}" stroke="{colors[store.dealer_code]}"'
            f' stroke-width="2" data-store="{escape(store.code)}">'
            f"<title>{escape(store.code)} {escape(store.name)} · {escape(store.dealer_code)}</title></circle>"
        )
        if len(stores) <= LABEL_LIMIT:
            parts.append(
                f'<text x="{x + 8:.1f}" y="{y + 4:.1f}" font-size="12" fill="#0f172a">{escape(store.name)}</text>'
            )
    for mark in marks:
        x, y = project(mark.longitude, mark.latitude)
        parts.append(
            f'<g class="mark" data-mark="{escape(mark.label)}" stroke="#ea580c" stroke-width="3">'
            f'<path d="M{x - 7:.1f},{y - 7:.1f} L{x + 7:.1f},{y + 7:.1f} '
            f'M{x - 7:.1f},{y + 7:.1f} L{x + 7:.1f},{y - 7:.1f}"/>'
            f'<text x="{x + 10:.1f}" y="{y - 8:.1f}" font-size="13" font-weight="bold" fill="#9a3412" stroke="none">'
            f"{escape(mark.label)}</text><title>{escape(mark.label)}</title></g>"
        )
    parts.append(_scale_bar(project))
    parts.append("</svg>")
    return "".join(parts)


def _scale_bar(project: Projection) -> str:
    km_per_pixel = 111.32 / project.scale  # one degree of latitude is about 111 km
    target = km_per_pixel * 120
    nice = next((n for n in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if n >= target), 2000)
    length = nice / km_per_pixel
    x, y = PADDING, HEIGHT - PADDING / 2
    return (
        f'<g class="scale" stroke="#334155" stroke-width="2"><path d="M{x},{y - 4} V{y} H{x + length:.1f} V{y - 4}"'
        f' fill="none"/><text x="{x + length + 6:.1f}" y="{y}" font-size="12" fill="#334155"'
        f' stroke="none">{nice} km</text></g>'
    )
