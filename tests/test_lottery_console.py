"""Lottery console pages: stores, a session from creation to draw, permissions — both tiers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx

from tests.factories import console_login, make_brand, make_user
from tests.lottery_factories import make_product
from tests.members_factories import adult_id, make_consumer, verify_consumer
from zhongtai.core import clock
from zhongtai.core.runtime import Runtime
from zhongtai.lottery import service

HTML = {"accept": "text/html"}
CHINA = timezone(timedelta(hours=8))


async def test_operator_runs_a_session_from_the_console(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    product_id = await make_product(runtime, brand)
    operator = await make_user(runtime, brand, "operator")
    csrf = await console_login(client, operator.email)

    added = await client.post(
        "/console/lottery/stores",
        data={
            "code": "BJ01",
            "name": "北京国贸店",
            "city": "北京",
            "latitude": "39.9",
            "longitude": "116.46",
            "csrf_token": csrf,
        },
        headers=HTML,
    )
    assert added.status_code == 303, added.text
    bad = await client.post(
        "/console/lottery/stores",
        data={"code": "BJ02", "name": "x", "latitude": "99", "longitude": "0", "csrf_token": csrf},
        headers=HTML,
    )
    assert bad.status_code == 422
    assert "纬度" in bad.text or "Latitude" in bad.text

    opens = datetime.now(CHINA) + timedelta(minutes=5)
    created = await client.post(
        "/console/lottery",
        data={
            "title": "每日申购",
            "opens_at": opens.strftime("%Y-%m-%dT%H:%M"),
            "closes_at": (opens + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "payment_hours": "24",
            "csrf_token": csrf,
        },
        headers=HTML,
    )
    assert created.status_code == 303, created.text
    page_url = created.headers["location"]
    session_id = page_url.rsplit("/", 1)[1]
    wrong_stock = await client.post(
        f"{page_url}/stock", data={"product_id": str(product_id), "stock": "NOPE, 3", "csrf_token": csrf}, headers=HTML
    )
    assert wrong_stock.status_code == 422
    saved = await client.post(
        f"{page_url}/stock",
        data={"product_id": str(product_id), "stock": "BJ01, 3\n", "csrf_token": csrf},
        headers=HTML,
    )
    assert saved.status_code == 303, saved.text
    committed = await client.post(f"{page_url}/commit", data={"csrf_token": csrf}, headers=HTML)
    assert committed.status_code == 303
    page = await client.get(page_url, headers=HTML)
    assert page.status_code == 200
    assert "hx-get" in page.text, "the entries count refreshes while the window is open"
    assert re.search(r"[0-9a-f]{64}", page.text), "the seed commitment is shown"

    clock.advance(6 * 60)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        store = (await service.list_stores(session))[0]
    for i in range(4):
        consumer, _ = await make_consumer(runtime, brand)
        await verify_consumer(runtime, brand, consumer.id, adult_id(i))
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            import uuid

            await service.do_enter(
                session,
                runtime.crypto,
                session_id=uuid.UUID(session_id),
                consumer_id=consumer.id,
                product_id=product_id,
                store_id=store.id,
            )
    live = await client.get(f"{page_url}/live", headers=HTML)
    assert 'id="entries-total">4<' in live.text
    early = await client.post(f"{page_url}/close", data={"csrf_token": csrf}, headers=HTML)
    assert early.status_code == 409
    clock.advance(3600)
    assert (await client.post(f"{page_url}/close", data={"csrf_token": csrf}, headers=HTML)).status_code == 303
    assert (await client.post(f"{page_url}/draw", data={"csrf_token": csrf}, headers=HTML)).status_code == 303
    drawn = await client.get(page_url, headers=HTML)
    assert f"/api/v1/public/{brand.tenant.slug}/lottery/{session_id}/draw" in drawn.text
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert (await service.get_session(session, uuid.UUID(session_id))).winners_count == 3
    listing = await client.get("/console/lottery", headers=HTML)
    assert "每日申购" in listing.text


async def test_viewer_reads_but_cannot_change(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    csrf = await console_login(client, viewer.email)
    listing = await client.get("/console/lottery", headers=HTML)
    assert listing.status_code == 200
    assert 'id="session-form"' not in listing.text
    refused = await client.post("/console/lottery/stores", data={"code": "X", "csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 403


async def test_member_page_renders_in_both_languages(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    page = await client.get(f"/h5/{brand.tenant.slug}/lottery", headers=HTML)
    assert page.status_code == 200
    assert "/static/h5-lottery.js" in page.text
    assert "每位实名会员" in page.text
    english = await client.get(f"/h5/{brand.tenant.slug}/lottery", headers={**HTML, "accept-language": "en"})
    assert "Every verified member has the same chance" in english.text
    assert (await client.get("/h5/no-such-brand/lottery", headers=HTML)).status_code == 404
