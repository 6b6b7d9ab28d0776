"""Channel scans on both tiers: every step and refusal, pallet and case cascades per item, idempotency
and concurrent duplicates, EPCIS events read back through the trace API, custody, inventory, rewards
through the domain events, permissions and tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.channel_scan_world import API, make_world, scan
from tests.test_codes_api import GTIN, run_jobs
from zhongtai.channel.scan_models import ChannelScan, ChannelScanItem, Custody
from zhongtai.codes.events import ItemEvent
from zhongtai.codes.models import Code
from zhongtai.core import domain_events
from zhongtai.core.runtime import Runtime

EVENTS: list[ItemEvent] = []


@pytest.fixture
def rewards() -> Iterator[list[ItemEvent]]:
    """A stand-in rewards subscriber: records each event and answers an amount and a label."""

    async def handler(_session: Any, event: ItemEvent) -> dict[str, Any]:
        EVENTS.append(event)
        return {"amount": 100, "label": f"{event.kind} bonus"}

    EVENTS.clear()
    domain_events.subscribe(ItemEvent, "test-rewards", handler)
    yield EVENTS
    domain_events.unsubscribe(ItemEvent, "test-rewards")


def _item_uri(serial: str) -> str:
    return f"https://id.gs1.org/01/{GTIN}/21/{serial}"


async def _states(runtime: Runtime, brand_id: uuid.UUID, serials: list[str]) -> dict[str, tuple[str, int | None]]:
    from zhongtai.codes.models import STATE_NAMES

    async with runtime.db.unit_of_work(tenant_id=brand_id) as session:
        rows = (
            await session.execute(select(Code.serial, Code.state, Code.parent_id).where(Code.serial.in_(serials)))
        ).all()
    return {s: (STATE_NAMES[st], p) for s, st, p in rows}


async def _custody(runtime: Runtime, brand_id: uuid.UUID) -> dict[str, int]:
    async with runtime.db.unit_of_work(tenant_id=brand_id) as session:
        rows = (await session.execute(select(Custody.holder, func.count()).group_by(Custody.holder))).all()
    return {holder: int(n) for holder, n in rows}


async def test_the_whole_chain(client: httpx.AsyncClient, runtime: Runtime, rewards: list[ItemEvent]) -> None:
    world = await make_world(client, runtime)
    items, cases, pallets = world.items, world.cases, world.pallets
    brand_id = world.line.brand.id

    # The Guangzhou dealer receives the pallet: its twelve bottles, each published once.
    received = await scan(
        client,
        world,
        "dealer1",
        "dealer_receive",
        [f"https://example.cn/00/{pallets[0]}"],
        latitude=23.13,
        longitude=113.26,
    )
    assert received["accepted"] == [{"code": pallets[0], "level": "pallet", "items": 12}]
    assert (received["item_count"], received["replayed"]) == (12, False)
    assert len(received["rewards"]) == 12
    assert received["rewards"][0]["results"]["test-rewards"] == {"amount": 100, "label": "dealer_receive bonus"}
    assert sorted(e.extra["serial"] for e in rewards) == sorted(items[:12])
    first = rewards[0]
    assert (first.kind, first.dealer_id, first.store_id, first.source_ref) == (
        "dealer_receive",
        uuid.UUID(world.ids["d1"]["id"]),
        None,
        f"channel-scan:{received['scan_id']}",
    )
    assert (first.partner_account_id, first.latitude, first.longitude) == (
        uuid.UUID(world.ids["dealer1"]["id"]),
        23.13,
        113.26,
    )

    # The same scan again, without a key: the same answer, nothing twice.
    again = await scan(client, world, "dealer1", "dealer_receive", [pallets[0]])
    assert again["replayed"] is True
    assert again["scan_id"] == received["scan_id"]
    assert len(rewards) == 12

    # Ship one case of the pallet to the Guangzhou store: it leaves the pallet.
    shipped = await scan(client, world, "dealer1", "ship", [cases[0]], to_store_id=world.ids["s1"]["id"])
    assert shipped["accepted"] == [{"code": cases[0], "level": "case", "items": 6}]
    assert shipped["rewards"] == []  # shipping earns nothing
    states = await _states(runtime, brand_id, [cases[0], cases[1], items[0]])
    assert states[cases[0]] == ("shipped", None)
    assert states[cases[1]][0] == "packed"
    assert states[cases[1]][1] is not None
    assert states[items[0]][0] == "packed"

    # The store clerk receives the case, the guide opens it and sells one bottle.
    got = await scan(client, world, "store1", "store_receive", [cases[0]])
    assert got["item_count"] == 6
    opened = await scan(client, world, "guide1", "case_open", [cases[0]])
    assert opened["item_count"] == 6
    assert (await _states(runtime, brand_id, [cases[0]]))[cases[0]] == ("opened", None)
    assert (await _states(runtime, brand_id, [items[1]]))[items[1]] == ("in_store", None)
    reopened = await scan(client, world, "store1", "case_open", [cases[0]])
    assert (reopened["replayed"], reopened["scan_id"]) == (True, opened["scan_id"])
    sold = await scan(client, world, "guide1", "sale", [_item_uri(items[0])])
    assert sold["accepted"] == [{"code": items[0], "level": "item", "items": 1}]
    sale_event = rewards[-1]
    assert (sale_event.kind, sale_event.store_id, sale_event.guide_id) == (
        "sale",
        uuid.UUID(world.ids["s1"]["id"]),
        uuid.UUID(world.ids["guide1"]["guide_id"]),
    )
    assert sale_event.dealer_id == uuid.UUID(world.ids["d1"]["id"])
    assert [e.kind for e in rewards].count("store_receive") == 6
    assert [e.kind for e in rewards].count("case_open") == 6
    assert (await _states(runtime, brand_id, [items[0]]))[items[0]] == ("sold", None)

    # Custody and inventory.
    assert await _custody(runtime, brand_id) == {"dealer": 6, "store": 5, "sold": 1}
    dealer_stock = (await client.get(f"{API}/partner/inventory", headers=world.tokens["dealer1"])).json()
    assert dealer_stock["holder"]["code"] == "GZ"
    assert [(r["gtin"], r["received"], r["shipped"], r["sold"], r["on_hand"]) for r in dealer_stock["items"]] == [
        (GTIN, 12, 6, 0, 6)
    ]
    store_stock = (await client.get(f"{API}/partner/inventory", headers=world.tokens["guide1"])).json()
    assert [(r["received"], r["shipped"], r["sold"], r["on_hand"]) for r in store_stock["items"]] == [(6, 0, 1, 5)]
    operator = await client.get(f"{API}/inventory", params={"store_id": world.ids["s1"]["id"]}, headers=world.line.auth)
    assert operator.json()["items"][0]["on_hand"] == 5
    holder = (await client.get(f"{API}/custody", params={"code": items[0]}, headers=world.line.auth)).json()
    assert (holder["holder"], holder["state"], holder["store_id"]) == ("sold", "sold", world.ids["s1"]["id"])

    # The EPCIS events, read back through the trace API.
    await run_jobs(runtime)

    async def events(**params: str) -> list[dict[str, Any]]:
        found = await client.get("/epcis/events", params=params, headers=world.line.auth)
        assert found.status_code == 200, found.text
        listed: list[dict[str, Any]] = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        return listed

    receiving = await events(EQ_bizStep="receiving")
    assert [(e["epcList"], e["bizLocation"]["id"]) for e in receiving] == [
        ([f"https://id.gs1.org/00/{pallets[0]}"], "urn:zhongtai:dealer:GZ"),
        ([f"https://id.gs1.org/00/{cases[0]}"], "urn:zhongtai:store:S-GZ"),
    ]
    (shipping,) = await events(EQ_bizStep="shipping")
    assert shipping["sourceList"] == [{"type": "location", "source": "urn:zhongtai:dealer:GZ"}]
    assert shipping["destinationList"] == [{"type": "location", "destination": "urn:zhongtai:store:S-GZ"}]
    assert shipping["disposition"].endswith("in_transit")
    unpacking = await events(EQ_bizStep="unpacking")
    assert [(e["parentID"], len(e["childEPCs"])) for e in unpacking] == [
        (f"https://id.gs1.org/00/{pallets[0]}", 1),  # the case shipped off the pallet
        (f"https://id.gs1.org/00/{cases[0]}", 6),  # the case opened in the store
    ]
    (selling,) = await events(EQ_bizStep="retail_selling")
    assert selling["epcList"] == [_item_uri(items[0])]
    assert selling["bizLocation"] == {"id": "urn:zhongtai:store:S-GZ"}
    trace = await client.get("/api/v1/trace", params={"code": items[0]}, headers=world.line.auth)
    assert trace.status_code == 200, trace.text
    words = [step["what"]["biz_step"] for step in trace.json()["steps"]]
    assert words[-1] == "retail_selling", words
    assert {"receiving", "shipping", "unpacking"} <= set(words)


async def test_store_takes_goods_its_dealer_holds(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    got = await scan(client, world, "store1", "store_receive", [world.cases[2]])
    assert got["item_count"] == 6
    report = (await client.get(f"{API}/dealers/{world.ids['d1']['id']}/report", headers=world.line.auth)).json()
    assert (report["received"], report["shipped"], report["store_received"], report["on_hand"]) == (6, 6, 6, 0)
    assert all(check["ok"] for check in report["checks"]), report["checks"]
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        steps = (
            await session.execute(select(ChannelScanItem.action, func.count()).group_by(ChannelScanItem.action))
        ).all()
    assert dict(steps) == {"dealer_receive": 6, "ship": 6, "store_receive": 6}


async def test_refusals_name_each_code(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    items, cases, pallets = world.items, world.cases, world.pallets

    def reasons(body: dict[str, Any]) -> dict[str, str]:
        assert body["error"] == "scan_refused", body
        return {p["code"]: p["reason"] for p in body["data"]["refused"]}

    # Unknown, unreadable, and codes of another brand.
    unknown = await scan(
        client, world, "dealer1", "dealer_receive", ["ZZZZZZZZZZZZZZZZ", "not a code", items[18]], expect=409
    )
    assert reasons(unknown) == {"ZZZZZZZZZZZZZZZZ": "unknown", "not a code": "unreadable"}
    # Steps out of order.
    not_received = await scan(
        client, world, "dealer1", "ship", [items[18]], to_store_id=world.ids["s1"]["id"], expect=409
    )
    assert reasons(not_received) == {items[18]: "not_received"}
    nowhere = await scan(client, world, "store1", "store_receive", [cases[2]], expect=409)
    assert reasons(nowhere) == dict.fromkeys(items[12:18], "not_in_channel")
    assert all(p["inside"] == cases[2] for p in nowhere["data"]["refused"])
    # A voided bottle inside a case refuses the case, naming the bottle.
    voided = await client.post(
        f"/api/v1/codes/batches/{world.line.batches['item']['id']}/void",
        json={"from_index": 14, "to_index": 14, "reason": "leaked"},
        headers=world.line.auth,
    )
    assert voided.status_code == 200, voided.text
    bad = await scan(client, world, "dealer1", "dealer_receive", [cases[2]], expect=409)
    assert reasons(bad) == {items[13]: "voided"}
    assert bad["detail"].startswith(f"Scan refused: {items[13]} (inside {cases[2]}): This code is voided.")
    # Nothing was written by the refused scans.
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(ChannelScan)) == 0
        assert await session.scalar(select(func.count()).select_from(Custody)) == 0

    await scan(client, world, "dealer1", "dealer_receive", [pallets[0]])
    # Another dealer cannot receive or ship them.
    taken = await scan(client, world, "dealer2", "dealer_receive", [items[0]], expect=409)
    assert reasons(taken) == {items[0]: "in_channel"}
    theirs = await scan(client, world, "dealer2", "ship", [items[0]], to_store_id=world.ids["s2"]["id"], expect=409)
    assert reasons(theirs) == {items[0]: "not_yours"}
    # A store of another dealer cannot take what the Guangzhou dealer holds.
    foreign = await scan(client, world, "store2", "store_receive", [cases[0]], expect=409)
    assert set(reasons(foreign).values()) == {"not_shipped_to_you"}
    # A case scanned with a bottle inside it; opening a bottle; opening before receiving.
    twice = await scan(client, world, "store1", "store_receive", [cases[0], items[0]], expect=409)
    assert reasons(twice) == {items[0]: "listed_twice"}
    not_case = await scan(client, world, "store1", "case_open", [items[0], pallets[0]], expect=409)
    assert reasons(not_case) == {items[0]: "not_a_case", pallets[0]: "not_a_case"}
    await scan(client, world, "dealer1", "ship", [cases[0]], to_store_id=world.ids["s1"]["id"])
    early = await scan(client, world, "store1", "case_open", [cases[0]], expect=409)
    assert set(reasons(early).values()) == {"not_received"}
    shipped_twice = await scan(
        client, world, "dealer1", "ship", [cases[0]], to_store_id=world.ids["s3"]["id"], expect=409
    )
    assert set(reasons(shipped_twice).values()) == {"already_shipped"}
    elsewhere = await scan(client, world, "store3", "store_receive", [cases[0]], expect=409)
    assert set(reasons(elsewhere).values()) == {"shipped_elsewhere"}
    await scan(client, world, "store1", "store_receive", [cases[0]])
    await scan(client, world, "store1", "sale", [items[0]])
    resold = await scan(client, world, "store3", "sale", [items[0]], expect=409)
    assert reasons(resold) == {items[0]: "sold"}
    not_here = await scan(client, world, "store3", "sale", [items[1]], expect=409)
    assert reasons(not_here) == {items[1]: "not_at_your_store"}

    # Roles: a store cannot record a dealer's step and a dealer cannot sell.
    role = await scan(client, world, "store1", "dealer_receive", [items[19]], expect=403)
    assert role["error"] == "scan_not_allowed"
    role = await scan(client, world, "dealer1", "sale", [items[19]], expect=403)
    assert role["error"] == "scan_not_allowed"
    # Bad requests.
    no_store = await scan(client, world, "dealer1", "ship", [items[1]], expect=422)
    assert no_store["data"]["field"] == "to_store_id"
    ghost = await scan(client, world, "dealer1", "ship", [items[1]], to_store_id=str(uuid.uuid4()), expect=422)
    assert ghost["detail"] == "No such store."
    half = await scan(client, world, "dealer1", "dealer_receive", [items[19]], latitude=23.1, expect=422)
    assert half["data"]["field"] == "latitude"
    unknown_action = await client.post(
        f"{API}/partner/scans", json={"action": "steal", "codes": [items[19]]}, headers=world.tokens["dealer1"]
    )
    assert unknown_action.status_code == 422
    # Operators and anonymous callers are not partners.
    assert (await client.post(f"{API}/partner/scans", json={"action": "sale", "codes": [items[1]]})).status_code == 401
    staff = await client.post(
        f"{API}/partner/scans", json={"action": "sale", "codes": [items[1]]}, headers=world.line.auth
    )
    assert staff.status_code == 403


async def test_idempotency_key_replays_and_rejects_reuse(
    client: httpx.AsyncClient, runtime: Runtime, rewards: list[ItemEvent]
) -> None:
    world = await make_world(client, runtime)
    first = await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]], key="k-1")
    again = await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]], key="k-1")
    assert again == {**first, "replayed": True}
    assert len(rewards) == 6
    reused = await scan(
        client, world, "dealer1", "ship", [world.cases[2]], key="k-1", to_store_id=world.ids["s1"]["id"], expect=409
    )
    assert reused["error"] == "idempotency_key_reused"


async def test_concurrent_duplicate_scans_take_effect_once(
    client: httpx.AsyncClient, runtime: Runtime, rewards: list[ItemEvent]
) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.pallets[0], world.cases[2]])
    await scan(client, world, "dealer1", "ship", [world.pallets[0], world.cases[2]], to_store_id=world.ids["s1"]["id"])
    rewards.clear()

    # Six phones send the same receipt at once: the pallet, and its cases separately too.
    async def attempt(n: int) -> httpx.Response:
        codes = [world.pallets[0]] if n % 2 == 0 else [world.cases[0], world.cases[1]]
        who = "store1" if n % 4 < 2 else "guide1"
        return await client.post(
            f"{API}/partner/scans", json={"action": "store_receive", "codes": codes}, headers=world.tokens[who]
        )

    answers = await asyncio.gather(*(attempt(n) for n in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    fresh = [a.json() for a in answers if not a.json()["replayed"]]
    assert len(fresh) == 1
    assert fresh[0]["item_count"] == 12
    assert len(rewards) == 12
    assert len({e.code_id for e in rewards}) == 12
    async with runtime.db.unit_of_work(tenant_id=world.line.brand.id) as session:
        received = await session.scalar(
            select(func.count()).select_from(ChannelScanItem).where(ChannelScanItem.action == "store_receive")
        )
    assert received == 12
    assert await _custody(runtime, world.line.brand.id) == {"store": 12, "transit": 6}


async def test_a_pallet_emptied_case_by_case_scans_as_the_same_step(
    client: httpx.AsyncClient, runtime: Runtime, rewards: list[ItemEvent]
) -> None:
    world = await make_world(client, runtime)
    await scan(client, world, "dealer1", "dealer_receive", [world.pallets[0]])
    await scan(client, world, "dealer1", "ship", [world.pallets[0]], to_store_id=world.ids["s1"]["id"])
    rewards.clear()
    by_case = await scan(client, world, "store1", "store_receive", [world.cases[0], world.cases[1]])
    assert (by_case["item_count"], by_case["replayed"]) == (12, False)
    # The pallet label scanned afterwards, by the store's guide: the same step, answered as it was.
    again = await scan(client, world, "guide1", "store_receive", [world.pallets[0]])
    assert again == {**by_case, "replayed": True}
    assert len(rewards) == 12
    # Another store scanning the empty pallet is told it holds nothing.
    elsewhere = await scan(client, world, "store2", "store_receive", [world.pallets[0]], expect=409)
    assert elsewhere["data"]["refused"][0]["reason"] == "empty"
    assert await _custody(runtime, world.line.brand.id) == {"store": 12}


async def test_partners_see_only_their_brand(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await make_world(client, runtime)
    other = await make_world(client, runtime, prefix="6907777")
    foreign = await scan(client, other, "dealer1", "dealer_receive", [world.cases[2]], expect=409)
    assert foreign["data"]["refused"] == [
        {"code": world.cases[2], "reason": "foreign", "message": "This code belongs to another brand."}
    ]
    await scan(client, world, "dealer1", "dealer_receive", [world.cases[2]])
    mine = (await client.get(f"{API}/partner/scans", headers=world.tokens["dealer1"])).json()["items"]
    theirs = (await client.get(f"{API}/partner/scans", headers=other.tokens["dealer1"])).json()["items"]
    assert (len(mine), theirs) == (1, [])
    listed = (await client.get(f"{API}/scans", headers=other.line.auth)).json()["items"]
    assert listed == []
    assert (
        await client.get(f"{API}/inventory", params={"dealer_id": world.ids["d1"]["id"]}, headers=other.line.auth)
    ).status_code == 404
    custody = await client.get(f"{API}/custody", params={"code": world.items[12]}, headers=other.line.auth)
    assert custody.status_code == 404
