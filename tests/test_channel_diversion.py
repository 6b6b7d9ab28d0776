"""Diversion control (防窜货) on both tiers: real coordinates inside and outside a Guangzhou dealer's
territory, a store the dealer does not supply, consumer checks swept from the authenticity records,
the triage workflow with its audit and the penalty event, the per-dealer report's health checks,
permissions and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.channel_scan_world import API, BEIJING, GUANGZHOU, World, make_world, scan
from tests.factories import bearer, make_token
from tests.test_codes_api import run_jobs
from zhongtai.authenticity.models import Scan as ConsumerScan
from zhongtai.channel.diversion import SWEEP_TOPIC
from zhongtai.channel.events import DiversionPenalized
from zhongtai.codes.models import Code
from zhongtai.core import clock, domain_events
from zhongtai.core.models import AuditEvent, OutboxJob
from zhongtai.core.runtime import Runtime

SHANGHAI = (31.2304, 121.4737)
PENALTIES: list[DiversionPenalized] = []


@pytest.fixture
def penalties() -> Iterator[list[DiversionPenalized]]:
    async def handler(_session: Any, event: DiversionPenalized) -> dict[str, Any]:
        PENALTIES.append(event)
        return {"deducted_fen": event.amount}

    PENALTIES.clear()
    domain_events.subscribe(DiversionPenalized, "test-penalty", handler)
    yield PENALTIES
    domain_events.unsubscribe(DiversionPenalized, "test-penalty")


async def _alerts(client: httpx.AsyncClient, world: World, **params: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/diversion/alerts", params=params, headers=world.line.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_store_scans_inside_and_outside_the_territory(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    cases, items = world.cases, world.items
    await scan(client, world, "dealer1", "dealer_receive", [world.pallets[0], cases[2]])
    # Inside: the Guangzhou store receives in Guangzhou.
    await scan(client, world, "dealer1", "ship", [cases[0]], to_store_id=world.ids["s1"]["id"])
    await scan(client, world, "store1", "store_receive", [cases[0]], latitude=GUANGZHOU[0], longitude=GUANGZHOU[1])
    assert await _alerts(client, world) == []

    # The dealer's own store in Beijing receives: outside its territory (the store's address).
    await scan(client, world, "dealer1", "ship", [cases[1]], to_store_id=world.ids["s3"]["id"])
    got = await scan(client, world, "store3", "store_receive", [cases[1]])
    assert "alert" not in str(got), "partners are not told"
    (alert,) = await _alerts(client, world)
    assert (alert["kind"], alert["status"], alert["code"], alert["item_count"]) == (
        "store_outside_territory",
        "open",
        cases[1],
        6,
    )
    assert alert["severity"] == "high", "six bottles is medium, but 1,800 km from the dealer's stores is one more"
    assert alert["dealer_id"] == world.ids["d1"]["id"]
    assert alert["store_id"] == world.ids["s3"]["id"]
    assert alert["place"].startswith("北京市")
    assert alert["province_code"] == "110000"
    assert 1800 < alert["distance_km"] < 2000  # to the Guangzhou store, the only one inside the territory
    evidence = alert["evidence"]
    assert evidence["expected_territory"] == {"region_codes": ["440100"], "regions": ["广东省广州市"], "polygons": 0}
    assert evidence["dealer"]["code"] == "GZ"
    assert evidence["seen"]["source"] == "store address"
    assert evidence["codes"] == [cases[1]]
    assert (alert["actor_kind"], alert["actor"]) == ("store", "store3 (Store S-GZ-BJ)")

    # Selling one of them with the phone in Guangzhou raises nothing; opening the case in Beijing does.
    await scan(client, world, "store3", "case_open", [cases[1]], latitude=BEIJING[0], longitude=BEIJING[1])
    await scan(client, world, "store3", "sale", [items[6]], latitude=GUANGZHOU[0], longitude=GUANGZHOU[1])
    kinds = [(a["kind"], a["evidence"]["step"], a["evidence"]["seen"]["source"]) for a in await _alerts(client, world)]
    assert sorted(kinds) == [
        ("store_outside_territory", "case_open", "browser"),
        ("store_outside_territory", "store_receive", "store address"),
    ]


async def test_a_store_the_dealer_does_not_supply(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s2"]["id"])
    await scan(client, world, "store2", "store_receive", [world.cases[2]], latitude=BEIJING[0], longitude=BEIJING[1])
    (alert,) = await _alerts(client, world, status="open")
    assert (alert["kind"], alert["severity"], alert["store_id"]) == ("foreign_store", "high", world.ids["s2"]["id"])
    assert alert["evidence"]["store"]["supplied_by_dealer"] is False
    assert alert["evidence"]["outside_territory"] is True
    assert alert["dealer_id"] == world.ids["d1"]["id"]  # the dealer the goods came through, not the store's
    assert await _alerts(client, world, kind="consumer_outside_territory") == []
    by_dealer = await _alerts(client, world, dealer_id=world.ids["d2"]["id"])
    assert by_dealer == []


async def _consumer_check(runtime: Runtime, world: World, serial: str, where: tuple[float, float] | None) -> None:
    """A consumer's check as the authenticity module records it."""
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        code = await session.scalar(select(Code).where(Code.serial == serial))
        assert code is not None
        session.add(
            ConsumerScan(
                tenant_id=world.line.brand.id,
                code_id=code.id,
                serial=serial,
                product_id=world.line.product_id,
                kind="pin_ok",
                verdict="genuine",
                latitude=where[0] if where else None,
                longitude=where[1] if where else None,
                city_name="北京市" if where == BEIJING else None,
            )
        )


