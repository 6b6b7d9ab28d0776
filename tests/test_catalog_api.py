"""Catalog REST API: products, GTIN refusals, uniqueness, archive, lots, permissions, audit."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.factories import Brand, bearer, make_brand, make_token
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

PRODUCTS = "/api/v1/catalog/products"


async def _brand_token(runtime: Runtime) -> tuple[Brand, dict[str, str]]:
    brand = await make_brand(runtime)
    return brand, bearer(await make_token(runtime, brand))


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"gtin": "6901234567892", "name": "Green tea"} | fields
    response = await client.post(PRODUCTS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _audit_actions(runtime: Runtime, brand: Brand) -> list[tuple[str, str | None]]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.action.startswith("catalog.")).order_by(AuditEvent.created_at)
        )
        return [(e.action, e.target_id) for e in events]


async def test_create_get_and_list_products(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers = await _brand_token(runtime)
    created = await _create(
        client,
        headers,
        specification="500 ml",
        category="Beverages",
        image_urls=["https://img.example/tea.png"],
        price="12.5",
        items_per_case=24,
        cases_per_pallet=40,
    )
    assert {k: v for k, v in created.items() if k not in ("id", "created_at", "updated_at")} == {
        "gtin": "06901234567892",
        "name": "Green tea",
        "specification": "500 ml",
        "category": "Beverages",
        "image_urls": ["https://img.example/tea.png"],
        "price": "12.50",
        "items_per_case": 24,
        "cases_per_pallet": 40,
        "items_per_pallet": 960,
        "status": "active",
        "archived_at": None,
    }
    fetched = await client.get(f"{PRODUCTS}/{created['id']}", headers=headers)
    assert fetched.json() == created
    await _create(client, headers, gtin="96385074", name="Black tea")
    await _create(client, headers, gtin="4006381333931", name="Oolong", category="Tea leaves")

    listed = await client.get(PRODUCTS, params={"per_page": 2}, headers=headers)
    assert listed.status_code == 200
    body = listed.json()
    assert (body["total"], body["page"], body["per_page"]) == (3, 1, 2)
    assert [p["name"] for p in body["items"]] == ["Black tea", "Green tea"]
    second = await client.get(PRODUCTS, params={"per_page": 2, "page": 2}, headers=headers)
    assert [p["name"] for p in second.json()["items"]] == ["Oolong"]

    by_name = await client.get(PRODUCTS, params={"q": "TEA"}, headers=headers)
    assert [p["name"] for p in by_name.json()["items"]] == ["Black tea", "Green tea", "Oolong"]
    by_gtin = await client.get(PRODUCTS, params={"q": "9638"}, headers=headers)
    assert [p["gtin"] for p in by_gtin.json()["items"]] == ["00000096385074"]
    by_category = await client.get(PRODUCTS, params={"q": "leaves"}, headers=headers)
    assert [p["name"] for p in by_category.json()["items"]] == ["Oolong"]
    wildcard = await client.get(PRODUCTS, params={"q": "%"}, headers=headers)
    assert wildcard.json()["total"] == 0
    assert (await _audit_actions(runtime, brand))[0] == ("catalog.product.create", created["id"])


async def test_wrong_check_digit_names_the_expected_one(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)
    response = await client.post(PRODUCTS, json={"gtin": "6901234567893", "name": "Tea"}, headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_fields",
        "detail": "Wrong check digit in GTIN 6901234567893: expected 2, got 3.",
        "data": {
            "field": "gtin",
            "errors": [
                {
                    "field": "gtin",
                    "problem": "Wrong check digit in GTIN 6901234567893: expected 2, got 3.",
                    "params": {"gtin": "6901234567893", "expected": "2", "given": "3"},
                }
            ],
        },
    }
    short = await client.post(PRODUCTS, json={"gtin": "1234567", "name": "Tea"}, headers=headers)
    assert short.status_code == 422
    assert short.json()["detail"] == "A GTIN has 8, 12, 13 or 14 digits; this one has 7."
    letters = await client.post(PRODUCTS, json={"gtin": "ABC", "name": "Tea"}, headers=headers)
    assert letters.json()["detail"] == "A GTIN has digits only; 'ABC' has other characters."


async def test_duplicate_gtin_is_409_in_any_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)
    first = await _create(client, headers, gtin="6901234567892")
    again = await client.post(PRODUCTS, json={"gtin": "06901234567892", "name": "Copy"}, headers=headers)
    assert again.status_code == 409
    assert again.json() == {
        "error": "duplicate_gtin",
        "detail": "A product with GTIN 06901234567892 already exists.",
        "data": {"field": "gtin", "gtin": "06901234567892", "product_id": first["id"]},
    }
    other = await _create(client, headers, gtin="96385074", name="Other")
    clash = await client.patch(f"{PRODUCTS}/{other['id']}", json={"gtin": "6901234567892"}, headers=headers)
    assert clash.status_code == 409
    assert clash.json()["error"] == "duplicate_gtin"
    # Another brand may use the same GTIN: uniqueness is per tenant.
    _other_brand, other_headers = await _brand_token(runtime)
    await _create(client, other_headers, gtin="6901234567892")


async def test_update_archive_and_unarchive(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers = await _brand_token(runtime)
    product = await _create(client, headers, price="3.00", items_per_case=12)
    url = f"{PRODUCTS}/{product['id']}"
    changed = await client.patch(
        url, json={"name": "Green tea 2", "price": None, "cases_per_pallet": 50}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["price"], changed.json()["items_per_pallet"]) == (
        "Green tea 2",
        None,
        600,
    )
    refused = await client.patch(url, json={"items_per_case": None}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "A pallet holds cases: set the items per case first."
    null_name = await client.patch(url, json={"name": None}, headers=headers)
    assert null_name.status_code == 422
    assert null_name.json()["detail"] == "These fields cannot be null: name."

    archived = await client.post(f"{url}/archive", headers=headers)
    assert (archived.json()["status"], archived.json()["archived_at"] is not None) == ("archived", True)
    active_only = await client.get(PRODUCTS, params={"status": "active"}, headers=headers)
    assert active_only.json()["total"] == 0
    archived_only = await client.get(PRODUCTS, params={"status": "archived"}, headers=headers)
    assert [p["id"] for p in archived_only.json()["items"]] == [product["id"]]
    lot = await client.post(f"{url}/lots", json={"lot_number": "L1"}, headers=headers)
    assert lot.status_code == 409
    assert lot.json()["error"] == "product_archived"
    restored = await client.post(f"{url}/unarchive", headers=headers)
    assert (restored.json()["status"], restored.json()["archived_at"]) == ("active", None)

    assert await _audit_actions(runtime, brand) == [
        ("catalog.product.create", product["id"]),
        ("catalog.product.update", product["id"]),
        ("catalog.product.archive", product["id"]),
        ("catalog.product.unarchive", product["id"]),
    ]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        update = await session.scalar(select(AuditEvent).where(AuditEvent.action == "catalog.product.update"))
    assert update is not None
    assert update.data == {
        "gtin": "06901234567892",
        "changes": {"name": ["Green tea", "Green tea 2"], "price_fen": [300, None], "cases_per_pallet": [None, 50]},
    }


async def test_lots(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers = await _brand_token(runtime)
    product = await _create(client, headers)
    lots_url = f"{PRODUCTS}/{product['id']}/lots"
    body = {
        "lot_number": "2025A01",
        "produced_on": "2025-03-01",
        "expires_on": "2026-03-01",
        "factory": "Hangzhou",
        "line": "L2",
    }
    created = await client.post(lots_url, json=body, headers=headers)
    assert created.status_code == 201, created.text
    lot = created.json()
    assert {k: lot[k] for k in body} == body
    assert lot["product_id"] == product["id"]

    duplicate = await client.post(lots_url, json={"lot_number": "2025A01"}, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "This product already has a lot 2025A01."
    backwards = await client.post(
        lots_url, json={"lot_number": "B", "produced_on": "2025-03-01", "expires_on": "2025-02-01"}, headers=headers
    )
    assert backwards.status_code == 422
    assert backwards.json()["data"]["field"] == "expires_on"
    bad_chars = await client.post(lots_url, json={"lot_number": "LOT#1"}, headers=headers)
    assert bad_chars.status_code == 422
    assert bad_chars.json()["detail"] == (
        "A lot number may not contain '#'; use letters, digits and !\"%&'()*+,-./:;<=>?_ only."
    )
    # The same lot number on another product is fine.
    other = await _create(client, headers, gtin="96385074", name="Other")
    same_number = await client.post(f"{PRODUCTS}/{other['id']}/lots", json={"lot_number": "2025A01"}, headers=headers)
    assert same_number.status_code == 201

    listed = await client.get(lots_url, headers=headers)
    assert [(x["lot_number"], x["id"]) for x in listed.json()["items"]] == [("2025A01", lot["id"])]
    changed = await client.patch(
        f"/api/v1/catalog/lots/{lot['id']}", json={"expires_on": "2027-01-01", "line": "L3"}, headers=headers
    )
    assert (changed.json()["expires_on"], changed.json()["line"]) == ("2027-01-01", "L3")
    wrong = await client.patch(f"/api/v1/catalog/lots/{lot['id']}", json={"expires_on": "2024-01-01"}, headers=headers)
    assert wrong.status_code == 422
    fetched = await client.get(f"/api/v1/catalog/lots/{lot['id']}", headers=headers)
    assert fetched.json()["expires_on"] == "2027-01-01"
    actions = [action for action, _target in await _audit_actions(runtime, brand)]
    assert actions.count("catalog.lot.create") == 2
    assert actions.count("catalog.lot.update") == 1


async def test_unknown_ids_are_404(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)
    missing = "00000000-0000-7000-8000-00000000abcd"
    product = await client.get(f"{PRODUCTS}/{missing}", headers=headers)
    assert (product.status_code, product.json()["error"]) == (404, "product_not_found")
    lots = await client.get(f"{PRODUCTS}/{missing}/lots", headers=headers)
    assert lots.status_code == 404
    lot = await client.get(f"/api/v1/catalog/lots/{missing}", headers=headers)
    assert (lot.status_code, lot.json()["error"]) == (404, "lot_not_found")


async def test_read_only_token_cannot_write(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    owner = bearer(await make_token(runtime, brand))
    reader = bearer(await make_token(runtime, brand, scopes=["catalog.read"]))
    product = await _create(client, owner)
    assert (await client.get(PRODUCTS, headers=reader)).status_code == 200
    refused = [
        await client.post(PRODUCTS, json={"gtin": "96385074", "name": "X"}, headers=reader),
        await client.patch(f"{PRODUCTS}/{product['id']}", json={"name": "X"}, headers=reader),
        await client.post(f"{PRODUCTS}/{product['id']}/archive", headers=reader),
        await client.post(f"{PRODUCTS}/{product['id']}/lots", json={"lot_number": "L"}, headers=reader),
        await client.post(
            "/api/v1/catalog/import", files={"file": ("p.csv", b"gtin,name\n96385074,X\n")}, headers=reader
        ),
    ]
    assert [(r.status_code, r.json()["detail"]) for r in refused] == [
        (403, "This needs the permission 'catalog.write'.")
    ] * 5
    assert (await client.get(PRODUCTS, headers=owner)).json()["items"][0]["name"] == "Green tea"


async def test_permissions_by_role(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _brand_token(runtime)
    listed = {p["name"]: p["roles"] for p in (await client.get("/api/v1/permissions", headers=headers)).json()}
    assert listed["catalog.read"] == ["admin", "auditor", "operator", "owner", "viewer"]
    assert listed["catalog.write"] == ["admin", "operator", "owner"]
