"""Flash sales on both tiers: no oversell under real concurrency, the per-member limit race,
idempotent retries, the sold-out flag, eligibility and rate-limit refusals, expiry giving stock back
exactly once, and the persister writing every accepted buy exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import pytest
from sqlalchemy import select

from tests.factories import bearer, make_brand, make_token
from tests.flashsale_factories import Sale, load_sale, make_sale, open_limits, sale_pass
from tests.members_factories import adult_id, make_consumer, resident_id, verify_consumer
from zhongtai.core import clock, jobs
from zhongtai.core.runtime import Runtime
from zhongtai.flashsale import fastpath, service
from zhongtai.flashsale.fastpath import state_of
from zhongtai.flashsale.models import PURCHASE_EXPIRED, PURCHASE_ORDERED, FlashSalePurchase
from zhongtai.flashsale.persister import Persister, QueuedPersister
from zhongtai.members import service as members_service
from zhongtai.sales import service as sales
from zhongtai.sales.models import SalesOrder


async def persist_all(runtime: Runtime) -> int:
    """Run a persister until every accepted buy is an order: from the streams (Redis tier) or from the
    purchases the embedded gate queued."""
    persister: Persister | QueuedPersister
    if runtime.redis is None:
        persister = QueuedPersister(runtime.db)
    else:
        persister = Persister(runtime.db, runtime.redis, runtime.settings.redis_prefix, block_ms=1, claim_idle_ms=0)
    total = 0
    while written := await persister.run_once():
        total += written
    return total


async def purchases(runtime: Runtime, sale: Sale) -> list[FlashSalePurchase]:
    async with runtime.db.unit_of_work(tenant_id=sale.brand.id) as session:
        rows = await session.scalars(select(FlashSalePurchase).where(FlashSalePurchase.sale_id == sale.id))
        return list(rows)


async def orders(runtime: Runtime, sale: Sale) -> list[SalesOrder]:
    async with runtime.db.unit_of_work(tenant_id=sale.brand.id) as session:
        return list(await session.scalars(select(SalesOrder).where(SalesOrder.source == "flashsale")))


async def stock_left(runtime: Runtime, sale: Sale) -> int:
    config = await state_of(runtime).sale(sale.id)
    assert config is not None
    return await state_of(runtime).gate.stock_left(config)


async def buy(
    client: httpx.AsyncClient, sale: Sale, token: str, *, key: str | None = None, quantity: int | None = None
) -> httpx.Response:
    headers = bearer(token)
    if key is not None:
        headers["idempotency-key"] = key
    body = {"quantity": quantity} if quantity is not None else None
    return await client.post(sale.buy_url, headers=headers, json=body)


async def test_no_oversell_with_many_parallel_buyers(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=25)
    tokens = [sale_pass(runtime, sale) for _ in range(300)]
    answers = await asyncio.gather(*(buy(client, sale, token) for token in tokens))
    statuses = [a.status_code for a in answers]
    assert statuses.count(202) == 25
    assert statuses.count(409) == 275
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"sold_out"}
    assert await stock_left(runtime, sale) == 0
    accepted = {a.json()["reference"] for a in answers if a.status_code == 202}
    assert len(accepted) == 25
    await persist_all(runtime)
    rows = await purchases(runtime, sale)
    assert sorted(r.reference for r in rows) == sorted(accepted)
    assert {(r.quantity, r.unit_price_fen, r.status) for r in rows} == {(1, 149_900, PURCHASE_ORDERED)}
    made = await orders(runtime, sale)
    assert sorted(o.source_ref for o in made) == sorted(accepted)
    assert {(o.state, o.amount_fen, o.quantity) for o in made} == {("pending_payment", 149_900, 1)}
    if runtime.redis is not None:  # the stream holds exactly the accepted buys
        stream = state_of(runtime).gate.keys(sale.id).stream  # type: ignore[attr-defined]
        assert await runtime.redis.xlen(stream) == 25


async def test_one_member_racing_gets_at_most_the_limit(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=50, per_member_limit=2)
    token = sale_pass(runtime, sale)
    answers = await asyncio.gather(*(buy(client, sale, token) for _ in range(40)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 2 + [409] * 38
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"limit_reached"}
    assert await stock_left(runtime, sale) == 48
    two_more = await buy(client, sale, sale_pass(runtime, sale), quantity=2)
    assert two_more.status_code == 202
    over = await buy(client, sale, sale_pass(runtime, sale), quantity=3)
    assert (over.status_code, over.json()["data"]["field"]) == (422, "quantity")
    await persist_all(runtime)
    assert sorted(r.quantity for r in await purchases(runtime, sale)) == [1, 1, 2]


async def test_retries_with_one_idempotency_key_buy_once(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=5, per_member_limit=3)
    token = sale_pass(runtime, sale)
    first = await buy(client, sale, token, key="order-1")
    assert first.status_code == 202, first.text
    assert first.json()["replayed"] is False
    clock.advance(90)  # a retry later still answers the original order's payment deadline
    retries = await asyncio.gather(*(buy(client, sale, token, key="order-1") for _ in range(10)))
    assert {(r.status_code, r.json()["reference"], r.json()["replayed"], r.json()["pay_by"]) for r in retries} == {
        (202, first.json()["reference"], True, first.json()["pay_by"])
    }
    assert first.json()["pay_by"] is not None
    assert await stock_left(runtime, sale) == 4
    # The same key is the member's own: another member's "order-1" is another buy.
    other = await buy(client, sale, sale_pass(runtime, sale), key="order-1")
    assert other.status_code == 202
    assert other.json()["reference"] != first.json()["reference"]
    bad = await buy(client, sale, token, key="has space")
    assert (bad.status_code, bad.json()["data"]["field"]) == (422, "Idempotency-Key")
    await persist_all(runtime)
    rows = await purchases(runtime, sale)
    assert sorted((r.idempotency_key or "") for r in rows) == ["order-1", "order-1"]
    assert await stock_left(runtime, sale) == 3


async def test_sold_out_is_answered_without_the_gate(
    runtime: Runtime, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_limits(runtime)
    monkeypatch.setattr(fastpath, "SOLD_OUT_FLAG_SECONDS", 3600.0)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=2)
    for _ in range(2):
        assert (await buy(client, sale, sale_pass(runtime, sale))).status_code == 202
    state = state_of(runtime)
    calls = 0
    real_buy = state.gate.buy

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await real_buy(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(state.gate, "buy", counted)
    answers = await asyncio.gather(*(buy(client, sale, sale_pass(runtime, sale)) for _ in range(20)))
    assert {(a.status_code, a.json()["error"]) for a in answers} == {(409, "sold_out")}
    assert calls == 0
    # A retry with an Idempotency-Key still reaches the gate, which knows the earlier answer.
    assert (await buy(client, sale, sale_pass(runtime, sale), key="k1")).json()["error"] == "sold_out"
    assert calls == 1
    assert state.totals[sale.id]["sold_out"] == 21


async def test_pass_requires_a_verified_adult(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=5, requires_verification=True)
    adult, adult_token = await make_consumer(runtime, brand)
    await verify_consumer(runtime, brand, adult.id, adult_id(1))
    minor, minor_token = await make_consumer(runtime, brand)
    await verify_consumer(runtime, brand, minor.id, resident_id(date(members_service.today().year - 17, 1, 1), 2))
    _, unverified_token = await make_consumer(runtime, brand)
    pass_url = f"/api/v1/consumer/flashsale/sales/{sale.id}/pass"

    refused = await client.post(pass_url, headers=bearer(unverified_token))
    assert (refused.status_code, refused.json()["error"]) == (403, "not_verified")
    refused = await client.post(pass_url, headers=bearer(minor_token))
    assert (refused.status_code, refused.json()["error"]) == (403, "under_age")
    staff = await client.post(pass_url, headers=bearer(await make_token(runtime, brand)))
    assert staff.status_code == 403
    issued = await client.post(pass_url, headers=bearer(adult_token))
    assert issued.status_code == 200, issued.text
    bought = await buy(client, sale, issued.json()["sale_pass"])
    assert bought.status_code == 202, bought.text
    await persist_all(runtime)
    assert [r.consumer_id for r in await purchases(runtime, sale)] == [adult.id]

    # No pass, the consumer's own token, a forged pass, a pass of another sale: all refused.
    other = await make_sale(runtime, brand, stock=5)
    genuine = sale_pass(runtime, other)
    forged = genuine[:-3] + ("AAA" if genuine[-3:] != "AAA" else "BBB")
    for token in ("", adult_token, forged, issued.json()["sale_pass"]):
        answer = await client.post(other.buy_url, headers=bearer(token) if token else {})
        assert (answer.status_code, answer.json()["error"]) == (401, "pass_invalid"), token
    # Another brand's member cannot get a pass for this brand's sale.
    stranger_brand = await make_brand(runtime)
    _, stranger = await make_consumer(runtime, stranger_brand)
    foreign = await client.post(pass_url, headers=bearer(stranger))
    assert foreign.status_code == 404


async def test_sale_window_and_operator_end(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    staff = bearer(await make_token(runtime, brand))
    sale = await make_sale(runtime, brand, stock=5, starts_in_seconds=60)
    early = await buy(client, sale, sale_pass(runtime, sale))
    assert (early.status_code, early.json()["error"]) == (409, "sale_not_open")
    clock.advance(61)
    assert (await buy(client, sale, sale_pass(runtime, sale))).status_code == 202
    ended = await client.post(f"/api/v1/flashsale/sales/{sale.id}/end", headers=staff)
    assert (ended.status_code, ended.json()["status"]) == (200, "ended")
    late = await buy(client, sale, sale_pass(runtime, sale))
    assert (late.status_code, late.json()["error"]) == (409, "sale_not_open")
    assert (await load_sale(runtime, sale)).stock_left == 4


async def test_rate_limits_per_member_and_per_address(runtime: Runtime, client: httpx.AsyncClient) -> None:
    runtime.settings.flashsale_requests_per_minute_per_member = 3
    runtime.settings.flashsale_requests_per_second_per_address = 8
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=100, per_member_limit=100)
    token = sale_pass(runtime, sale)
    answers = [await buy(client, sale, token) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert int(answers[3].headers["retry-after"]) >= 1
    others = [await buy(client, sale, sale_pass(runtime, sale)) for _ in range(6)]
    assert 429 in [a.status_code for a in others]
    assert others[-1].json()["error"] == "rate_limited"


async def test_expiry_returns_stock_and_the_slot_once(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=1)
    member = uuid.uuid4()
    first = await buy(client, sale, sale_pass(runtime, sale, member))
    assert first.status_code == 202
    assert (await buy(client, sale, sale_pass(runtime, sale))).json()["error"] == "sold_out"
    await persist_all(runtime)
    reference = first.json()["reference"]
    worker = jobs.Worker(runtime.db, name="test")

    async def run_jobs() -> None:
        while await worker.run_once():
            pass

    await run_jobs()  # nothing is due yet
    assert [o.state for o in await orders(runtime, sale)] == ["pending_payment"]
    clock.advance(15 * 60 + 61)  # past the payment deadline and the expiry job's minute
    await run_jobs()  # sales expires the order and announces it; flash sales gives the stock back
    assert [(o.source_ref, o.state) for o in await orders(runtime, sale)] == [(reference, "expired")]
    assert [r.status for r in await purchases(runtime, sale)] == [PURCHASE_EXPIRED]
    assert await stock_left(runtime, sale) == 1

    # Announced again (a retried publisher): nothing more comes back.
    via_redis = runtime.redis is not None
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.do_return_stock(session, reference, via_redis=via_redis) is False
        assert await sales.expire_due(session) == 0
    await run_jobs()
    assert await stock_left(runtime, sale) == 1

    # The slot is free again: the same member buys the returned unit (once the sold-out flag is stale).
    again = await buy(client, sale, sale_pass(runtime, sale, member))
    assert again.status_code == 202, again.text
    assert await stock_left(runtime, sale) == 0


async def test_parallel_expiry_returns_stock_once(runtime: Runtime, client: httpx.AsyncClient) -> None:
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=3)
    first = await buy(client, sale, sale_pass(runtime, sale))
    await persist_all(runtime)
    via_redis = runtime.redis is not None

    async def expire() -> bool:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await service.do_return_stock(session, first.json()["reference"], via_redis=via_redis)

    results = await asyncio.gather(*(expire() for _ in range(6)))
    assert results.count(True) == 1
    worker = jobs.Worker(runtime.db, name="test")
    while await worker.run_once():
        pass
    assert await stock_left(runtime, sale) == 3
