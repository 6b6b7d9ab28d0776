"""Commissioning and packing on both tiers: every refusal, all-or-nothing, events, and races."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from tests.factories import Brand, bearer, make_brand, make_token, system_actor
from tests.test_codes_api import make_product, request_batch, run_jobs
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import LotDraft, ProductDraft
from zhongtai.codes import custody
from zhongtai.codes.errors import CodeStepRefused
from zhongtai.codes.models import Code, CodeBatch, CodeEvent
from zhongtai.core.models import OutboxJob
from zhongtai.core.runtime import Runtime


@dataclass
class Line:
    brand: Brand
    token: str
    product_id: uuid.UUID
    batches: dict[str, dict]
    serials: dict[str, list[str]]

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


async def _serials(client: httpx.AsyncClient, token: str, batch_id: str) -> list[str]:
    text = (await client.get(f"/api/v1/codes/batches/{batch_id}/export", headers=bearer(token))).text
    return [row[2] for row in list(csv.reader(io.StringIO(text)))[1:]]


async def setup_line(client: httpx.AsyncClient, runtime: Runtime, *, commission: bool = True) -> Line:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await client.put("/api/v1/codes/settings", json={"gs1_company_prefix": "6901234"}, headers=bearer(token))
    product_id = await make_product(runtime, brand)  # 6 items a case, 4 cases a pallet
    batches = {
        "item": await request_batch(client, token, product_id, 20),
        "case": await request_batch(client, token, product_id, 4, "case"),
        "pallet": await request_batch(client, token, product_id, 2, "pallet"),
    }
    await run_jobs(runtime)
    serials = {level: await _serials(client, token, b["id"]) for level, b in batches.items()}
    if commission:
        for batch in batches.values():
            done = await client.post("/api/v1/codes/commission", json={"batch_id": batch["id"]}, headers=bearer(token))
            assert done.status_code == 200, done.text
    return Line(brand, token, product_id, batches, serials)


async def states(runtime: Runtime, line: Line, serials: list[str]) -> list[tuple[str, int, int | None]]:
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        rows = (
            await session.execute(select(Code.serial, Code.state, Code.parent_id).where(Code.serial.in_(serials)))
        ).all()
    order = {s: i for i, s in enumerate(serials)}
    return sorted(((s, st, p) for s, st, p in rows), key=lambda r: order[r[0]])


async def test_commission_a_batch_range_with_its_lot(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime, commission=False)
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        lot = await catalog.do_create_lot(
            session, system_actor(line.brand.id), line.product_id, LotDraft(lot_number="L2026A")
        )
    response = await client.post(
        "/api/v1/codes/commission",
        json={
            "batch_id": line.batches["item"]["id"],
            "from_index": 3,
            "to_index": 12,
            "lot_id": str(lot.id),
            "event_time": "2026-11-22T09:30:00+08:00",
            "read_point": "Factory 2 / line 3",
        },
        headers=line.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 10
    detail = (await client.get(f"/api/v1/codes/batches/{line.batches['item']['id']}", headers=line.auth)).json()
    assert detail["state_counts"] == {"generated": 10, "commissioned": 10}
    looked = (
        await client.get("/api/v1/codes/lookup", params={"code": line.serials["item"][2]}, headers=line.auth)
    ).json()
    assert looked["state"] == "commissioned"
    assert looked["lot_number"] == "L2026A"
    assert looked["uri"].endswith(f"/10/L2026A/21/{line.serials['item'][2]}")
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        event = await session.scalar(select(CodeEvent))
        batch = await session.get(CodeBatch, uuid.UUID(line.batches["item"]["id"]))
    assert event is not None
    assert (event.kind, event.action, event.biz_step, event.disposition) == (
        "commission",
        "ADD",
        "commissioning",
        "active",
    )
    assert event.quantity == 10
    assert event.code_last - event.code_first == 9  # type: ignore[operator]
    assert event.lot_id == lot.id
    assert event.read_point == "Factory 2 / line 3"
    assert event.event_time.isoformat() == "2026-11-22T01:30:00+00:00"
    assert batch is not None
    assert batch.commissioned_count == 10


async def test_commission_refuses_all_when_any_code_is_wrong(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime, commission=False)
    other = await setup_line(client, runtime, commission=False)
    items = line.serials["item"]
    first = await client.post("/api/v1/codes/commission", json={"codes": items[:2]}, headers=line.auth)
    assert first.status_code == 200
    await client.post(
        f"/api/v1/codes/batches/{line.batches['item']['id']}/void",
        json={"reason": "misprint", "from_index": 3, "to_index": 3},
        headers=line.auth,
    )
    request = [items[5], items[0], items[2], "ZZZZZZZZZZZZZZZZ", other.serials["item"][0], "not a code"]
    refused = await client.post("/api/v1/codes/commission", json={"codes": request}, headers=line.auth)
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "code_step_refused"
    reasons = {p["code"]: p["reason"] for p in body["data"]["refused"]}
    assert reasons == {
        items[0]: "already_commissioned",
        items[2]: "voided",
        "ZZZZZZZZZZZZZZZZ": "unknown",
        other.serials["item"][0]: "foreign",
        "not a code": "unreadable",
    }
    assert body["data"]["refused_count"] == 5
    assert (await states(runtime, line, [items[5]]))[0][1] == 0, "nothing was commissioned"


async def test_lot_of_another_product_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime, commission=False)
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        actor = system_actor(line.brand.id)
        other = await catalog.do_create_product(session, actor, ProductDraft(gtin="4006381333931", name="Other"))
        lot = await catalog.do_create_lot(session, actor, other.id, LotDraft(lot_number="X1"))
    refused = await client.post(
        "/api/v1/codes/commission", json={"codes": line.serials["item"][:2], "lot_id": str(lot.id)}, headers=line.auth
    )
    assert refused.status_code == 409
    assert {p["reason"] for p in refused.json()["data"]["refused"]} == {"wrong_product"}


async def test_pack_items_into_a_case_and_cases_onto_a_pallet(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime)
    items, cases, pallets = line.serials["item"], line.serials["case"], line.serials["pallet"]
    packed = await client.post(
        "/api/v1/codes/pack", json={"parent": cases[0], "children": items[:6]}, headers=line.auth
    )
    assert packed.status_code == 200, packed.text
    assert packed.json() | {"event_id": 0} == {
        "event_id": 0,
        "count": 6,
        "replayed": False,
        "parent": cases[0],
        "contents": 6,
        "capacity": 6,
    }
    again = await client.post("/api/v1/codes/pack", json={"parent": cases[0], "children": items[:6]}, headers=line.auth)
    assert again.json()["count"] == 0, "packing what is already inside changes nothing"
    overfull = await client.post(
        "/api/v1/codes/pack", json={"parent": cases[0], "children": [items[6]]}, headers=line.auth
    )
    assert overfull.status_code == 409
    assert overfull.json()["data"]["reason"] == "overfull"
    elsewhere = await client.post(
        "/api/v1/codes/pack", json={"parent": cases[1], "children": [items[0]]}, headers=line.auth
    )
    assert elsewhere.json()["data"]["refused"] == [
        {"code": items[0], "reason": "packed_elsewhere", "message": f"This code is already packed in {cases[0]}."}
    ]
    wrong_level = await client.post(
        "/api/v1/codes/pack", json={"parent": cases[1], "children": [cases[2]]}, headers=line.auth
    )
    assert wrong_level.json()["data"]["refused"][0]["reason"] == "wrong_level"
    into_item = await client.post(
        "/api/v1/codes/pack", json={"parent": items[7], "children": [items[8]]}, headers=line.auth
    )
    assert into_item.json()["data"]["reason"] == "not_a_container"
    onto_pallet = await client.post(
        "/api/v1/codes/pack", json={"parent": pallets[0], "children": cases[:2]}, headers=line.auth
    )
    assert onto_pallet.json()["contents"] == 2
    tree = (await client.get("/api/v1/codes/tree", params={"code": items[1]}, headers=line.auth)).json()
    assert tree["ancestors"] == [{"serial": cases[0], "level": "case"}, {"serial": pallets[0], "level": "pallet"}]
    pallet_tree = (await client.get("/api/v1/codes/tree", params={"code": pallets[0]}, headers=line.auth)).json()
    assert [c["serial"] for c in pallet_tree["children"]] == cases[:2]
    assert [c["serial"] for c in pallet_tree["children"][0]["children"]] == items[:6]
    looked = (await client.get("/api/v1/codes/lookup", params={"code": items[1]}, headers=line.auth)).json()
    assert (looked["state"], looked["parent_serial"]) == ("packed", cases[0])


async def test_unpack_repack_and_decommission(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime)
    items, cases = line.serials["item"], line.serials["case"]
    await client.post("/api/v1/codes/pack", json={"parent": cases[0], "children": items[:4]}, headers=line.auth)
    refused = await client.post(
        "/api/v1/codes/decommission", json={"codes": [items[0]], "reason": "broken"}, headers=line.auth
    )
    assert refused.json()["data"]["refused"][0]["reason"] == "packed"
    not_empty = await client.post(
        "/api/v1/codes/decommission", json={"codes": [cases[0]], "reason": "x"}, headers=line.auth
    )
    assert not_empty.json()["data"]["refused"][0]["reason"] == "not_empty"
    some = await client.post(
        "/api/v1/codes/unpack", json={"parent": cases[0], "children": [items[0]]}, headers=line.auth
    )
    assert (some.json()["count"], some.json()["contents"]) == (1, 3)
    outside = await client.post(
        "/api/v1/codes/unpack", json={"parent": cases[0], "children": [items[9]]}, headers=line.auth
    )
    assert outside.json()["data"]["refused"][0]["reason"] == "not_inside"
    moved = await client.post(
        "/api/v1/codes/repack", json={"parent": cases[1], "children": items[1:3]}, headers=line.auth
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["contents"] == 2
    broken = await client.post(
        "/api/v1/codes/decommission", json={"codes": [items[0]], "reason": "broken"}, headers=line.auth
    )
    assert broken.json()["count"] == 1
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        kinds = [e.kind for e in await session.scalars(select(CodeEvent).order_by(CodeEvent.id))]
        parents = dict(
            (await session.execute(select(Code.serial, Code.parent_id).where(Code.serial.in_(items[1:4])))).all()
        )
        case_ids = dict((await session.execute(select(Code.serial, Code.id).where(Code.serial.in_(cases[:2])))).all())
    assert kinds[-4:] == ["unpack", "unpack", "pack", "decommission"]
    assert parents == {items[1]: case_ids[cases[1]], items[2]: case_ids[cases[1]], items[3]: case_ids[cases[0]]}


async def test_idempotency_key_replays_a_step(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime)
    headers = {**line.auth, "idempotency-key": "line3-case-0001"}
    body = {"parent": line.serials["case"][0], "children": line.serials["item"][:3]}
    first = await client.post("/api/v1/codes/pack", json=body, headers=headers)
    second = await client.post("/api/v1/codes/pack", json=body, headers=headers)
    assert first.json()["event_id"] == second.json()["event_id"]
    assert second.json()["replayed"] is True
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        assert len(list(await session.scalars(select(CodeEvent).where(CodeEvent.kind == "pack")))) == 1


async def test_an_item_never_lands_in_two_cases_under_races(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime)
    items, cases = line.serials["item"], line.serials["case"]
    actor = system_actor(line.brand.id)

    async def pack_into(case: str, children: list[str]) -> str:
        try:
            async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
                await custody.do_pack(session, custody.StepContext(actor), parent_code=case, children=children)
        except CodeStepRefused:
            return "refused"
        return "packed"

    # The same item raced into two cases, and two halves racing to overfill one case.
    outcomes = await asyncio.gather(pack_into(cases[0], [items[0]]), pack_into(cases[1], [items[0]]))
    assert sorted(outcomes) == ["packed", "refused"]
    results = await asyncio.gather(pack_into(cases[2], items[1:5]), pack_into(cases[2], items[5:9]))
    assert sorted(results) == ["packed", "refused"]
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        case_ids = list(await session.scalars(select(Code.id).where(Code.serial.in_(cases[:3]))))
        holders = list(await session.scalars(select(Code.parent_id).where(Code.serial == items[0])))
        in_case_2 = len(list(await session.scalars(select(Code.id).where(Code.parent_id == max(case_ids)))))
    assert len(holders) == 1
    assert holders[0] in case_ids
    assert in_case_2 == 4


async def test_pack_several_cases_in_one_request(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime)
    items, cases = line.serials["item"], line.serials["case"]
    headers = {**line.auth, "idempotency-key": "line3-close-0001"}
    body = {"cases": [{"parent": cases[i], "children": items[i * 6 : i * 6 + 5]} for i in range(3)]}
    packed = await client.post("/api/v1/codes/pack-cases", json=body, headers=headers)
    assert packed.status_code == 200, packed.text
    answer = packed.json()
    assert (answer["count"], answer["replayed"]) == (15, False)
    assert [(c["parent"], c["count"], c["contents"], c["capacity"]) for c in answer["cases"]] == [
        (cases[i], 5, 5, 6) for i in range(3)
    ]
    again = await client.post("/api/v1/codes/pack-cases", json=body, headers=headers)
    assert again.json()["replayed"] is True
    assert [c["event_id"] for c in again.json()["cases"]] == [c["event_id"] for c in answer["cases"]]
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        events = list(await session.scalars(select(CodeEvent).where(CodeEvent.kind == "pack").order_by(CodeEvent.id)))
        case_ids = dict((await session.execute(select(Code.serial, Code.id).where(Code.serial.in_(cases)))).all())
        jobs = list(await session.scalars(select(OutboxJob.payload).where(OutboxJob.topic == "trace.code_event")))
    assert [(e.parent_code_id, e.quantity, e.idempotency_key) for e in events] == [
        (case_ids[cases[0]], 5, "line3-close-0001"),
        (case_ids[cases[1]], 5, "line3-close-0001#1"),
        (case_ids[cases[2]], 5, "line3-close-0001#2"),
    ]
    assert {e.id for e in events} <= {job["code_event_id"] for job in jobs}
    assert [p for _, _, p in await states(runtime, line, items[:5])] == [case_ids[cases[0]]] * 5


async def test_one_refused_case_refuses_every_case(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime)
    items, cases, pallets = line.serials["item"], line.serials["case"], line.serials["pallet"]
    other = await make_brand(runtime)
    other_token = await make_token(runtime, other)
    other_batch = await request_batch(client, other_token, await make_product(runtime, other), 1)
    await run_jobs(runtime)
    foreign_item = (await _serials(client, other_token, other_batch["id"]))[0]
    await client.post("/api/v1/codes/pack", json={"parent": cases[3], "children": [items[19]]}, headers=line.auth)
    voided = await client.post(
        f"/api/v1/codes/batches/{line.batches['item']['id']}/void",
        json={"from_index": 18, "to_index": 18, "reason": "misprinted"},
        headers=line.auth,
    )
    assert voided.status_code == 200, voided.text
    good = {"parent": cases[0], "children": items[:3]}
    bad_cases = {
        "packed_elsewhere": {"parent": cases[1], "children": [items[4], items[19]]},
        "wrong_level": {"parent": cases[1], "children": [pallets[0]]},
        "foreign": {"parent": cases[1], "children": [foreign_item]},
        "unknown": {"parent": cases[1], "children": ["BAAAAAAAAAAAAAAA"]},
        "listed_twice": {"parent": cases[1], "children": [items[0]]},
        "voided": {"parent": cases[1], "children": [items[17]]},
    }
    for reason, bad in bad_cases.items():
        refused = await client.post("/api/v1/codes/pack-cases", json={"cases": [good, bad]}, headers=line.auth)
        assert refused.status_code == 409, (reason, refused.text)
        assert reason in {p["reason"] for p in refused.json()["data"]["refused"]}, reason
    overfull = await client.post(
        "/api/v1/codes/pack-cases",
        json={"cases": [good, {"parent": cases[1], "children": items[5:12]}]},
        headers=line.auth,
    )
    assert overfull.status_code == 409
    assert (overfull.json()["data"]["reason"], overfull.json()["data"]["capacity"]) == ("overfull", 6)
    twice = await client.post("/api/v1/codes/pack-cases", json={"cases": [good, good]}, headers=line.auth)
    assert twice.status_code == 422
    assert [p for _, _, p in await states(runtime, line, items[:12])] == [None] * 12, "nothing was packed"
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        assert len(list(await session.scalars(select(CodeEvent).where(CodeEvent.kind == "pack")))) == 1
