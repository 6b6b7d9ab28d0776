"""Channel console pages: dealers, stores and guides created and edited through forms with errors
next to fields, the dealer page with its stores and map, partner accounts, import, the channel map,
and what a viewer may not do."""

from __future__ import annotations

import html
import json

import httpx
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user
from zhongtai.channel.models import Dealer, Guide, PartnerAccount, Store
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}
SHENZHEN_BOX = {
    "type": "Polygon",
    "coordinates": [[[113.85, 22.45], [114.10, 22.45], [114.10, 22.65], [113.85, 22.65], [113.85, 22.45]]],
}


async def _signed_in(client: httpx.AsyncClient, runtime: Runtime, locale: str = "en") -> tuple[Brand, str]:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", locale)
    return brand, await console_login(client, brand.owner.email)


async def test_dealer_store_guide_pages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    empty = await client.get("/console/channel/dealers", headers=HTML)
    assert empty.status_code == 200
    assert "No dealers yet." in empty.text

    form = {"csrf_token": csrf, "code": "SZ 1", "name": "", "region_codes": "440300 4403", "polygons": "{not json"}
    refused = await client.post("/console/channel/dealers", data=form, headers=HTML)
    assert refused.status_code == 422
    assert "The territory drawing is not GeoJSON (JSON text)." in html.unescape(refused.text)
    form |= {"polygons": ""}
    refused = await client.post("/console/channel/dealers", data=form, headers=HTML)
    text = html.unescape(refused.text)
    assert "A code has 1 to 40 letters, digits, dots, hyphens or underscores; 'SZ 1' does not." in text
    assert "Enter a name." in text
    assert "'4403' is not an administrative region code: use 6 digits such as 440300 (深圳市)." in text

    form |= {"code": "SZ1", "name": "深圳经销", "region_codes": "440305", "polygons": json.dumps(SHENZHEN_BOX)}
    created = await client.post("/console/channel/dealers", data=form, headers=HTML)
    assert created.status_code == 303
    dealer_url = created.headers["location"]
    store_form = {
        "csrf_token": csrf,
        "code": "S1",
        "name": "南山店",
        "dealer_code": "SZ1",
        "latitude": "22.5333",
        "longitude": "113.9305",
        "phone": "13800000001",
    }
    assert (await client.post("/console/channel/stores", data=store_form, headers=HTML)).status_code == 303
    far = store_form | {"code": "S2", "name": "天河店", "latitude": "23.1291", "longitude": "113.2644"}
    assert (await client.post("/console/channel/stores", data=far, headers=HTML)).status_code == 303
    twin = await client.post("/console/channel/stores", data=store_form | {"latitude": "north"}, headers=HTML)
    assert twin.status_code == 422
    assert "Not a number: 'north'." in html.unescape(twin.text)

    page = await client.get(dealer_url, headers=HTML)
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "广东省深圳市南山区" in text
    assert "<svg" in page.text
    assert 'data-store="S1"' in page.text
    assert 'data-store="S2"' in page.text
    assert text.count("Inside") >= 1
    assert "Outside" in text
    assert "138****0001" not in text  # the store phone is not on the dealer page at all

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        store = await session.scalar(select(Store).where(Store.code == "S1"))
        dealer = await session.scalar(select(Dealer))
    assert store is not None
    assert dealer is not None
    guide = await client.post(
        f"/console/channel/stores/{store.id}/guides", data={"csrf_token": csrf, "name": "小王", "phone": "13900000002"}
    )
    assert guide.status_code == 303
    bad_guide = await client.post(
        f"/console/channel/stores/{store.id}/guides", data={"csrf_token": csrf, "name": "小李", "phone": "1"}
    )
    assert bad_guide.status_code == 303  # back to the store with the message as a flash
    store_page = await client.get(f"/console/channel/stores/{store.id}", headers=HTML)
    assert "小王" in store_page.text
    assert "139****0002" in store_page.text
    assert "This is not a phone number." in html.unescape(store_page.text)

    account = await client.post(
        "/console/channel/partners",
        data={
            "csrf_token": csrf,
            "role": "store",
            "target_id": str(store.id),
            "display_name": "店员",
            "phone": "13700000009",
            "back": f"/console/channel/stores/{store.id}",
        },
    )
    assert account.status_code == 303
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        partner = await session.scalar(select(PartnerAccount))
        guide_row = await session.scalar(select(Guide))
    assert partner is not None
    assert partner.store_id == store.id
    assert partner.password_hash is None
    assert guide_row is not None
    disabled = await client.post(
        f"/console/channel/partners/{partner.id}", data={"csrf_token": csrf, "action": "disable", "back": "/x"}
    )
    assert disabled.headers["location"] == "/console/channel/dealers"  # only channel pages as a way back

    for path in (
        "/console/channel/stores",
        "/console/channel/guides",
        "/console/channel/map",
        "/console/channel/import",
    ):
        assert (await client.get(path, headers=HTML)).status_code == 200, path
    mapped = await client.get("/console/channel/map", params={"dealer": "SZ1"}, headers=HTML)
    assert "1 stores inside their dealer's territory, 1 outside, 0 unknown; 0 without a location." in html.unescape(
        mapped.text
    )
    edit_guide = await client.get(f"/console/channel/guides/{guide_row.id}", headers=HTML)
    assert edit_guide.status_code == 200
    archived = await client.post(f"/console/channel/stores/{store.id}/archive", data={"csrf_token": csrf})
    assert archived.status_code == 303


async def test_chinese_pages_and_import(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, csrf = await _signed_in(client, runtime, "zh-CN")
    page = await client.get("/console/channel/dealers", headers=HTML)
    assert "经销商" in page.text
    upload = await client.post(
        "/console/channel/import",
        data={"csrf_token": csrf, "kind": "dealers", "mode": "all"},
        files={"file": ("d.csv", "code,name\nD1,一号\nD 2,二号\n".encode())},
        headers=HTML,
    )
    assert upload.status_code == 422
    text = html.unescape(upload.text)
    assert "2 行中有 1 行有错误；未导入任何数据。" in text
    assert "编码由 1 到 40 个字母、数字、点、连字符或下划线组成；“D 2”不符合。" in text


async def test_viewer_reads_but_cannot_change(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    csrf = await console_login(client, viewer.email)
    assert (await client.get("/console/channel/dealers", headers=HTML)).status_code == 200
    assert (await client.get("/console/channel/dealers/new", headers=HTML)).status_code == 403
    refused = await client.post("/console/channel/dealers", data={"csrf_token": csrf, "code": "D", "name": "x"})
    assert refused.status_code == 403