async def test_consumer_checks_outside_the_territory(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    items = world.items
    await _consumer_check(runtime, world, items[12], BEIJING)  # before any dealer received it: not in channel
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2], world.pallets[0]])
    await _consumer_check(runtime, world, items[13], GUANGZHOU)
    await _consumer_check(runtime, world, items[14], BEIJING)
    await _consumer_check(runtime, world, items[15], None)
    await _consumer_check(runtime, world, items[14], SHANGHAI)  # the same bottle again: one alert per bottle
    swept = await client.post(f"{API}/diversion/sweep", headers=world.line.auth)
    assert swept.json() == {"scans_read": 5}
    (alert,) = await _alerts(client, world)
    assert (alert["kind"], alert["severity"], alert["code"], alert["actor_kind"]) == (
        "consumer_outside_territory",
        "medium",  # low, one level up for being far from the dealer's stores
        items[14],
        "consumer",
    )
    assert alert["evidence"]["custody"]["holder"] == "dealer"
    assert alert["evidence"]["seen"]["source"] == "consumer"
    assert alert["place"].startswith("北京市")
    # Sweeping again reads nothing new and raises nothing twice.
    assert (await client.post(f"{API}/diversion/sweep", headers=world.line.auth)).json() == {"scans_read": 0}
    await _consumer_check(runtime, world, items[0], BEIJING)

    # The outbox sweeps too, and queues its next run.
    await run_jobs(runtime)
    assert {a["code"] for a in await _alerts(client, world)} == {items[14], items[0]}
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        pending = list(
            await session.scalars(
                select(OutboxJob).where(OutboxJob.topic == SWEEP_TOPIC, OutboxJob.status == "pending")
            )
        )
    assert len(pending) == 1
    assert pending[0].available_at > clock.utcnow()


