"""Rewards on phones: a consumer verifies a bottle (the real PIN check publishes consumer_open), the
scan page shows the red packet, the consumer signs in and claims it into their wallet; the partner's
wallet page; both tiers."""

from __future__ import annotations

import httpx

from tests.factories import bearer, make_token, system_actor
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import balance, make_pool, make_rule
from tests.test_authenticity_scan import HTML, SHANGHAI, scene, settle, verify
from tests.test_core_consumers import _request_code, _sent_codes
from zhongtai.core.runtime import Runtime
from zhongtai.rewards import service


async def test_the_scan_page_shows_the_red_packet_and_the_consumer_claims_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    s = await scene(client, runtime)
    brand = s.line.brand
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=188)
    serial, other = s.items[0], s.items[1]
    page = await client.get(s.path(serial), headers=HTML)  # sets the browser's zt_cid cookie
    assert 'id="red-packet"' not in page.text  # nothing granted yet: no panel
    verified = await verify(client, s.path(serial), s.pins[serial], **SHANGHAI)
    assert verified.json()["verdict"] == "genuine"
    await settle(runtime)
    page = await client.get(s.path(serial), headers=HTML)
    assert 'id="red-packet"' in page.text
    assert "恭喜" in page.text or "1.88" in page.text
    assert f'href="/h5/{brand.tenant.slug}/login"' in page.text  # not signed in: sign in to keep it
    english = await client.get(s.path(serial) + "?lang=en", headers=HTML)
    assert "You received a red packet of 1.88 yuan." in english.text
    assert 'id="red-packet"' not in (await client.get(s.path(other), headers=HTML)).text

    # the consumer signs in on this phone and claims what the device received
    assert (await _request_code(client, brand)).status_code == 202
    [code] = await _sent_codes(runtime, brand)
    signed = await client.post(
        f"/api/v1/public/{brand.tenant.slug}/sessions", json={"phone": "13812345678", "code": code}
    )
    token = bearer(signed.json()["token"])
    claimed = await client.post("/api/v1/rewards/consumer/claim", headers=token)
    assert claimed.json() == {"claimed": 1, "amount_fen": 188}
    assert (await client.post("/api/v1/rewards/consumer/claim", headers=token)).json() == {
        "claimed": 0,
        "amount_fen": 0,
    }
    wallet = (await client.get("/api/v1/rewards/consumer/wallet", headers=token)).json()
    assert wallet["balance_fen"] == 188
    consumer_id = signed.json()["consumer"]["id"]
    assert await balance(runtime, brand.id, f"wallet:consumer:{consumer_id}") == 188
    page = await client.get(s.path(serial), headers=HTML)
    assert f'href="/h5/{brand.tenant.slug}/login"' not in page.text  # claimed: no sign-in prompt
    await assert_books_balance(runtime, brand.id)


