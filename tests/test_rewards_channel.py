"""Rewards through the real producers: channel scans (a pallet received by a dealer pays every bottle
once, whatever concurrent duplicate scans) and a diversion penalty deducted from the dealer's wallet
through DiversionPenalized — on both tiers, books recomputed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from tests.channel_scan_world import World, make_world, scan
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import balance, make_pool, make_rule
from tests.test_authenticity_scan import SHANGHAI, settle
from zhongtai.channel.events import DiversionPenalized
from zhongtai.codes import service as codes_service
from zhongtai.codes.models import Code, CodeBatch
from zhongtai.codes.rules import pin_for
from zhongtai.core import domain_events
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


async def _pins(runtime: Runtime, world: World) -> dict[str, str]:
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        batch = await session.scalar(
            select(CodeBatch).where(CodeBatch.id == uuid.UUID(world.line.batches["item"]["id"]))
        )
        assert batch is not None
        key = await codes_service.pin_key(session, runtime.crypto, int(batch.pin_key_version or 0))
    return {serial: pin_for(key, serial) for serial in world.items}


async def test_one_consumer_open_pays_consumer_store_guide_and_dealer(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await make_world(client, runtime)
    brand_id = world.line.brand.id
    pool = await make_pool(runtime, brand_id, funded=100_000)
    for role, amount in (("consumer", 288), ("store", 100), ("guide", 50), ("dealer", 30)):
        await make_rule(runtime, brand_id, pool, role=role, amount_fen=amount)
    case, sold, shelved, in_transit = world.cases[0], world.items[0], world.items[1], world.items[12]
    await scan(client, world, "dealer1", "dealer_receive", [case, world.cases[2]])
    await scan(client, world, "dealer1", "ship", [case, world.cases[2]], to_store_id=world.ids["s1"]["id"])
    await scan(client, world, "store1", "store_receive", [case])
    await scan(client, world, "guide1", "sale", [sold])
    pins = await _pins(runtime, world)
    for serial in (sold, shelved, in_transit):
        answer = await client.post(
            "/api/v1/authenticity/verify", json={"code": serial, "pin": pins[serial], **SHANGHAI}
        )
        assert answer.json()["verdict"] == "genuine", answer.text
    again = await client.post("/api/v1/authenticity/verify", json={"code": sold, "pin": pins[sold], **SHANGHAI})
    assert again.json()["verdict"] == "verified_before"
    await settle(runtime)

    async with runtime.db.unit_of_work(tenant_id=brand_id) as session:
        rows = (
            await session.execute(
                select(Code.serial, RewardGrant.role, RewardGrant.party, RewardGrant.amount_fen, RewardGrant.status)
                .join(Code, Code.id == RewardGrant.code_id)
                .where(RewardGrant.event_kind == "consumer_open")
            )
        ).all()
    got: dict[str, dict[str, tuple[str, int, str]]] = {}
    for serial, role, party, amount, status in rows:
        got.setdefault(serial, {})[role] = (party.split(":")[0], int(amount), status)
    d1, s1, guide = world.ids["d1"]["id"], world.ids["s1"]["id"], world.ids["guide1"]
    paid = {"consumer": ("device", 288, "paid"), "store": ("store", 100, "paid"), "dealer": ("dealer", 30, "paid")}
    # sold by the guide: all four; on the shelf: no guide; shipped but not yet received: the dealer only
    assert got == {
        sold: {**paid, "guide": ("guide", 50, "paid")},
        shelved: paid,
        in_transit: {"consumer": paid["consumer"], "dealer": paid["dealer"]},
    }
    [guide_party] = {party for _, role, party, _, _ in rows if role == "guide"}
    assert guide_party == f"guide:{guide['guide_id']}"
    assert await balance(runtime, brand_id, f"wallet:store:{s1}") == 200
    assert await balance(runtime, brand_id, f"wallet:dealer:{d1}") == 90
    assert await balance(runtime, brand_id, f"wallet:{guide_party}") == 50
    assert await balance(runtime, brand_id, service.pool_key(pool.id)) == 100_000 - 3 * 288 - 200 - 90 - 50
    await assert_books_balance(runtime, brand_id)
