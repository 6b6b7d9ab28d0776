"""A lottery win becomes a sales order on both tiers: created with the winners' notification at the
stock's price and the win's deadline, for pickup at the lottery store's channel store; paying it marks
the win paid and a clerk hands the bottle over; an unpaid one expires and forfeits the win."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import bearer
from tests.lottery_factories import end_window, open_window
from tests.members_factories import adult_id, make_consumer, verify_consumer
from tests.test_sales_flow import PRICE, Shop, make_shop
from zhongtai.core import clock, jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.runtime import Runtime
from zhongtai.lottery import service
from zhongtai.lottery.models import LotteryWin
from zhongtai.sales import payments
from zhongtai.sales import service as sales
from zhongtai.sales.models import SalesOrder


@pytest.fixture(autouse=True)
def _reset_clock() -> object:
    yield
    clock.reset()


async def _run_jobs(runtime: Runtime) -> None:
    worker = jobs.Worker(runtime.db, name="test")
    while await worker.run_once():
        pass


async def _lottery_store(client: httpx.AsyncClient, shop: Shop, code: str, channel_store_id: uuid.UUID | None) -> dict:  # type: ignore[type-arg]
    body = {"code": code, "name": "北京国贸店", "city": "北京", "latitude": 39.9087, "longitude": 116.4605}
    if channel_store_id is not None:
        body["channel_store_id"] = str(channel_store_id)
    made = await client.post("/api/v1/lottery/stores", json=body, headers=shop.admin)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def _drawn_lottery(
    client: httpx.AsyncClient, runtime: Runtime, shop: Shop, *, winners: int, entrants: list[dict[str, str]]
) -> tuple[uuid.UUID, uuid.UUID]:
    """A session with `winners` bottles at one store linked to the shop's channel store, entered by
    every one of `entrants`, closed and drawn; returns (session id, lottery store id)."""
    store = await _lottery_store(client, shop, "BJ01", shop.store_id)
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        lottery = await service.do_create_session(
            session,
            runtime.crypto,
            title="茅台 每日申购",
            opens_at=utcnow() + timedelta(seconds=60),
            closes_at=utcnow() + timedelta(seconds=60 + 3600),
            beacon_source="",
        )
        sid = lottery.id
    stocked = await client.put(
        f"/api/v1/lottery/sessions/{sid}/stock",
        json={
            "items": [
                {"store_id": store["id"], "product_id": str(shop.product_id), "quantity": winners, "price_fen": PRICE}
            ]
        },
        headers=shop.admin,
    )
    assert stocked.status_code == 200, stocked.text
    assert stocked.json()["items"][0]["price_fen"] == PRICE
    assert (await client.post(f"/api/v1/lottery/sessions/{sid}/commit", headers=shop.admin)).status_code == 200
    open_window()
    for member in entrants:
        entered = await client.post(
            f"/api/v1/consumer/lottery/sessions/{sid}/entries",
            json={"product_id": str(shop.product_id), "store_id": store["id"]},
            headers=member,
        )
        assert entered.status_code == 201, entered.text
    end_window()
    assert (await client.post(f"/api/v1/lottery/sessions/{sid}/close", headers=shop.admin)).status_code == 200
    drawn = await client.post(f"/api/v1/lottery/sessions/{sid}/draw", json={"beacon": "ab12"}, headers=shop.admin)
    assert drawn.status_code == 200, drawn.text
    return sid, uuid.UUID(store["id"])


async def _verified_member(runtime: Runtime, shop: Shop, n: int, owners: dict | None = None) -> dict[str, str]:  # type: ignore[type-arg]
    consumer, token = await make_consumer(runtime, shop.brand)
    await verify_consumer(runtime, shop.brand, consumer.id, adult_id(n))
    if owners is not None:
        owners[consumer.id] = bearer(token)
    return bearer(token)


async def _pay(
    client: httpx.AsyncClient, runtime: Runtime, shop: Shop, member: dict[str, str], order_id: str
) -> httpx.Response:
    started = await client.post(f"/api/v1/consumer/sales/orders/{order_id}/payments", headers=member)
    assert started.status_code == 201, started.text
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        payment = await payments.get_payment(session, uuid.UUID(started.json()["payment_id"]))
        body, signature = payments.SandboxPaymentProvider(runtime.crypto, shop.brand.id).notification_for(payment)
    return await client.post(
        f"/api/v1/public/{shop.brand.tenant.slug}/sales/payments/sandbox/notify",
        content=body,
        headers={"content-type": "application/json", payments.SIGNATURE_HEADER: signature},
    )


async def test_a_win_is_an_order_to_pay_and_pick_up(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    member = await _verified_member(runtime, shop, 1)
    sid, _store_id = await _drawn_lottery(client, runtime, shop, winners=1, entrants=[member])

    entries = (await client.get("/api/v1/consumer/lottery/entries", headers=member)).json()
    entry_id = entries[0]["entry_id"] if isinstance(entries, list) else entries["items"][0]["entry_id"]
    before = (await client.get(f"/api/v1/consumer/lottery/entries/{entry_id}", headers=member)).json()
    assert before["result"] == "won"
    assert before["win"]["order"] is None, "the order comes with the notification job, not the draw"

    await _run_jobs(runtime)
    receipt = (await client.get(f"/api/v1/consumer/lottery/entries/{entry_id}", headers=member)).json()
    order_out = receipt["win"]["order"]
    assert (order_out["state"], order_out["amount_fen"], order_out["store_id"]) == (
        "pending_payment",
        PRICE,
        str(shop.store_id),
    )
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        win = (await session.scalars(select(LotteryWin))).one()
        order = await sales.get_order(session, uuid.UUID(order_out["id"]))
        assert (order.source, order.source_ref, order.quantity, order.unit_price_fen) == (
            "lottery",
            str(win.id),
            1,
            PRICE,
        )
        assert (order.consumer_id, order.product_id, order.pay_deadline) == (
            win.consumer_id,
            shop.product_id,
            win.payment_due_at,
        )
        # The job creating orders again (a retried batch) creates none.
        lottery = await service.get_session(session, sid)
        assert await service.do_create_win_orders(session, lottery, [win]) == 0
        assert await session.scalar(select(func.count()).select_from(SalesOrder)) == 1
    mine = (await client.get("/api/v1/consumer/sales/orders", headers=member)).json()
    assert [o["id"] for o in mine["items"]] == [order_out["id"]]
    # Another member cannot pay it.
    other = await _verified_member(runtime, shop, 2)
    foreign = await client.post(f"/api/v1/consumer/sales/orders/{order_out['id']}/payments", headers=other)
    assert foreign.status_code == 404

    paid = await _pay(client, runtime, shop, member, order_out["id"])
    assert paid.status_code == 200, paid.text
    assert paid.json()["order_state"] == "ready_for_pickup"
    receipt = (await client.get(f"/api/v1/consumer/lottery/entries/{entry_id}", headers=member)).json()
    assert (receipt["win"]["status"], receipt["win"]["order"]["state"]) == ("paid", "ready_for_pickup")
    wins = (await client.get(f"/api/v1/lottery/sessions/{sid}/wins", headers=shop.admin)).json()
    assert [w["status"] for w in wins] == ["paid"]

    # The store's clerk hands the bottle over; the deadline passing afterwards changes nothing.
    code = (await client.get(f"/api/v1/consumer/sales/orders/{order_out['id']}/pickup-code", headers=member)).json()
    done = await client.post(
        "/api/v1/partner/sales/pickup",
        json={"token": code["token"], "item_codes": [shop.serials[0]]},
        headers=shop.clerk,
    )
    assert (done.status_code, done.json()["state"]) == (200, "picked_up"), done.text
    clock.advance(24 * 3600 + 2 * 60)
    await _run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert (await session.scalars(select(LotteryWin.status))).one() == "paid"
        assert (await session.scalars(select(SalesOrder.state))).one() == "picked_up"


async def test_an_unpaid_win_expires_with_its_order(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    owners: dict[uuid.UUID, dict[str, str]] = {}
    members = [await _verified_member(runtime, shop, n, owners) for n in range(1, 4)]
    await _drawn_lottery(client, runtime, shop, winners=2, entrants=members)
    await _run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        orders = list(await session.scalars(select(SalesOrder)))
        wins = list(await session.scalars(select(LotteryWin)))
    assert len(orders) == len(wins) == 2
    assert {o.source_ref for o in orders} == {str(w.id) for w in wins}

    # One winner starts paying in time; the provider's notification arrives after the deadline.
    late_order = orders[0]
    started = await client.post(
        f"/api/v1/consumer/sales/orders/{late_order.id}/payments", headers=owners[late_order.consumer_id]
    )
    assert started.status_code == 201, started.text
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        payment = await payments.get_payment(session, uuid.UUID(started.json()["payment_id"]))
        body, signature = payments.SandboxPaymentProvider(runtime.crypto, shop.brand.id).notification_for(payment)

    # Sales expires orders by the minute of their deadline: a little after the deadline both are done.
    clock.advance(24 * 3600 + 2 * 60)
    await _run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert sorted(await session.scalars(select(SalesOrder.state))) == ["expired", "expired"]
        assert sorted(await session.scalars(select(LotteryWin.status))) == ["forfeited", "forfeited"]
    late = await client.post(
        f"/api/v1/public/{shop.brand.tenant.slug}/sales/payments/sandbox/notify",
        content=body,
        headers={"content-type": "application/json", payments.SIGNATURE_HEADER: signature},
    )
    assert late.status_code == 200, late.text
    assert (late.json()["result"], late.json()["order_state"]) == ("refunded", "expired")
    async with runtime.db.unit_of_work(tenant_id=shop.brand.id) as session:
        assert sorted(await session.scalars(select(LotteryWin.status))) == ["forfeited", "forfeited"]


async def test_a_lottery_store_names_a_real_channel_store(client: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_shop(client, runtime)
    missing = uuid.uuid4()
    refused = await client.post(
        "/api/v1/lottery/stores",
        json={"code": "X1", "name": "无此店", "latitude": 30.0, "longitude": 120.0, "channel_store_id": str(missing)},
        headers=shop.admin,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["data"]["field"] == "channel_store_id"
    assert str(missing) in refused.json()["detail"]
    listed = (await client.get("/api/v1/lottery/stores", headers=shop.admin)).json()
    assert listed == []
    linked = await _lottery_store(client, shop, "BJ01", shop.store_id)
    assert linked["channel_store_id"] == str(shop.store_id)
    # A store of another brand is not this brand's channel store.
    other = await make_shop(client, runtime)
    cross = await client.post(
        "/api/v1/lottery/stores",
        json={
            "code": "X2",
            "name": "别家店",
            "latitude": 30.0,
            "longitude": 120.0,
            "channel_store_id": str(other.store_id),
        },
        headers=shop.admin,
    )
    assert cross.status_code == 422, cross.text