async def test_partner_wallet_page_and_its_refusals(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    brand = s.line.brand
    page = await client.get(f"/h5/{brand.tenant.slug}/partner/wallet", headers=HTML)
    assert page.status_code == 200
    assert 'id="wallet"' in page.text
    assert "/static/h5-rewards.js" in page.text
    english = await client.get(
        f"/h5/{brand.tenant.slug}/partner/wallet?lang=en", headers={**HTML, "cookie": "zt_lang=en"}
    )
    assert "My rewards" in english.text
    assert (await client.get("/h5/no-such-brand/partner/wallet", headers=HTML)).status_code == 404
    consumer_only = await client.get("/api/v1/rewards/partner/wallet", headers=bearer("ztc_nope"))
    assert consumer_only.status_code == 401
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.get_risk(session, brand.id) == service.rules.DEFAULT_RISK
        _ = system_actor(brand.id)


async def test_the_panels_alone_for_the_page_script(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    brand = s.line.brand
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=66)
    serial = s.items[0]
    await client.get(s.path(serial), headers=HTML)  # the page: one view, the phone's cookie
    empty = await client.get(s.path(serial) + "?part=panels", headers=HTML)
    assert (empty.status_code, empty.text, empty.headers["cache-control"]) == (200, "", "no-store")
    assert (await verify(client, s.path(serial), s.pins[serial], **SHANGHAI)).json()["verdict"] == "genuine"
    await settle(runtime)
    fragment = await client.get(s.path(serial) + "?part=panels&lang=en", headers=HTML)
    assert fragment.text.startswith('<section class="h5-card red-packet" id="red-packet"')
    assert "You received a red packet of 0.66 yuan." in fragment.text
    assert "<html" not in fragment.text
    # the fragments are not views of the code: the page counted one
    facts = (await client.get(s.path(serial), headers={"accept": "application/json"})).json()
    assert facts["scans"]["views"] == 2  # the first page and this JSON read


async def test_the_consumer_wallet_page_lists_packets_and_withdraws_above_the_minimum(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    s = await scene(client, runtime)
    brand = s.line.brand
    slug = brand.tenant.slug
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=1288)
    serial = s.items[0]
    await client.get(s.path(serial), headers=HTML)
    assert (await verify(client, s.path(serial), s.pins[serial], **SHANGHAI)).json()["verdict"] == "genuine"
    await settle(runtime)
    page = await client.get(s.path(serial), headers=HTML)
    assert f'href="/h5/{slug}/wallet"' in page.text  # the red packet panel leads to the wallet

    shell = await client.get(f"/h5/{slug}/wallet", headers=HTML)
    assert shell.status_code == 200
    assert 'id="consumer-wallet"' in shell.text
    assert "/static/h5-consumer-wallet.js" in shell.text
    assert "我的钱包" in shell.text
    assert (await client.get("/h5/no-such-brand/wallet", headers=HTML)).status_code == 404
    centre = await client.get(f"/h5/{slug}/me", headers=HTML)
    assert f'href="/h5/{slug}/wallet"' in centre.text

    assert (await _request_code(client, brand)).status_code == 202
    [code] = await _sent_codes(runtime, brand)
    signed = await client.post(f"/api/v1/public/{slug}/sessions", json={"phone": "13812345678", "code": code})
    token = bearer(signed.json()["token"])
    assert (await client.post("/api/v1/rewards/consumer/claim", headers=token)).json()["claimed"] == 1
    wallet = (await client.get("/api/v1/rewards/consumer/wallet", headers=token)).json()
    assert (wallet["balance_fen"], wallet["min_withdrawal_fen"]) == (1288, 100)
    [packet] = wallet["packets"]
    assert (packet["amount_fen"], packet["status"], packet["serial"]) == (1288, "paid", serial)
    assert packet["product"] == "飞天 53%vol 500ml"

    brand_token = bearer(await make_token(runtime, brand))
    raised = await client.patch("/api/v1/rewards/settings", json={"min_withdrawal_fen": 1000}, headers=brand_token)
    assert raised.status_code == 200, raised.text
    payee = {"payee_name": "张三", "payee_account": "6222020200001234"}
    below = await client.post(
        "/api/v1/rewards/consumer/withdrawals",
        json={"amount_fen": 999, **payee},
        headers={**token, "Idempotency-Key": "wd-below-1"},
    )
    assert (below.status_code, below.json()["error"]) == (422, "below_minimum")
    key = {**token, "Idempotency-Key": "wd-wallet-1"}
    first = await client.post("/api/v1/rewards/consumer/withdrawals", json={"amount_fen": 1000, **payee}, headers=key)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/rewards/consumer/withdrawals", json={"amount_fen": 1000, **payee}, headers=key)
    assert again.json()["id"] == first.json()["id"]  # the same key withdraws once
    assert first.json()["payee_account"] == "****1234"
    wallet = (await client.get("/api/v1/rewards/consumer/wallet", headers=token)).json()
    assert (wallet["balance_fen"], wallet["withdrawing_fen"]) == (288, 1000)
    assert [w["status"] for w in wallet["withdrawals"]] == ["requested"]
    await assert_books_balance(runtime, brand.id)
