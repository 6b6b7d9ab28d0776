"""Flash-sale console pages on both tiers: create with refusals next to fields, schedule, watch the live
figures while members buy, end; a viewer sees but cannot change."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from tests.factories import console_login, make_brand, make_user
from tests.flashsale_factories import Sale, open_limits, sale_pass
from tests.lottery_factories import make_product
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}
CHINA = timezone(timedelta(hours=8))


async def test_operator_runs_a_sale_from_the_console(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    product_id = await make_product(runtime, brand)
    operator = await make_user(runtime, brand, "operator")
    csrf = await console_login(client, operator.email)
    starts = datetime.now(CHINA) - timedelta(minutes=1)
    form = {
        "title": "飞天 53% 500ml 秒杀",
        "product_id": str(product_id),
        "price": "1499.00",
        "stock": "3",
        "per_member_limit": "1",
        "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "payment_minutes": "15",
        "minimum_age": "18",
        "requires_verification": "on",
        "csrf_token": csrf,
    }
    refused = await client.post(
        "/console/flashsale", data={**form, "price": "12.345", "stock": "0"}, headers={**HTML, "accept-language": "en"}
    )
    assert refused.status_code == 422
    assert "Enter the price in yuan" in refused.text
    refused = await client.post("/console/flashsale", data={**form, "stock": "0"}, headers=HTML)
    assert refused.status_code == 422
    assert "库存必须在 1 到 10,000,000 之间" in refused.text

    created = await client.post("/console/flashsale", data=form, headers=HTML)
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    sale_id = uuid.UUID(url.rsplit("/", 1)[1])
    page = await client.get(url, headers=HTML)
    assert page.status_code == 200
    assert "草稿" in page.text or "Draft" in page.text
    assert "1499.00" in page.text

    scheduled = await client.post(f"{url}/schedule", data={"csrf_token": csrf}, headers=HTML)
    assert scheduled.status_code == 303, scheduled.text
    sale = Sale(sale_id, brand, 3, 1)
    for _ in range(4):
        await client.post(sale.buy_url, headers={"authorization": f"Bearer {sale_pass(runtime, sale)}"})
    live = await client.get(f"{url}/live", headers=HTML)
    assert live.status_code == 200
    assert 'hx-trigger="every 2s"' in live.text
    assert re.search(r'id="accepted">3<', live.text)
    assert re.search(r'id="stock-left">0<', live.text)
    assert "已售罄" in live.text

    ended = await client.post(f"{url}/end", data={"csrf_token": csrf}, headers=HTML)
    assert ended.status_code == 303
    page = await client.get(url, headers=HTML)
    assert "已结束" in page.text
    assert "hx-trigger" not in page.text  # no more refreshing once ended
    listed = await client.get("/console/flashsale", headers=HTML)
    assert "飞天 53% 500ml 秒杀" in listed.text


async def test_viewer_sees_but_cannot_change(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    csrf = await console_login(client, viewer.email)
    page = await client.get("/console/flashsale", headers=HTML)
    assert page.status_code == 200
    assert 'id="sale-form"' not in page.text
    refused = await client.post("/console/flashsale", data={"csrf_token": csrf, "title": "x"}, headers=HTML)
    assert refused.status_code == 403
