"""Catalog console pages: list and search, create and edit with errors next to fields, archive,
lots, import with its report, and what a viewer may not do."""

from __future__ import annotations

import html
import io

import httpx
from openpyxl import Workbook
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user
from zhongtai.catalog.models import Lot, Product
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}
PRODUCT_FORM = {
    "gtin": "6901234567892",
    "name": "Green tea",
    "specification": "500 ml",
    "category": "Beverages",
    "price": "12.50",
    "items_per_case": "24",
    "cases_per_pallet": "40",
    "image_urls": "https://img.example/a.png\nhttps://img.example/b.png",
}


async def _signed_in(client: httpx.AsyncClient, runtime: Runtime, locale: str = "en") -> tuple[Brand, str]:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", locale)
    return brand, await console_login(client, brand.owner.email)


async def _products(runtime: Runtime, brand: Brand) -> list[Product]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return list(await session.scalars(select(Product).order_by(Product.gtin)))


async def _actions(runtime: Runtime, brand: Brand) -> list[str]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = await session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.startswith("catalog.")).order_by(AuditEvent.created_at)
        )
        return list(rows)


async def test_create_list_search_and_edit(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    empty = await client.get("/console/catalog/products", headers=HTML)
    assert empty.status_code == 200
    assert "No products yet." in empty.text
    assert 'href="/console/catalog/products"' in empty.text, "the navigation lists products"

    created = await client.post("/console/catalog/products", data=PRODUCT_FORM | {"csrf_token": csrf}, headers=HTML)
    assert created.status_code == 303
    assert created.headers["location"] == "/console/catalog/products"
    [product] = await _products(runtime, brand)
    assert (product.gtin, product.price_fen, product.items_per_case, product.cases_per_pallet) == (
        "06901234567892",
        1250,
        24,
        40,
    )
    assert product.image_urls == ["https://img.example/a.png", "https://img.example/b.png"]

    listing = await client.get("/console/catalog/products", headers=HTML)
    assert "Product Green tea was created." in listing.text
    assert "6901234567892" in listing.text
    assert "24 per case" in listing.text
    assert "40 cases per pallet" in listing.text
    miss = await client.get("/console/catalog/products", params={"q": "coffee"}, headers=HTML)
    assert "No products match these filters." in miss.text

    edit = await client.get(f"/console/catalog/products/{product.id}", headers=HTML)
    assert 'value="6901234567892"' in edit.text
    assert 'value="12.50"' in edit.text
    changed = PRODUCT_FORM | {"csrf_token": csrf, "name": "Green tea (new)", "price": "", "cases_per_pallet": ""}
    saved = await client.post(f"/console/catalog/products/{product.id}", data=changed, headers=HTML)
    assert saved.status_code == 303
    [product] = await _products(runtime, brand)
    assert (product.name, product.price_fen, product.cases_per_pallet) == ("Green tea (new)", None, None)
    assert await _actions(runtime, brand) == ["catalog.product.create", "catalog.product.update"]


async def test_errors_are_shown_next_to_their_fields(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    bad = PRODUCT_FORM | {"csrf_token": csrf, "gtin": "6901234567893", "price": "twelve", "items_per_case": "0"}
    response = await client.post("/console/catalog/products", data=bad, headers=HTML)
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "Wrong check digit in GTIN 6901234567893: expected 2, got 3." in text
    assert "Not a price: 'twelve'." in text
    assert "Enter a whole number from 1 to 1000000." in text
    assert response.text.count('class="field invalid"') == 3
    assert 'value="Green tea"' in response.text, "what was typed is kept"
    assert await _products(runtime, brand) == []

    await client.post("/console/catalog/products", data=PRODUCT_FORM | {"csrf_token": csrf}, headers=HTML)
    client.cookies.set("zt_lang", "zh-CN")
    twin = await client.post(
        "/console/catalog/products", data=PRODUCT_FORM | {"csrf_token": csrf, "gtin": "06901234567892"}, headers=HTML
    )
    assert twin.status_code == 409
    assert "GTIN 为 06901234567892 的产品已存在。" in twin.text
    wrong = await client.post(
        "/console/catalog/products", data=PRODUCT_FORM | {"csrf_token": csrf, "gtin": "4006381333932"}, headers=HTML
    )
    assert "GTIN 4006381333932 的校验位错误：应为 1，实为 2。" in wrong.text


async def test_archive_and_lots(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    await client.post("/console/catalog/products", data=PRODUCT_FORM | {"csrf_token": csrf}, headers=HTML)
    [product] = await _products(runtime, brand)
    lots_url = f"/console/catalog/products/{product.id}/lots"
    lot_form = {"csrf_token": csrf, "lot_number": "2025A", "produced_on": "2025-03-01", "expires_on": "2026-03-01"}
    added = await client.post(lots_url, data=lot_form | {"factory": "Hangzhou", "line": "2"}, headers=HTML)
    assert (added.status_code, added.headers["location"]) == (303, lots_url)
    page = await client.get(lots_url, headers=HTML)
    assert "Lot 2025A was added." in page.text
    assert "Hangzhou" in page.text

    backwards = await client.post(
        lots_url, data=lot_form | {"lot_number": "B", "expires_on": "2025-01-01"}, headers=HTML
    )
    assert backwards.status_code == 422
    assert "The expiry date must be after the production date." in backwards.text
    twin = await client.post(lots_url, data=lot_form, headers=HTML)
    assert twin.status_code == 409
    assert "This product already has a lot 2025A." in twin.text

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        lot = await session.scalar(select(Lot))
    assert lot is not None
    edited = await client.post(
        f"/console/catalog/lots/{lot.id}", data=lot_form | {"factory": "Ningbo", "line": "7"}, headers=HTML
    )
    assert edited.status_code == 303
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        lot = await session.get(Lot, lot.id)
    assert lot is not None
    assert (lot.factory, lot.line) == ("Ningbo", "7")

    archived = await client.post(
        f"/console/catalog/products/{product.id}/archive", data={"csrf_token": csrf}, headers=HTML
    )
    assert archived.status_code == 303
    [product] = await _products(runtime, brand)
    assert product.status == "archived"
    page = await client.get(lots_url, headers=HTML)
    assert "Add lot" not in page.text, "an archived product takes no new lots"
    restored = await client.post(
        f"/console/catalog/products/{product.id}/unarchive", data={"csrf_token": csrf}, headers=HTML
    )
    assert restored.status_code == 303
    assert (await _products(runtime, brand))[0].status == "active"
    assert await _actions(runtime, brand) == [
        "catalog.product.create",
        "catalog.lot.create",
        "catalog.lot.update",
        "catalog.product.archive",
        "catalog.product.unarchive",
    ]


async def test_import_page_reports_and_imports(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    page = await client.get("/console/catalog/import", headers=HTML)
    assert page.status_code == 200
    content = b"gtin,name,price\n6901234567892,Green tea,12.5\n6901234567893,Bad,1\n"
    refused = await client.post(
        "/console/catalog/import",
        data={"csrf_token": csrf, "mode": "all"},
        files={"file": ("p.csv", content, "text/csv")},
        headers=HTML,
    )
    assert refused.status_code == 422
    text = html.unescape(refused.text)
    assert "1 of 2 rows have errors; nothing was imported." in text
    assert "<td>3</td><td>gtin</td><td>Wrong check digit in GTIN 6901234567893: expected 2, got 3.</td>" in text
    assert await _products(runtime, brand) == []

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["条码", "名称"])
    sheet.append([6901234567892, "绿茶"])
    sheet.append([6901234567893, "坏"])
    buffer = io.BytesIO()
    book.save(buffer)
    accepted = await client.post(
        "/console/catalog/import",
        data={"csrf_token": csrf, "mode": "valid_rows"},
        files={"file": ("p.xlsx", buffer.getvalue())},
        headers=HTML,
    )
    assert accepted.status_code == 200
    assert "Imported: 1 created, 0 updated, 0 unchanged." in accepted.text
    assert [(p.gtin, p.name) for p in await _products(runtime, brand)] == [("06901234567892", "绿茶")]
    assert await _actions(runtime, brand) == ["catalog.import"]

    missing = await client.post(
        "/console/catalog/import",
        data={"csrf_token": csrf},
        files={"file": ("p.csv", b"sku,title\n1,2\n")},
        headers=HTML,
    )
    assert missing.status_code == 422
    assert "The first row must name the columns; missing: gtin, name." in missing.text


async def test_viewer_reads_but_cannot_write(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, viewer.email)
    listing = await client.get("/console/catalog/products", headers=HTML)
    assert listing.status_code == 200
    assert "New product" not in listing.text
    assert 'href="/console/catalog/import"' not in listing.text
    for url in ("/console/catalog/products/new", "/console/catalog/import"):
        assert (await client.get(url, headers=HTML)).status_code == 403
    refused = await client.post("/console/catalog/products", data=PRODUCT_FORM | {"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 403
    assert "This page needs the permission 'catalog.write'." in html.unescape(refused.text)
    assert await _products(runtime, brand) == []
