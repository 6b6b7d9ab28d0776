"""Rewards granted from ItemEvents: several parties per event, exactly once per (code, event, role)
under retries and concurrent duplicates, pools that never go negative (a pool running out mid-burst),
daily and per-partner caps, product-specific rules, a device's red packet claimed after sign-in —
on both tiers, with the books recomputed after every test that moves money."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from tests.factories import make_brand
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import balance, item_event, make_pool, make_rule, publish
from zhongtai.core.runtime import Runtime
from zhongtai.ledger.models import LedgerEntry
from zhongtai.rewards import grants, service
from zhongtai.rewards.models import PoolDay, RewardGrant


async def _grants(runtime: Runtime, tenant_id: uuid.UUID) -> list[RewardGrant]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(RewardGrant).order_by(RewardGrant.code_id, RewardGrant.role)))


async def _four_party(
    runtime: Runtime, tenant_id: uuid.UUID, funded: int = 100_000
) -> tuple[object, dict[str, uuid.UUID]]:
    pool = await make_pool(runtime, tenant_id, funded=funded)
    for role, amount in (("consumer", 88), ("store", 50), ("guide", 30), ("dealer", 20)):
        await make_rule(runtime, tenant_id, pool, role=role, amount_fen=amount)
    ids = {"consumer": uuid.uuid4(), "store": uuid.uuid4(), "guide": uuid.uuid4(), "dealer": uuid.uuid4()}
    return pool, ids


def _open(tenant_id: uuid.UUID, code_id: int, ids: dict[str, uuid.UUID]) -> object:
    return item_event(
        tenant_id,
        code_id,
        consumer_id=ids["consumer"],
        store_id=ids["store"],
        guide_id=ids["guide"],
        dealer_id=ids["dealer"],
    )


async def test_one_open_scan_pays_four_parties_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool, ids = await _four_party(runtime, brand.id, funded=10_000)
    event = _open(brand.id, 1001, ids)
    first = await publish(runtime, event)  # type: ignore[arg-type]
    assert [(g["role"], g["amount_fen"], g["status"]) for g in first] == [
        ("consumer", 88, "paid"),
        ("store", 50, "paid"),
        ("guide", 30, "paid"),
        ("dealer", 20, "paid"),
    ]
    again = await publish(runtime, event)  # type: ignore[arg-type]
    assert again == first
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 10_000 - 188  # type: ignore[attr-defined]
    for role, amount in (("consumer", 88), ("store", 50), ("guide", 30), ("dealer", 20)):
        assert await balance(runtime, brand.id, f"wallet:{role}:{ids[role]}") == amount
    rows = await _grants(runtime, brand.id)
    assert len(rows) == 4
    assert len({r.entry_id for r in rows}) == 1
    assert rows[0].entry_id is not None
    report = await assert_books_balance(runtime, brand.id)
    assert report.balance_totals == {"CNY": 0}


async def test_no_rule_no_party_other_product_and_product_rule_first(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    assert await publish(runtime, item_event(brand.id, 1, consumer_id=uuid.uuid4())) == []
    pool = await make_pool(runtime, brand.id)
    await make_rule(runtime, brand.id, pool, role="store", amount_fen=10)
    # the rule pays a store; an event without a store pays nobody
    assert await publish(runtime, item_event(brand.id, 2, consumer_id=uuid.uuid4())) == []
    # a rule of another event kind does not apply
    assert await publish(runtime, item_event(brand.id, 3, kind="sale", store_id=uuid.uuid4())) == []
    store = uuid.uuid4()
    assert [g["amount_fen"] for g in await publish(runtime, item_event(brand.id, 4, store_id=store))] == [10]
    await assert_books_balance(runtime, brand.id)


async def test_concurrent_duplicates_pay_each_party_exactly_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool, ids = await _four_party(runtime, brand.id, funded=10_000)
    event = _open(brand.id, 77, ids)
    results = await asyncio.gather(*(publish(runtime, event) for _ in range(12)))  # type: ignore[arg-type]
    assert all(r == results[0] for r in results)
    assert [g["status"] for g in results[0]] == ["paid"] * 4
    rows = await _grants(runtime, brand.id)
    assert [(r.role, r.amount_fen) for r in rows] == [("consumer", 88), ("dealer", 20), ("guide", 30), ("store", 50)]
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 10_000 - 188  # type: ignore[attr-defined]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rewards = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "reward")
        )
    assert rewards == 1
    await assert_books_balance(runtime, brand.id)


async def test_random_packets_draw_from_the_configured_tiers(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=100_000)
    tiers = {"type": "tiers", "tiers": [{"amount_fen": 30, "weight": 8}, {"amount_fen": 888, "weight": 2}]}
    rule = await make_rule(runtime, brand.id, pool, mode="random", distribution=tiers)
    assert rule.expected_fen == (30 * 8 + 888 * 2) / 10
    assert (rule.min_fen, rule.max_fen) == (30, 888)
    amounts = [
        (await publish(runtime, item_event(brand.id, i, consumer_id=uuid.uuid4())))[0]["amount_fen"] for i in range(20)
    ]
    assert set(amounts) <= {30, 888}
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 100_000 - sum(amounts)
    await assert_books_balance(runtime, brand.id)


async def test_a_pool_running_out_mid_burst_pays_exactly_what_fits(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=1_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=100)
    events = [item_event(brand.id, 500 + i, consumer_id=uuid.uuid4()) for i in range(25)]
    results = await asyncio.gather(*(publish(runtime, e) for e in events))
    statuses = [r[0]["status"] for r in results]
    assert statuses.count("paid") == 10
    assert statuses.count("refused") == 15
    assert {r[0]["reason"] for r in results if r[0]["status"] == "refused"} == {"pool_empty"}
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 0
    rows = await _grants(runtime, brand.id)
    assert sum(r.amount_fen for r in rows if r.status == "paid") == 1_000
    assert all(r.entry_id is None for r in rows if r.status == "refused")
    # a refused reward stays refused: publishing again does not pay it after a top-up
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        from tests.factories import system_actor

        await service.do_fund_pool(session, system_actor(brand.id), pool.id, 500, idempotency_key="top-up")
    refused = next(e for e, r in zip(events, results, strict=True) if r[0]["status"] == "refused")
    assert (await publish(runtime, refused))[0]["status"] == "refused"
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 500
    await assert_books_balance(runtime, brand.id)


async def test_an_empty_pool_does_not_stop_the_other_pools_parties(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    empty = await make_pool(runtime, brand.id, funded=150)
    full = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, empty, role="consumer", amount_fen=100)
    await make_rule(runtime, brand.id, full, role="store", amount_fen=40)
    store = uuid.uuid4()
    first = await publish(runtime, item_event(brand.id, 1, consumer_id=uuid.uuid4(), store_id=store))
    second = await publish(runtime, item_event(brand.id, 2, consumer_id=uuid.uuid4(), store_id=store))
    assert [(g["role"], g["status"]) for g in first] == [("consumer", "paid"), ("store", "paid")]
    assert [(g["role"], g["status"], g["reason"]) for g in second] == [
        ("consumer", "refused", "pool_empty"),
        ("store", "paid", ""),
    ]
    assert await balance(runtime, brand.id, f"wallet:store:{store}") == 80
    assert await balance(runtime, brand.id, service.pool_key(empty.id)) == 50
    await assert_books_balance(runtime, brand.id)


async def test_daily_cap_holds_under_concurrency(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=100_000, daily_cap_fen=700)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=100)
    results = await asyncio.gather(
        *(publish(runtime, item_event(brand.id, 900 + i, consumer_id=uuid.uuid4())) for i in range(12))
    )
    reasons = sorted(r[0]["reason"] for r in results)
    assert reasons == [""] * 7 + ["daily_cap"] * 5
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 100_000 - 700
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        day = await session.scalar(select(PoolDay).where(PoolDay.pool_id == pool.id))
    assert day is not None
    assert (day.granted_fen, day.grants) == (700, 7)
    await assert_books_balance(runtime, brand.id)


async def test_per_partner_cap_limits_one_store_not_the_others(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=100_000, per_partner_cap_fen=250)
    await make_rule(runtime, brand.id, pool, kind="store_receive", role="store", amount_fen=100)
    busy, other = uuid.uuid4(), uuid.uuid4()
    results = await asyncio.gather(
        *(publish(runtime, item_event(brand.id, 100 + i, kind="store_receive", store_id=busy)) for i in range(5))
    )
    assert sorted(r[0]["reason"] for r in results) == ["", "", "partner_cap", "partner_cap", "partner_cap"]
    assert (await publish(runtime, item_event(brand.id, 200, kind="store_receive", store_id=other)))[0][
        "status"
    ] == "paid"
    assert await balance(runtime, brand.id, f"wallet:store:{busy}") == 200
    assert await balance(runtime, brand.id, f"wallet:store:{other}") == 100
    await assert_books_balance(runtime, brand.id)


async def test_a_device_packet_is_claimed_once_after_sign_in(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=66)
    device = "d" * 32
    for code in (1, 2):
        granted = await publish(runtime, item_event(brand.id, code, device_hash=device))
        assert granted[0]["party"] == f"device:{device}"
    assert await balance(runtime, brand.id, f"wallet:device:{device}") == 132
    consumer = uuid.uuid4()

    async def claim() -> grants.Claimed:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await grants.do_claim_device_packets(session, consumer, device)

    results = await asyncio.gather(*(claim() for _ in range(4)))
    assert sorted((c.grants, c.amount_fen) for c in results) == [(0, 0), (0, 0), (0, 0), (2, 132)]
    assert await balance(runtime, brand.id, f"wallet:device:{device}") == 0
    assert await balance(runtime, brand.id, f"wallet:consumer:{consumer}") == 132
    await assert_books_balance(runtime, brand.id)


async def test_events_of_another_brand_cannot_be_granted_in_this_brands_session(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    other = await make_brand(runtime)
    import pytest

    from zhongtai.core.errors import CrossTenantAccess

    with pytest.raises(CrossTenantAccess):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await grants.grant_for_event(session, item_event(other.id, 1, consumer_id=uuid.uuid4()))