async def test_triage_workflow(
    client: httpx.AsyncClient, runtime: Runtime, penalties: list[DiversionPenalized]
) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2], world.pallets[0]])
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s2"]["id"])
    await scan(client, world, "store2", "store_receive", [world.cases[2]])
    await scan(client, world, "dealer1", "ship", [world.cases[0]], to_store_id=world.ids["s3"]["id"])
    await scan(client, world, "store3", "store_receive", [world.cases[0]])
    foreign, outside = sorted(await _alerts(client, world), key=lambda a: a["kind"])
    path = f"{API}/diversion/alerts"

    async def move(
        alert: dict[str, Any], body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await client.post(f"{path}/{alert['id']}/status", json=body, headers=headers or world.line.auth)

    skipped = await move(foreign, {"status": "penalized", "penalty_amount": 5000})
    assert skipped.status_code == 409
    assert skipped.json()["detail"] == "A open alert can go to confirmed, dismissed, not penalized."
    confirmed = await move(foreign, {"status": "confirmed", "note": "发票核实"})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    no_amount = await move(foreign, {"status": "penalized"})
    assert (no_amount.status_code, no_amount.json()["data"]["field"]) == (422, "penalty_amount")
    assert penalties == []
    penalized = await move(foreign, {"status": "penalized", "penalty_amount": 5000, "note": "按合同扣罚"})
    assert penalized.status_code == 200, penalized.text
    body = penalized.json()
    assert (body["status"], body["penalty_amount"]) == ("penalized", 5000)
    assert body["penalty_results"]["test-penalty"] == {"deducted_fen": 5000}
    # The rewards module's subscriber takes it from the dealer's wallet, which holds nothing yet.
    assert body["penalty_results"]["rewards"] == {"deducted_fen": 0, "shortfall_fen": 5000, "entry_id": None}
    (event,) = penalties
    assert (event.dealer_id, event.amount, event.alert_id, event.source_ref) == (
        uuid.UUID(world.ids["d1"]["id"]),
        5000,
        uuid.UUID(foreign["id"]),
        f"diversion-penalty:{foreign['id']}",
    )
    assert [(h["from"], h["to"]) for h in body["history"]] == [("open", "confirmed"), ("confirmed", "penalized")]
    final = await move(foreign, {"status": "dismissed", "note": "late"})
    assert final.status_code == 409

    no_note = await move(outside, {"status": "dismissed"})
    assert (no_note.status_code, no_note.json()["data"]["field"]) == (422, "note")
    dismissed = await move(outside, {"status": "dismissed", "note": "门店搬迁，地址未更新"})
    assert dismissed.json()["status"] == "dismissed"

    # Who may: a read-only token sees but cannot move; a partner cannot see; another brand finds nothing.
    reader = bearer(await make_token(runtime, world.line.brand, ["channel.read"]))
    assert (await client.get(f"{path}/{outside['id']}", headers=reader)).status_code == 200
    assert (await move(outside, {"status": "confirmed"}, reader)).status_code == 403
    assert (await client.get(path, headers=world.tokens["dealer1"])).status_code == 403
    other = await make_world(client, runtime, prefix="6907777")
    assert (await client.get(f"{path}/{outside['id']}", headers=other.line.auth)).status_code == 404
    assert (await move(outside, {"status": "confirmed"}, other.line.auth)).status_code == 404
    assert await _alerts(client, other) == []

    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.startswith("channel.diversion."))
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["channel.diversion.confirmed", "channel.diversion.penalized", "channel.diversion.dismissed"]

    report = (await client.get(f"{API}/dealers/{world.ids['d1']['id']}/report", headers=world.line.auth)).json()
    assert (report["received"], report["shipped"], report["store_received"]) == (18, 12, 12)
    assert (report["out_of_territory"], report["alerts"]) == (6, 1), "dismissed alerts do not count"


async def test_report_flags_shipments_never_received(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.pallets[0], world.cases[2]])
    await scan(client, world, "dealer1", "ship", [world.cases[0]], to_store_id=world.ids["s1"]["id"])
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s3"]["id"])
    await scan(client, world, "store1", "store_receive", [world.cases[0]])
    url = f"{API}/dealers/{world.ids['d1']['id']}/report"
    fresh = (await client.get(url, headers=world.line.auth)).json()
    assert all(c["ok"] for c in fresh["checks"])
    assert (fresh["in_transit"], fresh["on_hand"]) == (6, 6)
    assert [(s["code"], s["shipped"], s["received"], s["supplied"]) for s in fresh["stores"]] == [
        ("S-GZ", 6, 6, True),
        ("S-GZ-BJ", 6, 0, True),
    ]
    clock.advance(8 * 86400)
    stale = (await client.get(url, headers=world.line.auth)).json()
    flagged = {c["name"]: c for c in stale["checks"]}
    assert flagged["shipped_not_received"]["ok"] is False
    assert flagged["shipped_not_received"]["values"]["count"] == 6
    assert flagged["shipped_not_received"]["message"].startswith("6 items shipped more than 7 days ago")
    assert flagged["stock_matches_custody"]["ok"] is True
    relaxed = (await client.get(url, params={"stale_days": 30}, headers=world.line.auth)).json()
    assert all(c["ok"] for c in relaxed["checks"])


