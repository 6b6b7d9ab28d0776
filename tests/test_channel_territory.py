"""Territories with real coordinates: region codes at city and county level, drawn polygons, the
regions a store's location resolves to, and refusals of unknown codes and self-crossing drawings."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import bearer, make_brand, make_token
from zhongtai.core.runtime import Runtime

API = "/api/v1/channel"
TIANHE = (23.1291, 113.2644)  # 广州市越秀区/天河区 boundary area, Guangzhou
SHENZHEN_NANSHAN = (22.5333, 113.9305)  # 深圳市南山区
BEIJING = (39.9042, 116.4074)
# A box over Shenzhen's Nanshan and Futian districts, drawn as [lon, lat].
SHENZHEN_BOX = {
    "type": "Feature",
    "properties": {"name": "深圳西"},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[113.85, 22.45], [114.10, 22.45], [114.10, 22.65], [113.85, 22.65], [113.85, 22.45]]],
    },
}


async def _post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{API}{path}", json=body, headers=headers)


async def test_store_regions_and_territory_membership(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    guangzhou = await _post(client, headers, "/dealers", {"code": "GZ", "name": "广州经销", "region_codes": ["440100"]})
    assert guangzhou.status_code == 201, guangzhou.text
    assert guangzhou.json()["territory_regions"] == [{"code": "440100", "name": "广东省广州市"}]
    drawn = await _post(client, headers, "/dealers", {"code": "SZ", "name": "深圳经销", "polygons": SHENZHEN_BOX})
    assert drawn.status_code == 201, drawn.text

    async def store(code: str, dealer: str, where: tuple[float, float]) -> dict[str, Any]:
        body = {"code": code, "name": code, "dealer_code": dealer, "latitude": where[0], "longitude": where[1]}
        response = await _post(client, headers, "/stores", body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    inside = await store("GZ-1", "GZ", TIANHE)
    assert inside["region_codes"] == ["440000", "440100", "440104"]
    assert inside["in_dealer_territory"] is True
    outside = await store("GZ-2", "GZ", SHENZHEN_NANSHAN)
    assert outside["region_codes"] == ["440000", "440300", "440305"]
    assert outside["in_dealer_territory"] is False
    assert (await store("SZ-1", "SZ", SHENZHEN_NANSHAN))["in_dealer_territory"] is True
    assert (await store("SZ-2", "SZ", TIANHE))["in_dealer_territory"] is False
    beijing = await store("SZ-3", "SZ", BEIJING)
    assert beijing["region_codes"] == ["110000", "110101"]
    assert beijing["in_dealer_territory"] is False

    # Moving a store re-resolves its regions.
    moved = await client.patch(
        f"{API}/stores/{outside['id']}", json={"latitude": TIANHE[0], "longitude": TIANHE[1]}, headers=headers
    )
    assert moved.json()["in_dealer_territory"] is True
    assert moved.json()["region_codes"][1] == "440100"

    # County-level territory: Nanshan only.
    nanshan = await _post(client, headers, "/dealers", {"code": "NS", "name": "南山", "region_codes": ["440305"]})
    assert nanshan.status_code == 201, nanshan.text
    dealer_id = nanshan.json()["id"]
    for where, expected in ((SHENZHEN_NANSHAN, True), ((22.5431, 114.0579), False), (TIANHE, False)):
        check = await _post(
            client, headers, f"/dealers/{dealer_id}/territory-check", {"latitude": where[0], "longitude": where[1]}
        )
        assert check.status_code == 200, check.text
        assert check.json()["inside"] is expected, where
    no_territory = await _post(client, headers, "/dealers", {"code": "NONE", "name": "none"})
    check = await _post(
        client, headers, f"/dealers/{no_territory.json()['id']}/territory-check", {"latitude": 23.1, "longitude": 113.3}
    )
    assert (check.json()["inside"], check.json()["place"]) == (None, "广东省广州市海珠区")


async def test_unknown_regions_and_bad_drawings_are_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    unknown = await _post(client, headers, "/dealers", {"code": "X", "name": "x", "region_codes": ["440100", "449999"]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "449999 is not a known administrative region code (GB/T 2260)."
    bowtie = {"type": "Polygon", "coordinates": [[[113, 22], [114, 23], [114, 22], [113, 23], [113, 22]]]}
    crossing = await _post(client, headers, "/dealers", {"code": "X", "name": "x", "polygons": bowtie})
    assert crossing.status_code == 422
    assert crossing.json()["data"]["field"] == "polygons"
    assert crossing.json()["detail"].startswith(
        "The territory polygons are not valid: polygon 0 is not a valid polygon"
    )
