"""The platform's own custody steps become EPCIS events on the capture path, each a log leaf."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.factories import system_actor
from tests.test_codes_api import GTIN, run_jobs
from tests.test_codes_custody import setup_line
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import LotDraft
from zhongtai.core.runtime import Runtime
from zhongtai.trace import log
from zhongtai.trace.models import TraceEvent


def _events(document: dict) -> list[dict]:
    return document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]


async def test_commissioning_and_packing_are_traced(client: httpx.AsyncClient, runtime: Runtime) -> None:
    line = await setup_line(client, runtime, commission=False)
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        lot = await catalog.do_create_lot(
            session, system_actor(line.brand.id), line.product_id, LotDraft(lot_number="L7")
        )
    items, cases = line.serials["item"], line.serials["case"]
    await client.post(
        "/api/v1/codes/commission",
        json={
            "codes": items[:3],
            "lot_id": str(lot.id),
            "event_time": "2026-11-22T09:30:00+08:00",
            "read_point": "Factory 2 / line 3",
        },
        headers=line.auth,
    )
    await client.post("/api/v1/codes/commission", json={"codes": cases[:1]}, headers=line.auth)
    await client.post("/api/v1/codes/pack", json={"parent": cases[0], "children": items[:3]}, headers=line.auth)
    await client.post("/api/v1/codes/unpack", json={"parent": cases[0], "children": items[2:3]}, headers=line.auth)
    await run_jobs(runtime)

    item_uri = f"https://id.gs1.org/01/{GTIN}/21/{items[0]}"
    found = await client.get("/epcis/events", params={"MATCH_anyEPC": item_uri}, headers=line.auth)
    assert found.status_code == 200, found.text
    listed = _events(found.json())
    assert [(e["type"], e["action"], e["bizStep"]) for e in listed] == [
        ("ObjectEvent", "ADD", "commissioning"),
        ("AggregationEvent", "ADD", "packing"),
    ]
    commissioning, packing = listed
    assert commissioning["epcList"] == [f"https://id.gs1.org/01/{GTIN}/21/{s}" for s in items[:3]]
    assert commissioning["ilmd"] == {"cbvmda:lotNumber": "L7"}
    assert commissioning["eventTime"].startswith("2026-11-22T09:30:00")
    assert commissioning["eventTimeZoneOffset"] == "+08:00"
    assert commissioning["zt:readPointName"] == "Factory 2 / line 3"
    assert packing["parentID"] == f"https://id.gs1.org/00/{cases[0]}"
    assert packing["eventID"].startswith("ni:///sha-256;")

    by_urn = await client.get(
        "/epcis/events", params={"MATCH_anyEPC": f"urn:epc:id:sgtin:6901234.056789.{items[0]}"}, headers=line.auth
    )
    assert [e["eventID"] for e in _events(by_urn.json())] == [e["eventID"] for e in listed]

    unpacked = _events(
        (await client.get("/epcis/events", params={"EQ_bizStep": "unpacking"}, headers=line.auth)).json()
    )
    assert [(e["action"], e["childEPCs"]) for e in unpacked] == [
        ("DELETE", [f"https://id.gs1.org/01/{GTIN}/21/{items[2]}"])
    ]

    await run_jobs(runtime)  # a second run stores nothing twice
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        stored = await session.scalar(select(func.count()).select_from(TraceEvent))
        size = await log.size(session, line.brand.id)
    assert stored == 4
    assert size == 4, "every stored event is a leaf of the brand's log"
