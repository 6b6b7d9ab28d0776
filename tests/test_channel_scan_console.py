"""Console pages of diversion control: the alert queue, an alert with its map and its workflow through the
form (penalty in yuan), the per-dealer report with a flagged check; and the partner's H5 scan page."""

from __future__ import annotations

import html
import json
import re

import httpx
from sqlalchemy import select

from tests.channel_scan_world import make_world, scan
from tests.factories import console_login, make_user
from zhongtai.channel.scan_models import DiversionAlert
from zhongtai.core import clock
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}


async def test_alert_queue_detail_and_decision(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2], world.pallets[0]])
    await scan(client, world, "dealer1", "ship", [world.cases[0]], to_store_id=world.ids["s3"]["id"])
    await scan(client, world, "store3", "store_receive", [world.cases[0]])
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s1"]["id"])
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, world.line.brand.owner.email)

    queue = await client.get("/console/channel/diversion", headers=HTML)
    assert queue.status_code == 200
    text = html.unescape(queue.text)
    assert "Store outside the territory" in text
    assert world.cases[0] in text
    assert "GZ" in text
    link = re.search(r'href="/console/channel/diversion/([0-9a-f-]{36})"', queue.text)
    assert link, queue.text
    alert_url = f"/console/channel/diversion/{link.group(1)}"

    page = await client.get(alert_url, headers=HTML)
    assert page.status_code == 200
    body = html.unescape(page.text)
    assert 'data-mark="Seen here"' in body
    assert 'data-store="S-GZ"' in body
    assert 'data-store="S-GZ-BJ"' in body
    assert "广东省广州市" in body  # the expected territory
    assert "北京市" in body  # where it was seen
    assert "Source: store address" in body

    confirmed = await client.post(
        f"{alert_url}/status", data={"csrf_token": csrf, "status": "confirmed", "note": "核实"}, headers=HTML
    )
    assert confirmed.status_code == 303
    refused = await client.post(
        f"{alert_url}/status", data={"csrf_token": csrf, "status": "penalized", "penalty_yuan": "abc"}, headers=HTML
    )
    assert refused.status_code == 303
    flashed = await client.get(alert_url, headers=HTML)
    assert "Enter the penalty in fen" in html.unescape(flashed.text)
    penalized = await client.post(
        f"{alert_url}/status", data={"csrf_token": csrf, "status": "penalized", "penalty_yuan": "500.50"}, headers=HTML
    )
    assert penalized.status_code == 303
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        alert = await session.scalar(select(DiversionAlert))
    assert alert is not None
    assert (alert.status, alert.penalty_amount) == ("penalized", 50050)
    done = html.unescape((await client.get(alert_url, headers=HTML)).text)
    assert "¥500.50" in done
    assert 'id="alert-triage"' not in done, "nothing more to decide"

    # Chinese.
    client.cookies.set("zt_lang", "zh-CN")
    chinese = await client.get("/console/channel/diversion?status=all", headers=HTML)
    assert "窜货预警" in chinese.text
    assert "门店在销售区域外" in chinese.text

    # The dealer report: a shipment not received for eight days is flagged.
    client.cookies.set("zt_lang", "en")
    report_url = f"/console/channel/dealers/{world.ids['d1']['id']}/report"
    clock.advance(8 * 86400)
    await console_login(client, world.line.brand.owner.email)  # the session of a week ago has expired
    report = html.unescape((await client.get(report_url, headers=HTML)).text)
    assert re.search(r'id="fig-received">\s*18<', report)
    assert re.search(r'id="fig-shipped">\s*12<', report)
    assert "Mismatch" in report
    assert "6 items shipped more than 7 days ago are not received by their store" in report


async def test_viewer_sees_but_cannot_decide(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s2"]["id"])
    await scan(client, world, "store2", "store_receive", [world.cases[2]])
    viewer = await make_user(runtime, world.line.brand, "viewer")
    client.cookies.set("zt_lang", "en")
    csrf = await console_login(client, viewer.email)
    queue = await client.get("/console/channel/diversion", headers=HTML)
    link = re.search(r'href="/console/channel/diversion/([0-9a-f-]{36})"', queue.text)
    assert link
    page = await client.get(f"/console/channel/diversion/{link.group(1)}", headers=HTML)
    assert "Store not supplied by the dealer" in html.unescape(page.text)
    assert 'id="alert-triage"' not in page.text
    refused = await client.post(
        f"/console/channel/diversion/{link.group(1)}/status",
        data={"csrf_token": csrf, "status": "confirmed"},
        headers=HTML,
    )
    assert refused.status_code == 403


async def test_partner_scan_page(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    slug = world.line.brand.tenant.slug
    client.cookies.set("zt_lang", "zh-CN")
    page = await client.get(f"/h5/{slug}/partner/scan", headers=HTML)
    assert page.status_code == 200
    assert "/static/h5-channel-scan.js" in page.text
    assert "开箱" in page.text
    assert "用摄像头扫码" in page.text
    found = re.search(r'<script type="application/json" id="h5-messages">(.*?)</script>', page.text, re.S)
    assert found
    assert json.loads(found.group(1))["reasons"]["not_yours"] == "该商品由其他经销商持有。"
    me = await client.get(f"/h5/{slug}/partner/me", headers=HTML)
    assert f'href="/h5/{slug}/partner/scan"' in me.text
    assert (await client.get("/h5/no-such-brand/partner/scan", headers=HTML)).status_code == 404
    script = await client.get("/static/h5-channel-scan.js")
    assert script.status_code == 200
    assert "BarcodeDetector" in script.text


async def test_store_stock_page(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    await scan(client, world, "store1", "store_receive", [world.cases[2]])
    await scan(client, world, "guide1", "sale", [world.items[12], world.items[13]])
    client.cookies.set("zt_lang", "en")
    await console_login(client, world.line.brand.owner.email)
    store_url = f"/console/channel/stores/{world.ids['s1']['id']}"
    assert f'href="{store_url}/stock"' in (await client.get(store_url, headers=HTML)).text
    page = html.unescape((await client.get(f"{store_url}/stock", headers=HTML)).text)
    assert re.search(r'class="stock-on-hand">4<', page)
    assert page.count("Record a sale") == 1
    assert "Receive goods" in page
    other = await client.get(f"/console/channel/stores/{world.ids['s1']['id'][:-4]}0000/stock", headers=HTML)
    assert other.status_code == 404
