"""Rewards console: an administrator creates and funds a pool (usage bar), previews a rule's expected
value before saving it, releases a held reward, approves a payout batch and reconciles it with the
sandbox — in Chinese and English; operators and viewers see what their permissions allow."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.factories import console_login, make_brand, make_user
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import item_event, publish
from zhongtai.core.runtime import Runtime
from zhongtai.rewards import payouts, service

HTML = {"accept": "text/html"}


async def test_admin_runs_rewards_from_the_console(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    admin = await make_user(runtime, brand, "admin")
    csrf = await console_login(client, admin.email)
    client.cookies.set("zt_lang", "zh-CN")

    created = await client.post(
        "/console/rewards/pools",
        data={
            "code": "CNY26",
            "name": "春节开瓶",
            "campaign": "春节",
            "daily_cap": "100",
            "partner_cap": "",
            "csrf_token": csrf,
        },
        headers=HTML,
    )
    assert created.status_code == 303, created.text
    bad_cap = await client.post(
        "/console/rewards/pools",
        data={"code": "X", "name": "x", "daily_cap": "1.234", "csrf_token": csrf},
        headers=HTML,
    )
    assert bad_cap.status_code == 422
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        pool = (await service.list_pools(session))[0]
    assert pool.daily_cap_fen == 10_000
    page = await client.get("/console/rewards/pools", headers=HTML)
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page.text)
    assert key
    for _ in range(2):  # a double submit of one page funds once
        funded = await client.post(
            f"/console/rewards/pools/{pool.id}/fund",
            data={"amount": "500", "idempotency_key": key.group(1), "csrf_token": csrf},
            headers=HTML,
        )
        assert funded.status_code == 303
    page = await client.get("/console/rewards/pools", headers=HTML)
    assert "费用池" in page.text
    assert 'data-balance="50000"' in page.text
    assert 'aria-valuenow="0"' in page.text

    rule_form = {
        "name": "开瓶红包",
        "event_kind": "consumer_open",
        "role": "consumer",
        "pool_id": str(pool.id),
        "product_id": "",
        "mode": "tiers",
        "tiers": "0.88,70\n1.88,25\n8.88,5",
        "valid_from": "2026-01-01T00:00",
        "valid_to": "2027-01-01T00:00",
        "csrf_token": csrf,
    }
    preview = await client.post("/console/rewards/rules", data={**rule_form, "action": "preview"}, headers=HTML)
    assert preview.status_code == 200
    # (88*70 + 188*25 + 888*5) / 100 = 153 fen; 50,000 / 153 = 326 rewards
    assert "每份奖励的期望值：1.53 元" in preview.text
    assert "按期望值约可发放 326 份" in preview.text
    assert 'id="save-rule"' in preview.text
    bad_tiers = await client.post(
        "/console/rewards/rules", data={**rule_form, "tiers": "0.88 seventy", "action": "preview"}, headers=HTML
    )
    assert bad_tiers.status_code == 422
    assert 'id="save-rule"' not in bad_tiers.text
    saved = await client.post("/console/rewards/rules", data={**rule_form, "action": "save"}, headers=HTML)
    assert saved.status_code == 303, saved.text
    rules_page = await client.get("/console/rewards/rules", headers=HTML)
    assert "开瓶红包" in rules_page.text
    assert "1.53" in rules_page.text

    # a consumer's second open today is held; the admin releases it
    settings = {
        "velocity_per_hour": "600",
        "store_distance_km": "5",
        "consumer_opens_per_day": "1",
        "device_accounts": "3",
        "min_withdrawal_fen": "100",
        "csrf_token": csrf,
    }
    assert (await client.post("/console/rewards/settings", data=settings, headers=HTML)).status_code == 303
    bad_setting = await client.post(
        "/console/rewards/settings", data={**settings, "device_accounts": "x"}, headers=HTML
    )
    assert bad_setting.status_code == 422
    consumer = uuid.uuid4()
    await publish(runtime, item_event(brand.id, 1, consumer_id=consumer))
    held = (await publish(runtime, item_event(brand.id, 2, consumer_id=consumer)))[0]
    assert held["status"] == "held"
    review = await client.get("/console/rewards/review", headers=HTML)
    assert "开瓶过多" in review.text
    released = await client.post(
        f"/console/rewards/grants/{held['grant_id']}/review",
        data={"decision": "release", "note": "核实", "csrf_token": csrf},
        headers=HTML,
    )
    assert released.status_code == 303
    review = await client.get("/console/rewards/review", headers=HTML)
    assert 'id="review-queue"' not in review.text

    # a withdrawal, approved as a sandbox batch and reconciled
    wallet = await balance_of_consumer(runtime, brand.id, consumer)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await payouts.do_request_withdrawal(
            session, runtime.crypto, party=f"consumer:{consumer}", amount_fen=wallet, payee_name="张三",
            payee_account="6222020000005678", request_key="w1",
        )  # fmt: skip
    payouts_page = await client.get("/console/rewards/payouts", headers=HTML)
    assert "****5678" in payouts_page.text
    assert "6222020000005678" not in payouts_page.text
    approved = await client.post(
        "/console/rewards/batches", data={"provider": "sandbox", "csrf_token": csrf}, headers=HTML
    )
    assert approved.status_code == 303
    batch_url = approved.headers["location"]
    reconciled = await client.post(f"{batch_url}/reconcile", data={"csrf_token": csrf}, headers=HTML)
    assert reconciled.status_code == 303
    batch_page = await client.get(batch_url, headers=HTML)
    assert "已对账" in batch_page.text
    client.cookies.set("zt_lang", "en")
    batch_page = await client.get(batch_url, headers=HTML)
    assert "Reconciled" in batch_page.text
    await assert_books_balance(runtime, brand.id)


async def balance_of_consumer(runtime: Runtime, tenant_id: uuid.UUID, consumer: uuid.UUID) -> int:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return (await payouts.wallet_summary(session, f"consumer:{consumer}"))["balance_fen"]


async def test_operators_and_viewers_see_what_they_may_do(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    csrf = await console_login(client, viewer.email)
    for path in (
        "/console/rewards/rules",
        "/console/rewards/pools",
        "/console/rewards/review",
        "/console/rewards/payouts",
    ):
        page = await client.get(path, headers=HTML)
        assert page.status_code == 200, path
        assert 'id="rule-form"' not in page.text
        assert 'id="pool-form"' not in page.text
    refused = await client.post(
        "/console/rewards/pools", data={"code": "P", "name": "p", "csrf_token": csrf}, headers=HTML
    )
    assert refused.status_code == 403
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.list_pools(session) == []
