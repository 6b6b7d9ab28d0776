"""Channel REST API: dealers, stores, guides — validation refusals, uniques per brand, archive,
masked phones, audit, permissions."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.factories import Brand, bearer, make_brand, make_token
from zhongtai.channel.models import Dealer
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

API = "/api/v1/channel"


async def _brand_token(runtime: Runtime) -> tuple[Brand, dict[str, str]]:
    brand = await make_brand(runtime)
    return brand, bearer(await make_token(runtime, brand))


async def _post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


SQUARE = {
    "type": "Polygon",
    "coordinates": [[[113.0, 22.0], [114.0, 22.0], [114.0, 23.0], [113.0, 23.0], [113.0, 22.0]]],
}


async def test_dealer_store_guide_round_trip(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers = await _brand_token(runtime)
    dealer = await _post(
        client,
        headers,
        "/dealers",
        {
            "code": "D-001",
            "name": " 华南  商贸 ",
            "contact_name": "王经理",
            "phone": "138 1234 5678",
            "polygons": SQUARE,
        },
    )
    assert dealer["name"] == "华南 商贸"
    assert dealer["phone_masked"] == "138****5678"
    assert dealer["territory_polygons"] == {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}
    assert dealer["status"] == "active"
    store = await _post(
        client,
        headers,
        "/stores",
        {"code": "S-001", "name": "天河店", "dealer_code": "D-001", "latitude": 23.1291, "longitude": 113.2644},
    )
    assert store["dealer_id"] == dealer["id"]
    assert store["dealer_code"] == "D-001"
    assert (store["latitude"], store["longitude"]) == (23.1291, 113.2644)
    guide = await _post(client, headers, f"/stores/{store['id']}/guides", {"name": "小李", "phone": "13900001111"})
    assert guide["phone_masked"] == "139****1111"
    assert guide["store_id"] == store["id"]

    listed = (await client.get(f"{API}/stores", params={"dealer_id": dealer["id"]}, headers=headers)).json()
    assert [s["code"] for s in listed["items"]] == ["S-001"]
    found = (await client.get(f"{API}/dealers", params={"q": "华南"}, headers=headers)).json()
    assert [d["code"] for d in found["items"]] == ["D-001"]
    guides = (await client.get(f"{API}/guides", params={"store_id": store["id"]}, headers=headers)).json()
    assert [g["name"] for g in guides["items"]] == ["小李"]

    # The phone is stored encrypted, never in clear.
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(Dealer))
        assert row is not None
        assert row.phone_ciphertext is not None
        assert "13812345678" not in row.phone_ciphertext
        assert runtime.crypto.pii.decrypt(row.phone_ciphertext, purpose="channel.phone") == "+8613812345678"
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.startswith("channel."))
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["channel.dealer.create", "channel.store.create", "channel.guide.create"]


async def test_update_and_archive(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)
    dealer = await _post(client, headers, "/dealers", {"code": "D-1", "name": "One"})
    await _post(client, headers, "/dealers", {"code": "D-2", "name": "Two"})
    store = await _post(client, headers, "/stores", {"code": "S-1", "name": "Store", "dealer_code": "D-1"})

    changed = await client.patch(
        f"{API}/dealers/{dealer['id']}", json={"name": "Uno", "phone": "13800000000"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["code"], changed.json()["phone_masked"]) == (
        "Uno",
        "D-1",
        "138****0000",
    )
    moved = await client.patch(f"{API}/stores/{store['id']}", json={"dealer_code": "D-2"}, headers=headers)
    assert moved.json()["dealer_code"] == "D-2"

    archived = await client.post(f"{API}/dealers/{dealer['id']}/archive", headers=headers)
    assert archived.json()["status"] == "archived"
    assert archived.json()["archived_at"] is not None
    refused = await client.post(
        f"{API}/stores", json={"code": "S-2", "name": "x", "dealer_code": "D-1"}, headers=headers
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == "Dealer D-1 is archived; choose an active dealer."
    # Archived rows stay readable and can come back.
    assert (await client.get(f"{API}/dealers/{dealer['id']}", headers=headers)).status_code == 200
    active = (await client.get(f"{API}/dealers", params={"status": "active"}, headers=headers)).json()
    assert [d["code"] for d in active["items"]] == ["D-2"]
    back = await client.post(f"{API}/dealers/{dealer['id']}/unarchive", headers=headers)
    assert (back.json()["status"], back.json()["archived_at"]) == ("active", None)


async def test_validation_refusals_name_the_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)

    async def refused(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(f"{API}{path}", json=body, headers=headers)
        assert response.status_code == 422, response.text
        result: dict[str, Any] = response.json()
        return result

    bad_code = await refused("/dealers", {"code": "D 1/x", "name": "x"})
    assert bad_code["error"] == "invalid_fields"
    assert bad_code["data"]["field"] == "code"
    assert bad_code["detail"] == "A code has 1 to 40 letters, digits, dots, hyphens or underscores; 'D 1/x' does not."
    no_name = await refused("/dealers", {"code": "D1", "name": "  "})
    assert (no_name["data"]["field"], no_name["detail"]) == ("name", "Enter a name.")
    phone = await refused("/dealers", {"code": "D1", "name": "x", "phone": "12345"})
    assert phone["data"]["field"] == "phone"
    region = await refused("/dealers", {"code": "D1", "name": "x", "region_codes": ["4403"]})
    assert region["detail"] == "'4403' is not an administrative region code: use 6 digits such as 440300 (深圳市)."
    open_ring = {"type": "Polygon", "coordinates": [[[113, 22], [114, 22], [114, 23], [113, 23]]]}
    not_closed = await refused("/dealers", {"code": "D1", "name": "x", "polygons": open_ring})
    assert not_closed["detail"] == "polygon 1, ring 1 is not closed: its last position must equal its first."
    swapped = {"type": "Polygon", "coordinates": [[[22, 113], [23, 114], [22, 114], [22, 113]]]}
    latitude = await refused("/dealers", {"code": "D1", "name": "x", "polygons": swapped})
    assert latitude["detail"] == (
        "polygon 1, ring 1, position 1: latitude 113 is outside -90 to 90 (positions are [longitude, latitude])."
    )
    point = await refused("/dealers", {"code": "D1", "name": "x", "polygons": {"type": "Point", "coordinates": [1, 2]}})
    assert point["detail"] == "Only GeoJSON Polygon and MultiPolygon geometries can be a territory; got Point."
    ring = [[113 + i / 10_000, 22.0] for i in range(5_001)] + [[113.0, 23.0], [113.0, 22.0]]
    huge = await refused(
        "/dealers", {"code": "D1", "name": "x", "polygons": {"type": "Polygon", "coordinates": [ring]}}
    )
    assert huge["detail"] == (
        "The territory polygons have 5003 positions; at most 5000 are allowed. Simplify the drawing."
    )

    await _post(client, headers, "/dealers", {"code": "D1", "name": "x"})
    half = await refused("/stores", {"code": "S1", "name": "x", "dealer_code": "D1", "latitude": 23.1})
    assert (half["data"]["field"], half["detail"]) == ("longitude", "Give both latitude and longitude, or neither.")
    far = await refused(
        "/stores", {"code": "S1", "name": "x", "dealer_code": "D1", "latitude": 123.0, "longitude": 23.0}
    )
    assert far["detail"] == "WGS-84 latitude runs from -90 to 90 degrees; got 123.0."
    nobody = await refused("/stores", {"code": "S1", "name": "x", "dealer_code": "D9"})
    assert (nobody["data"]["field"], nobody["detail"]) == ("dealer_code", "No dealer has the code D9.")
    # Every problem is listed, not only the first.
    many = await refused("/stores", {"code": "", "name": "", "dealer_code": "D1"})
    assert [e["field"] for e in many["data"]["errors"]] == ["code", "name"]


async def test_codes_and_phones_are_unique_per_brand(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)
    _other, other_headers = await _brand_token(runtime)
    await _post(client, headers, "/dealers", {"code": "D-1", "name": "x"})
    again = await client.post(f"{API}/dealers", json={"code": "D-1", "name": "y"}, headers=headers)
    assert again.status_code == 409
    assert again.json() == {
        "error": "duplicate_code",
        "detail": "A dealer with code D-1 already exists.",
        "data": {"field": "code", "kind": "dealer", "value": "D-1"},
    }
    # Another brand may use the same code.
    await _post(client, other_headers, "/dealers", {"code": "D-1", "name": "x"})
    d2 = await _post(client, headers, "/dealers", {"code": "D-2", "name": "x"})
    renamed = await client.patch(f"{API}/dealers/{d2['id']}", json={"code": "D-1"}, headers=headers)
    assert renamed.status_code == 409

    store = await _post(client, headers, "/stores", {"code": "S-1", "name": "x", "dealer_code": "D-1"})
    twin = await client.post(f"{API}/stores", json={"code": "S-1", "name": "x", "dealer_code": "D-2"}, headers=headers)
    assert twin.json()["detail"] == "A store with code S-1 already exists."
    await _post(client, headers, f"/stores/{store['id']}/guides", {"name": "A", "phone": "13900001111"})
    same = await client.post(
        f"{API}/stores/{store['id']}/guides", json={"name": "B", "phone": "+86 139 0000 1111"}, headers=headers
    )
    assert (same.status_code, same.json()["detail"]) == (409, "A shopping guide with this phone number already exists.")


async def test_permissions(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    reader = bearer(await make_token(runtime, brand, ["channel.read"]))
    manager = bearer(await make_token(runtime, brand, ["channel.manage"]))
    assert (await client.get(f"{API}/dealers", headers=reader)).status_code == 200
    refused = await client.post(f"{API}/dealers", json={"code": "D", "name": "x"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This needs the permission 'channel.manage'."
    assert (await client.post(f"{API}/dealers", json={"code": "D", "name": "x"}, headers=manager)).status_code == 201
    assert (await client.get(f"{API}/dealers")).status_code == 401