async def test_rewards_are_paid_and_a_penalty_deducted_through_the_rewards_module(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """With the real rewards subscriber: the dealer earns per bottle received, the store per bottle it
    receives (the answer carries the grants), and a penalty comes out of the dealer's wallet once."""
    from tests.rewards_factories import make_pool, make_rule

    world = await make_world(client, runtime)
    brand_id = world.line.brand.id
    pool = await make_pool(runtime, brand_id, funded=100_000)
    await make_rule(runtime, brand_id, pool, kind="dealer_receive", role="dealer", amount_fen=200)
    await make_rule(runtime, brand_id, pool, kind="store_receive", role="store", amount_fen=100)
    received = await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    grants = [g for entry in received["rewards"] for g in entry["results"]["rewards"]]
    assert [(g["role"], g["amount_fen"], g["status"]) for g in grants] == [("dealer", 200, "paid")] * 6
    again = await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    assert again == {**received, "replayed": True}
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s2"]["id"])
    got = await scan(client, world, "store2", "store_receive", [world.cases[2]])
    store_grants = [g for entry in got["rewards"] for g in entry["results"]["rewards"]]
    assert [(g["role"], g["amount_fen"]) for g in store_grants] == [("store", 100)] * 6

    (alert,) = await _alerts(client, world)
    path = f"{API}/diversion/alerts/{alert['id']}/status"
    assert (await client.post(path, json={"status": "confirmed"}, headers=world.line.auth)).status_code == 200
    penalty = await client.post(
        path, json={"status": "penalized", "penalty_amount": 1000, "note": "窜货"}, headers=world.line.auth
    )
    assert penalty.status_code == 200, penalty.text
    answer = penalty.json()["penalty_results"]["rewards"]
    assert (answer["deducted_fen"], answer["shortfall_fen"]) == (1000, 0)  # of the 1,200 fen earned
    assert answer["entry_id"] is not None


@pytest.mark.parametrize("decision", ["dismissed", "confirmed"])
async def test_what_a_diverted_scan_earns_waits_for_the_alerts_outcome(
    client: httpx.AsyncClient, runtime: Runtime, decision: str
) -> None:
    """A store receiving goods its dealer does not supply raises a high alert; the store's rewards of
    that scan are held ("diversion"), then released to its wallet when the alert is dismissed, or
    returned to the pool when it is confirmed — once, whatever the operator does next."""
    from tests.ledger_factories import assert_books_balance
    from tests.rewards_factories import balance, make_pool, make_rule
    from zhongtai.rewards import service as rewards_service

    world = await make_world(client, runtime)
    brand_id = world.line.brand.id
    pool = await make_pool(runtime, brand_id, funded=100_000)
    await make_rule(runtime, brand_id, pool, kind="store_receive", role="store", amount_fen=100)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    await scan(client, world, "dealer1", "ship", [world.cases[2]], to_store_id=world.ids["s2"]["id"])
    got = await scan(
        client, world, "store2", "store_receive", [world.cases[2]], latitude=BEIJING[0], longitude=BEIJING[1]
    )
    grants = [g for entry in got["rewards"] for g in entry["results"]["rewards"]]
    assert [(g["role"], g["amount_fen"], g["status"], g["holds"]) for g in grants] == [
        ("store", 100, "held", ["diversion"])
    ] * 6
    (alert,) = await _alerts(client, world, status="open")
    assert alert["kind"] == "foreign_store"
    store_wallet = f"wallet:store:{world.ids['s2']['id']}"
    pool_key = rewards_service.pool_key(pool.id)
    assert await balance(runtime, brand_id, store_wallet) == 0
    assert await balance(runtime, brand_id, pool_key) == 100_000 - 600

    path = f"{API}/diversion/alerts/{alert['id']}/status"
    body = {"status": decision, "note": "门店证明为调拨" if decision == "dismissed" else "窜货属实"}
    decided = await client.post(path, json=body, headers=world.line.auth)
    assert decided.status_code == 200, decided.text
    if decision == "dismissed":
        assert await balance(runtime, brand_id, store_wallet) == 600
        assert await balance(runtime, brand_id, pool_key) == 100_000 - 600
    else:
        assert await balance(runtime, brand_id, store_wallet) == 0
        assert await balance(runtime, brand_id, pool_key) == 100_000
    queue = await client.get("/api/v1/rewards/review", headers=world.line.auth)
    assert queue.status_code == 200, queue.text
    assert queue.json()["total"] == 0
    if decision == "confirmed":  # a later penalty does not touch the rejected rewards again
        penalty = await client.post(
            path, json={"status": "penalized", "penalty_amount": 100, "note": "窜货"}, headers=world.line.auth
        )
        assert penalty.status_code == 200, penalty.text
        assert await balance(runtime, brand_id, pool_key) == 100_000
    await assert_books_balance(runtime, brand_id)
