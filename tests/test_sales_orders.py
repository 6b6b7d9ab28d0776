"""Orders on both tiers: the state machine (every pair of states), bulk creation idempotent under
concurrent duplicates, expiry announcing `OrderExpired` exactly once, the expiry job, the API."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.factories import bearer, make_brand, make_token
from tests.members_factories import make_consumer
from tests.sales_factories import draft, make_order
from zhongtai.core import clock, domain_events, jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.models import OutboxJob
from zhongtai.core.runtime import Runtime
from zhongtai.sales import rules, service
from zhongtai.sales.errors import BadOrderDraft, IllegalTransition, OrderNotFound
from zhongtai.sales.events import OrderExpired
from zhongtai.sales.models import SalesOrder, SalesOrderEvent

LEGAL = {
    ("pending_payment", "paid"),
    ("pending_payment", "expired"),
    ("paid", "ready_for_pickup"),
    ("paid", "refunded"),
    ("ready_for_pickup", "picked_up"),
    ("ready_for_pickup", "refunded"),
}


def test_the_rules_allow_exactly_the_documented_transitions() -> None:
    allowed = {(a, b) for a, b in itertools.product(rules.STATES, rules.STATES) if rules.is_legal(a, b)}
    assert allowed == LEGAL
    assert IllegalTransition.status_code == 409


def test_order_numbers_are_dated_and_distinct() -> None:
    now = utcnow()
    numbers = {rules.new_order_no(now) for _ in range(10_000)}
    assert len(numbers) == 10_000
    assert all(len(n) == 20 and n.startswith(f"{now:%Y%m%d}") for n in numbers)


async def test_every_transition_on_the_database(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pairs = list(itertools.product(rules.STATES, rules.STATES))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.create_orders_bulk(session, brand.id, [draft(f"{a}>{b}") for a, b in pairs]) == 36
        for a, b in pairs:
            await session.execute(update(SalesOrder).where(SalesOrder.source_ref == f"{a}>{b}").values(state=a))
    outcomes: dict[tuple[str, str], str] = {}
    for a, b in pairs:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            order = await service.get_order_by_source(session, "flashsale", f"{a}>{b}")
            assert order is not None
            try:
                await service.do_transition(session, order, b, actor="test")
                outcomes[(a, b)] = order.state
            except IllegalTransition as refused:
                outcomes[(a, b)] = f"refused {refused.data['state']}>{refused.data['target']} {order.state}"
    assert {pair for pair, got in outcomes.items() if not got.startswith("refused")} == LEGAL
    assert all(outcomes[(a, b)] == f"refused {a}>{b} {a}" for a, b in pairs if (a, b) not in LEGAL)
    assert all(outcomes[pair] == pair[1] for pair in LEGAL)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for a, b in LEGAL:
            order = await service.get_order_by_source(session, "flashsale", f"{a}>{b}")
            assert order is not None
            assert getattr(order, rules.STAMP_OF[b]) is not None
            assert [(e.from_state, e.to_state, e.actor) for e in await service.history(session, order.id)] == [
                (a, b, "test")
            ]
        assert await session.scalar(select(func.count()).select_from(SalesOrderEvent)) == len(LEGAL)


async def test_racing_transitions_let_exactly_one_win(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    order = await make_order(runtime, brand, "race")

    async def move(target: str) -> str:
        try:
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                mine = await service.get_order(session, order.id)
                await asyncio.sleep(0.01)  # both read pending_payment before either writes
                await service.do_transition(session, mine, target)
                return target
        except IllegalTransition:
            return "refused"

    results = await asyncio.gather(move("paid"), move("expired"), move("paid"))
    assert results.count("refused") == 2
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        final = await service.get_order(session, order.id)
        assert final.state in ("paid", "expired")
        assert final.state in results
        assert len(await service.history(session, order.id)) == 1


async def test_bulk_creation_is_idempotent_and_counts_only_new_orders(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    drafts = [draft(f"ref-{i}", quantity=1 + i % 3, unit_price_fen=1000) for i in range(1200)]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.create_orders_bulk(session, brand.id, drafts[:700]) == 700
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.create_orders_bulk(session, brand.id, drafts) == 500
        assert await service.create_orders_bulk(session, brand.id, drafts) == 0
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = (await session.execute(select(SalesOrder.source_ref, SalesOrder.amount_fen))).all()
        assert len(rows) == 1200
        assert dict(rows) == {f"ref-{i}": 1000 * (1 + i % 3) for i in range(1200)}
        numbers = await session.scalar(select(func.count(func.distinct(SalesOrder.order_no))))
        assert numbers == 1200
        # One expiry job per minute of deadlines, however many batches.
        expiry_jobs = await session.scalar(
            select(func.count()).select_from(OutboxJob).where(OutboxJob.topic == service.EXPIRE_TOPIC)
        )
        assert expiry_jobs in (1, 2)  # the drafts were made within a second, possibly across a minute


async def test_concurrent_duplicate_bulk_inserts_create_each_order_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    drafts = [draft(f"dup-{i}") for i in range(300)]

    async def insert(part: list[Any]) -> int:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await service.create_orders_bulk(session, brand.id, part)

    # Eight workers, overlapping slices of the same references, all at once.
    parts = [drafts[i * 25 : i * 25 + 150] for i in range(8)] + [drafts[::-1]]
    created = await asyncio.gather(*(insert(p) for p in parts))
    assert sum(created) == 300
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(SalesOrder)) == 300


async def test_same_reference_in_two_tenants_is_two_orders(runtime: Runtime) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    one = await make_order(runtime, first, "same")
    two = await make_order(runtime, second, "same")
    assert one.id != two.id
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        assert (await service.list_orders(session))[1] == 1
        with pytest.raises(OrderNotFound):
            await service.get_order(session, two.id)
        with pytest.raises(CrossTenantAccess):
            await service.create_orders_bulk(session, second.id, [draft("sneak")])


async def test_bad_drafts_write_nothing(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    good = draft("good")
    bad = [
        draft("q", quantity=0),
        draft("p", unit_price_fen=-1),
        draft("d", pay_minutes=-1),
        draft("s", source="somewhere"),
        draft(""),
    ]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        with pytest.raises(BadOrderDraft) as refused:
            await service.create_orders_bulk(session, brand.id, [good, *bad])
    assert refused.value.status_code == 422
    assert [e["index"] for e in refused.value.data["errors"]] == [1, 2, 3, 4, 5]
    assert "quantity" in refused.value.message
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(SalesOrder)) == 0


async def test_create_order_returns_the_existing_order_on_retry(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    first = await make_order(runtime, brand, "lottery-entry-1", source="lottery", quantity=2, unit_price_fen=5)
    again = await make_order(runtime, brand, "lottery-entry-1", source="lottery", quantity=9, unit_price_fen=5)
    assert (again.id, again.order_no, again.quantity, again.amount_fen) == (first.id, first.order_no, 2, 10)


@pytest.fixture
def expired_events() -> Any:
    seen: list[OrderExpired] = []

    async def record(session: Any, event: OrderExpired) -> None:
        seen.append(event)

    domain_events.subscribe(OrderExpired, "tests.sales.record", record)
    yield seen
    domain_events.unsubscribe(OrderExpired, "tests.sales.record")


async def test_expiry_announces_each_order_exactly_once(runtime: Runtime, expired_events: list[OrderExpired]) -> None:
    brand = await make_brand(runtime)
    consumer = uuid.uuid4()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await service.create_orders_bulk(
            session,
            brand.id,
            [draft(f"e-{i}", consumer_id=consumer, quantity=2, pay_minutes=10 if i < 40 else 60) for i in range(50)],
        )
    paid = await make_order(runtime, brand, "paid-in-time", pay_minutes=10)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await service.do_transition(session, await service.get_order(session, paid.id), "paid")
    now = utcnow() + timedelta(minutes=11)

    async def sweep() -> int:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await service.expire_due(session, now, limit=7)

    counts = []
    for _ in range(8):  # concurrent sweeps, several rounds of small batches
        counts.extend(await asyncio.gather(sweep(), sweep(), sweep()))
    assert sum(counts) == 40
    assert sorted(e.source_ref for e in expired_events) == sorted(f"e-{i}" for i in range(40))
    assert len({e.order_id for e in expired_events}) == 40
    assert {(e.tenant_id, e.source, e.quantity, e.consumer_id) for e in expired_events} == {
        (brand.id, "flashsale", 2, consumer)
    }
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        states = dict((await session.execute(select(SalesOrder.state, func.count()).group_by(SalesOrder.state))).all())
        assert states == {"expired": 40, "pending_payment": 10, "paid": 1}
        assert (
            await session.scalar(
                select(func.count()).select_from(SalesOrderEvent).where(SalesOrderEvent.to_state == "expired")
            )
            == 40
        )
        assert await service.expire_due(session, now) == 0
    assert len(expired_events) == 40


async def test_a_failing_subscriber_rolls_the_expiry_back(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await make_order(runtime, brand, "x", pay_minutes=1)

    async def boom(session: Any, event: OrderExpired) -> None:
        raise RuntimeError("stock service down")

    domain_events.subscribe(OrderExpired, "tests.sales.boom", boom)
    try:
        with pytest.raises(RuntimeError):
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await service.expire_due(session, utcnow() + timedelta(minutes=2))
    finally:
        domain_events.unsubscribe(OrderExpired, "tests.sales.boom")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        order = await service.get_order_by_source(session, "flashsale", "x")
        assert order is not None
        assert order.state == "pending_payment"


async def test_the_expiry_job_expires_orders_after_their_deadline(
    runtime: Runtime, expired_events: list[OrderExpired]
) -> None:
    brand = await make_brand(runtime)
    early = await make_order(runtime, brand, "early", pay_minutes=2)
    late = await make_order(runtime, brand, "late", pay_minutes=30)
    worker = jobs.Worker(runtime.db, name="sales-test")
    assert await worker.run_once() == 0  # nothing due yet
    try:
        clock.advance(3 * 60 + 5)
        while await worker.run_once():
            pass
        assert [e.order_id for e in expired_events] == [early.id]
        clock.advance(30 * 60)
        while await worker.run_once():
            pass
        assert [e.order_id for e in expired_events] == [early.id, late.id]
    finally:
        clock.reset()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        statuses = (
            await session.execute(select(OutboxJob.status).where(OutboxJob.topic == service.EXPIRE_TOPIC))
        ).all()
        assert {s for (s,) in statuses} == {"done"}


async def test_staff_and_consumers_read_orders_through_the_api(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, other = await make_brand(runtime), await make_brand(runtime)
    consumer, consumer_token = await make_consumer(runtime, brand)
    stranger, stranger_token = await make_consumer(runtime, brand)
    mine = await make_order(runtime, brand, "mine", consumer_id=consumer.id, quantity=2, unit_price_fen=100)
    theirs = await make_order(runtime, brand, "theirs", consumer_id=stranger.id)
    token = await make_token(runtime, brand, ["sales.read"])
    listing = await client.get("/api/v1/sales/orders?state=pending_payment", headers=bearer(token))
    assert listing.status_code == 200, listing.text
    assert {o["source_ref"] for o in listing.json()["items"]} == {"mine", "theirs"}
    detail = await client.get(f"/api/v1/sales/orders/{mine.id}", headers=bearer(token))
    assert detail.json()["amount_fen"] == 200
    assert detail.json()["history"] == []
    bad_state = await client.get("/api/v1/sales/orders?state=lost", headers=bearer(token))
    assert bad_state.status_code == 422
    assert "pending_payment" in bad_state.json()["detail"]

    no_permission = await make_token(runtime, brand, ["catalog.read"])
    refused = await client.get("/api/v1/sales/orders", headers=bearer(no_permission))
    assert refused.status_code == 403
    foreign = await make_token(runtime, other, ["sales.read"])
    assert (await client.get(f"/api/v1/sales/orders/{mine.id}", headers=bearer(foreign))).status_code == 404
    assert (await client.get("/api/v1/sales/orders", headers=bearer(foreign))).json()["total"] == 0

    own = await client.get("/api/v1/consumer/sales/orders", headers=bearer(consumer_token))
    assert [o["id"] for o in own.json()["items"]] == [str(mine.id)]
    assert (
        await client.get(f"/api/v1/consumer/sales/orders/{theirs.id}", headers=bearer(consumer_token))
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/consumer/sales/orders/{theirs.id}", headers=bearer(stranger_token))
    ).status_code == 200
    assert (await client.get("/api/v1/sales/orders", headers=bearer(consumer_token))).status_code == 403
