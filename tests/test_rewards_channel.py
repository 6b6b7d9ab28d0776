"""Rewards through the real producers: channel scans (a pallet received by a dealer pays every bottle
once, whatever concurrent duplicate scans) and a diversion penalty deducted from the dealer's wallet
through DiversionPenalized — on both tiers, books recomputed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from tests.channel_scan_world import make_world, scan
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import balance, make_pool, make_rule
from zhongtai.core import domain_events
from zhongtai.core.domain_events import DiversionPenalized
from zhongtai.core.runtime import Runtime
from zhongtai.rewards import service
from zhongtai.rewards.models import RewardGrant


async def test_a_dealer_receiving_a_pallet_is_paid_per_bottle_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    brand_id = world.line.brand.id
    pool = await make_pool(runtime, brand_id, funded=100_000)
    await make_rule(runtime, brand_id, pool, kind="dealer_receive", role="dealer", amount_fen=100)
    pallet = world.pallets[0]

    answers = await asyncio.gather(
        *(scan(client, world, "dealer1", "dealer_receive", [pallet], key=f"dup-{i % 2}") for i in range(6))
    )
    assert len({a["scan_id"] for a in answers}) == 1  # one scan, the others replay it
    for answer in answers:
        paid = [r["results"]["rewards"] for r in answer["rewards"]]
        assert len(paid) == 12
        assert {(g["role"], g["status"], g["amount_fen"]) for p in paid for g in p} == {("dealer", "paid", 100)}
    dealer_id = world.ids["d1"]["id"]
    assert await balance(runtime, brand_id, f"wallet:dealer:{dealer_id}") == 1_200
    assert await balance(runtime, brand_id, service.pool_key(pool.id)) == 100_000 - 1_200
    async with runtime.db.unit_of_work(tenant_id=brand_id) as session:
        grants = await session.scalar(select(func.count()).select_from(RewardGrant))
    assert grants == 12
    await assert_books_balance(runtime, brand_id)

    # an operator penalises the dealer for a confirmed diversion: the wallet pays, once per alert
    alert_id = uuid.uuid4()
    event = DiversionPenalized(
        tenant_id=brand_id,
        alert_id=alert_id,
        dealer_id=uuid.UUID(dealer_id),
        amount=500,
        reason="窜货到北京",
        occurred_at=datetime.now(UTC),
        source_ref=f"diversion-penalty:{alert_id}",
    )
    for _ in range(2):
        async with runtime.db.unit_of_work(tenant_id=brand_id) as session:
            answer = (await domain_events.publish(session, event))["rewards"]
        assert (answer["deducted_fen"], answer["shortfall_fen"]) == (500, 0)
    assert await balance(runtime, brand_id, f"wallet:dealer:{dealer_id}") == 700
    assert await balance(runtime, brand_id, service.PENALTIES_KEY) == 500
    await assert_books_balance(runtime, brand_id)
