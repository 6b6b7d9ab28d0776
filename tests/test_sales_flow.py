"""Payment, pickup and settlement on both tiers: signed notifications (idempotent, refusals, races),
the pickup code and the clerk's hand-over (wrong store, forged, expired, replayed), the EPCIS
retail_selling event, settlement through the ledger (books balance), refunds, rules and statements."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import Brand, bearer, make_brand, make_token
from tests.ledger_factories import assert_books_balance
from tests.members_factories import make_consumer
from tests.sales_factories import make_order
from tests.test_codes_api import make_product, request_batch, run_jobs
from zhongtai.core import clock
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.sales import payments, rules, service, settlement
from zhongtai.sales.models import SalesOrder, SalesPayment, SalesSettlement
from zhongtai.trace.models import TraceEvent

CLERK_PASSWORD = "store clerk secret"
PRICE = 149_900


@dataclass
class Shop:
    brand: Brand
    admin: dict[str, str]
    product_id: uuid.UUID
    serials: list[str]
    dealer_id: uuid.UUID
    store_id: uuid.UUID
    other_store_id: uuid.UUID
    clerk: dict[str, str]
    other_clerk: dict[str, str]
    dealer_staff: dict[str, str]
    consumer_id: uuid.UUID
    member: dict[str, str]


async def _created(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict) -> dict:  # type: ignore[type-arg]
    response = await client.post(f"/api/v1/channel{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def make_shop(client: httpx.AsyncClient, runtime: Runtime) -> Shop:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    admin = bearer(token)
    await client.put("/api/v1/codes/settings", json={"gs1_company_prefix": "6901234"}, headers=admin)
    product_id = await make_product(runtime, brand)
    batch = await request_batch(client, token, product_id, 6)
    await run_jobs(runtime)
    export = (await client.get(f"/api/v1/codes/batches/{batch['id']}/export", headers=admin)).text
    serials = [row[2] for row in list(csv.reader(io.StringIO(export)))[1:]]
    done = await client.post("/api/v1/codes/commission", json={"batch_id": batch["id"]}, headers=admin)
    assert done.status_code == 200, done.text
    dealer = await _created(client, admin, "/dealers", {"code": "D1", "name": "Dealer 1"})
    store = await _created(client, admin, "/stores", {"code": "S1", "name": "Store 1", "dealer_code": "D1"})
    other = await _created(client, admin, "/stores", {"code": "S2", "name": "Store 2", "dealer_code": "D1"})
    tokens = {}
    for role, target, phone in (
        ("store", store["id"], "13700000002"),
        ("store", other["id"], "13700000004"),
        ("dealer", dealer["id"], "13700000001"),
    ):
        await _created(
            client,
            admin,
            "/partners",
            {"role": role, "target_id": target, "phone": phone, "display_name": "Clerk", "password": CLERK_PASSWORD},
        )
        signed = await client.post(
            f"/api/v1/channel/public/{brand.tenant.slug}/partner/sessions",
            json={"phone": phone, "password": CLERK_PASSWORD},
        )
        assert signed.status_code == 201, signed.text
        tokens[phone] = bearer(signed.json()["token"])
    consumer, member_token = await make_consumer(runtime, brand)
    return Shop(
        brand,
        admin,
        product_id,
        serials,
        uuid.UUID(dealer["id"]),
        uuid.UUID(store["id"]),
        uuid.UUID(other["id"]),
        tokens["13700000002"],
        tokens["13700000004"],
        tokens["13700000001"],
        consumer.id,
        bearer(member_token),
    )


async def _order(runtime: Runtime, shop: Shop, ref: str = "fs-1", quantity: int = 1) -> SalesOrder:
    return await make_order(
        runtime,
        shop.brand,
        ref,
        consumer_id=shop.consumer_id,
        product_id=shop.product_id,
        store_id=shop.store_id,
        quantity=quantity,
        unit_price_fen=PRICE,
    )


async def _start(client: httpx.AsyncClient, runtime: Runtime, shop: Shop, order: SalesOrder) -> SalesPayment:
    started = await client.post(f"/api/v1/consumer/sales/orders/{order.id}/payments", headers=shop.member)
    assert started.status_code == 201, started.text
    assert started.json()["pay_url"].startswith(f"/h5/{shop.brand.tenant.slug}/sandbox-pay/")
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        payment = await payments.get_payment(session, uuid.UUID(started.json()["payment_id"]))
        session.expunge(payment)
        return payment


def _provider(runtime: Runtime, brand: Brand) -> payments.SandboxPaymentProvider:
    return payments.SandboxPaymentProvider(runtime.crypto, brand.id)


async def _notify(client: httpx.AsyncClient, shop: Shop, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[payments.SIGNATURE_HEADER] = signature
    return await client.post(
        f"/api/v1/public/{shop.brand.tenant.slug}/sales/payments/sandbox/notify", content=body, headers=headers
    )


async def _pay(client: httpx.AsyncClient, runtime: Runtime, shop: Shop, order: SalesOrder) -> httpx.Response:
    payment = await _start(client, runtime, shop, order)
    body, signature = _provider(runtime, shop.brand).notification_for(payment)
    return await _notify(client, shop, body, signature)


async def _set_default_rule(client: httpx.AsyncClient, shop: Shop) -> None:
    rule = {"mode": "percent", "brand_share": 8000, "dealer_share": 1200, "store_share": 800}
    done = await client.put("/api/v1/sales/settlement/rules/default", json=rule, headers=shop.admin)
    assert done.status_code == 200, done.text


@pytest.fixture(autouse=True)
def _reset_clock() -> object:
    yield
    clock.reset()


def test_split_always_adds_up() -> None:
    percent = rules.SettlementRule("percent", 8000, 1200, 800)
    for amount in (0, 1, 7, 99, 149_900, 10**9 + 3):
        shares = rules.split(amount, 1, percent, has_dealer=True, has_store=True)
        assert shares.total == amount
        assert shares.dealer_fen == amount * 1200 // 10_000
    assert rules.split(149_900, 1, percent, has_dealer=True, has_store=True) == rules.Shares(119_920, 17_988, 11_992)
    assert rules.split(149_900, 1, percent, has_dealer=False, has_store=False) == rules.Shares(149_900, 0, 0)
    fixed = rules.SettlementRule("fixed", 0, 5_000, 3_000)
    assert rules.split(20_000, 2, fixed, has_dealer=True, has_store=True) == rules.Shares(4_000, 10_000, 6_000)
    assert rules.split(6_000, 1, fixed, has_dealer=True, has_store=True) == rules.Shares(0, 5_000, 1_000)
    assert rules.settlement_rule_problems(rules.SettlementRule("percent", 8000, 1200, 700))
    assert rules.settlement_rule_problems(rules.SettlementRule("fixed", 1, 0, 0))
    assert not rules.settlement_rule_problems(fixed)


async def test_pay_hand_over_and_settle(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    await _set_default_rule(client, shop)
    order = await _order(runtime, shop)
    payment = await _start(client, runtime, shop, order)
    body, signature = _provider(runtime, shop.brand).notification_for(payment)
    first = await _notify(client, shop, body, signature)
    assert first.status_code == 200, first.text
    assert (first.json()["result"], first.json()["order_state"]) == ("paid", "ready_for_pickup")
    again = await _notify(client, shop, body, signature)
    assert again.json() == first.json()

    detail = (await client.get(f"/api/v1/sales/orders/{order.id}", headers=shop.admin)).json()
    assert [(h["from_state"], h["to_state"]) for h in detail["history"]] == [
        ("pending_payment", "paid"),
        ("paid", "ready_for_pickup"),
    ]
    assert [(p["status"], p["amount_fen"]) for p in detail["payments"]] == [("succeeded", PRICE)]
    s = detail["settlement"]
    assert (s["brand_fen"], s["dealer_fen"], s["store_fen"], s["store_id"], s["dealer_id"]) == (
        119_920,
        17_988,
        11_992,
        str(shop.store_id),
        str(shop.dealer_id),
    )
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        wallet = await ledger.account_by_key(session, f"wallet:store:{shop.store_id}")
        assert wallet is not None
        assert await ledger.balance_of(session, wallet.id) == 11_992
        revenue = await ledger.account_by_key(session, settlement.REVENUE_KEY)
        assert revenue is not None
        assert await ledger.balance_of(session, revenue.id) == 119_920
    await assert_books_balance(runtime, shop.brand.id)

    code = await client.get(f"/api/v1/consumer/sales/orders/{order.id}/pickup-code", headers=shop.member)
    assert code.status_code == 200, code.text
    token = code.json()["token"]
    assert code.json()["qr_svg"].startswith("<svg")
    wrong_store = await client.post(
        "/api/v1/partner/sales/pickup/check", json={"token": token}, headers=shop.other_clerk
    )
    assert wrong_store.status_code == 403
    assert wrong_store.json()["error"] == "sales_pickup_wrong_store"
    dealer = await client.post("/api/v1/partner/sales/pickup/check", json={"token": token}, headers=shop.dealer_staff)
    assert dealer.status_code == 403
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    refused = await client.post("/api/v1/partner/sales/pickup/check", json={"token": forged}, headers=shop.clerk)
    assert (refused.status_code, refused.json()["error"]) == (400, "sales_bad_pickup_code")
    checked = await client.post("/api/v1/partner/sales/pickup/check", json={"token": token}, headers=shop.clerk)
    assert checked.status_code == 200, checked.text
    assert (checked.json()["order_no"], checked.json()["quantity"]) == (order.order_no, 1)

    two = await client.post(
        "/api/v1/partner/sales/pickup", json={"token": token, "item_codes": shop.serials[:2]}, headers=shop.clerk
    )
    assert two.status_code == 409
    assert "1 bottle" in two.json()["detail"]
    done = await client.post(
        "/api/v1/partner/sales/pickup", json={"token": token, "item_codes": [shop.serials[0]]}, headers=shop.clerk
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "picked_up"
    replay = await client.post(
        "/api/v1/partner/sales/pickup", json={"token": token, "item_codes": [shop.serials[0]]}, headers=shop.clerk
    )
    assert replay.status_code == 409
    assert "already picked up" in replay.json()["detail"]

    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        final = await service.get_order(session, order.id)
        assert final.state == "picked_up"
        assert final.item_code_id is not None
        sale = [e for e in (await session.scalars(select(TraceEvent))).all() if "retail_selling" in (e.biz_step or "")]
        assert len(sale) == 1
        assert sale[0].body["bizTransactionList"][0]["bizTransaction"] == f"urn:zhongtai:sales-order:{order.id}"
        assert sale[0].body["epcList"][0].endswith(f"/21/{shop.serials[0]}")

    # The same bottle cannot go to a second order.
    second = await _order(runtime, shop, "fs-2")
    assert (await _pay(client, runtime, shop, second)).status_code == 200
    token2 = (await client.get(f"/api/v1/consumer/sales/orders/{second.id}/pickup-code", headers=shop.member)).json()
    reused = await client.post(
        "/api/v1/partner/sales/pickup",
        json={"token": token2["token"], "item_codes": [shop.serials[0]]},
        headers=shop.clerk,
    )
    assert reused.status_code == 409
    assert "already handed over" in reused.json()["detail"]
    await assert_books_balance(runtime, shop.brand.id)


async def test_notification_refusals_change_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    order = await _order(runtime, shop)
    payment = await _start(client, runtime, shop, order)
    provider = _provider(runtime, shop.brand)
    body, signature = provider.notification_for(payment)
    assert (await _notify(client, shop, body, None)).status_code == 401
    assert (await _notify(client, shop, body, "v1=" + "0" * 64)).status_code == 401
    tampered = body.replace(str(PRICE).encode(), b"1")
    assert (await _notify(client, shop, tampered, signature)).status_code == 401
    other = await make_brand(runtime)
    _, foreign_signature = _provider(runtime, other).notification_for(payment)
    assert (await _notify(client, shop, body, foreign_signature)).status_code == 401
    cheap, cheap_signature = provider.notification_for(payment, amount_fen=1)
    wrong_amount = await _notify(client, shop, cheap, cheap_signature)
    assert (wrong_amount.status_code, wrong_amount.json()["error"]) == (422, "sales_payment_amount_mismatch")
    unknown = json.loads(body)
    unknown["payment_id"] = str(uuid.uuid4())
    unknown_body = json.dumps(unknown).encode()
    missing = await _notify(client, shop, unknown_body, provider.sign(unknown_body))
    assert missing.status_code == 404
    garbage = b'{"status": "SUCCESS"}'
    assert (await _notify(client, shop, garbage, provider.sign(garbage))).status_code == 422
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert (await service.get_order(session, order.id)).state == "pending_payment"
        assert [p.status for p in await payments.payments_of(session, order.id)] == ["created"]
        assert await session.scalar(select(func.count()).select_from(SalesSettlement)) == 0


async def test_concurrent_duplicate_notifications_pay_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    await _set_default_rule(client, shop)
    order = await _order(runtime, shop)
    payment = await _start(client, runtime, shop, order)
    body, signature = _provider(runtime, shop.brand).notification_for(payment)
    answers = await asyncio.gather(*(_notify(client, shop, body, signature) for _ in range(6)))
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["order_state"] for a in answers} <= {"ready_for_pickup"}
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert [p.status for p in await payments.payments_of(session, order.id)] == ["succeeded"]
        assert len(await service.history(session, order.id)) == 2
        assert await ledger.entry_by_key(session, settlement.settle_key(order.id)) is not None
    await assert_books_balance(runtime, shop.brand.id)


async def test_a_payment_after_the_deadline_is_refunded(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    order = await _order(runtime, shop)
    payment = await _start(client, runtime, shop, order)
    clock.advance(16 * 60)
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert await service.expire_due(session) == 1
    body, signature = _provider(runtime, shop.brand).notification_for(payment)
    late = await _notify(client, shop, body, signature)
    assert late.status_code == 200
    assert (late.json()["result"], late.json()["order_state"]) == ("refunded", "expired")
    again = await client.post(f"/api/v1/consumer/sales/orders/{order.id}/payments", headers=shop.member)
    assert (again.status_code, again.json()["error"]) == (409, "sales_not_payable")
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert [p.status for p in await payments.payments_of(session, order.id)] == ["refunded"]
        assert await session.scalar(select(func.count()).select_from(SalesSettlement)) == 0


async def test_refund_reverses_the_settlement(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    await _set_default_rule(client, shop)
    order = await _order(runtime, shop, quantity=2)
    assert (await _pay(client, runtime, shop, order)).status_code == 200
    viewer = await make_token(runtime, shop.brand, ["sales.read"])
    forbidden = await client.post(
        f"/api/v1/sales/orders/{order.id}/refund", json={"reason": "customer asked"}, headers=bearer(viewer)
    )
    assert forbidden.status_code == 403
    refunded = await client.post(
        f"/api/v1/sales/orders/{order.id}/refund", json={"reason": "customer asked"}, headers=shop.admin
    )
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["state"] == "refunded"
    assert refunded.json()["settlement"]["status"] == "reversed"
    assert refunded.json()["payments"][0]["status"] == "refunded"
    twice = await client.post(f"/api/v1/sales/orders/{order.id}/refund", json={"reason": "again"}, headers=shop.admin)
    assert (twice.status_code, twice.json()["error"]) == (409, "sales_illegal_transition")
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        wallet = await ledger.account_by_key(session, f"wallet:store:{shop.store_id}")
        assert wallet is not None
        assert await ledger.balance_of(session, wallet.id) == 0
    await assert_books_balance(runtime, shop.brand.id)
    unpaid = await _order(runtime, shop, "fs-unpaid")
    refused = await client.post(f"/api/v1/sales/orders/{unpaid.id}/refund", json={"reason": "x"}, headers=shop.admin)
    assert refused.status_code == 409


async def test_an_expired_pickup_code_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    order = await _order(runtime, shop)
    unpaid_code = await client.get(f"/api/v1/consumer/sales/orders/{order.id}/pickup-code", headers=shop.member)
    assert unpaid_code.status_code == 409
    assert (await _pay(client, runtime, shop, order)).status_code == 200
    token = (await client.get(f"/api/v1/consumer/sales/orders/{order.id}/pickup-code", headers=shop.member)).json()
    clock.advance(16 * 60)
    expired = await client.post(
        "/api/v1/partner/sales/pickup",
        json={"token": token["token"], "item_codes": [shop.serials[1]]},
        headers=shop.clerk,
    )
    assert (expired.status_code, expired.json()["error"]) == (400, "sales_pickup_code_expired")
    other = await make_brand(runtime)
    _stranger, stranger_token = await make_consumer(runtime, other)
    assert (
        await client.get(f"/api/v1/consumer/sales/orders/{order.id}/pickup-code", headers=bearer(stranger_token))
    ).status_code == 404


async def test_settlement_rules_and_statements(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    put = "/api/v1/sales/settlement/rules"
    bad_sum = await client.put(
        f"{put}/default",
        json={"mode": "percent", "brand_share": 8000, "dealer_share": 1200, "store_share": 700},
        headers=shop.admin,
    )
    assert (bad_sum.status_code, bad_sum.json()["error"]) == (422, "sales_bad_settlement_rule")
    assert "99.00%" in bad_sum.json()["detail"]
    unknown_product = await client.put(
        f"{put}/{uuid.uuid4()}",
        json={"mode": "fixed", "brand_share": 0, "dealer_share": 1, "store_share": 1},
        headers=shop.admin,
    )
    assert unknown_product.status_code == 404
    fixed = await client.put(
        f"{put}/{shop.product_id}",
        json={"mode": "fixed", "brand_share": 0, "dealer_share": 10_000, "store_share": 5_000},
        headers=shop.admin,
    )
    assert fixed.status_code == 200, fixed.text
    await _set_default_rule(client, shop)
    for n in range(3):
        assert (await _pay(client, runtime, shop, await _order(runtime, shop, f"s-{n}"))).status_code == 200
    day = settlement.business_day(clock.utcnow()).isoformat()
    by_store = await client.get(f"/api/v1/sales/statements?by=store&day_from={day}&day_to={day}", headers=shop.admin)
    assert by_store.json() == [
        {
            "business_day": day,
            "party_id": str(shop.store_id),
            "orders": 3,
            "amount_fen": 3 * PRICE,
            "brand_fen": 3 * (PRICE - 15_000),
            "dealer_fen": 30_000,
            "store_fen": 15_000,
        }
    ]
    by_dealer = await client.get(f"/api/v1/sales/statements?by=dealer&format=csv&day_to={day}", headers=shop.admin)
    assert by_dealer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(by_dealer.text)))
    assert rows[1][1] == str(shop.dealer_id)
    assert rows[1][3:] == ["3", "4497.00", "4047.00", "300.00", "150.00"]
    too_long = await client.get("/api/v1/sales/statements?day_from=2026-01-01&day_to=2026-12-31", headers=shop.admin)
    assert too_long.status_code == 422
    await assert_books_balance(runtime, shop.brand.id)


async def test_sandbox_pay_page_and_pages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    order = await _order(runtime, shop)
    started = await client.post(f"/api/v1/consumer/sales/orders/{order.id}/payments", headers=shop.member)
    pay_url = started.json()["pay_url"]
    forged = pay_url.split("?t=")[0] + "?t=" + "0" * 32
    assert (await client.get(forged)).status_code == 404
    page = await client.get(pay_url)
    assert page.status_code == 200
    assert order.order_no in page.text
    assert "1499.00" in page.text
    token = pay_url.split("?t=")[1]
    refused = await client.post(pay_url.split("?t=")[0], data={"t": "0" * 32})
    assert refused.status_code == 404
    paid = await client.post(pay_url.split("?t=")[0], data={"t": token})
    assert paid.status_code == 303
    assert paid.headers["location"] == f"/h5/{shop.brand.tenant.slug}/orders"
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert (await service.get_order(session, order.id)).state == "ready_for_pickup"
    for path in ("orders", "partner/pickup"):
        h5 = await client.get(f"/h5/{shop.brand.tenant.slug}/{path}", headers={"accept-language": "zh-CN"})
        assert h5.status_code == 200
        assert "/static/h5-sales.js" in h5.text

    from tests.factories import console_login

    await console_login(client, shop.brand.owner.email)
    listing = await client.get("/console/sales/orders?state=ready_for_pickup", headers={"accept": "text/html"})
    assert listing.status_code == 200
    assert order.order_no in listing.text
    detail = await client.get(f"/console/sales/orders/{order.id}", headers={"accept": "text/html"})
    assert detail.status_code == 200
    assert "sandbox" in detail.text
    statement = await client.get("/console/sales/settlement?by=dealer", headers={"accept": "text/html"})
    assert statement.status_code == 200
    csv_export = await client.get("/console/sales/settlement?by=store&format=csv")
    assert csv_export.text.splitlines()[0].startswith("business_day,store")
