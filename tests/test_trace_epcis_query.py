"""EPCIS queries on both tiers: every GS1 example queried back by each kind of parameter, URN and
Digital Link equivalence, paging, refused parameters, per-resource paths, tenant isolation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.factories import bearer, make_brand, make_token
from tests.test_trace_epcis_capture import EXAMPLES, capture_ok, document, object_event
from zhongtai.core.runtime import Runtime
from zhongtai.trace import epcis_schema


async def events_of(client: httpx.AsyncClient, token: str, url: str) -> list[dict[str, Any]]:
    response = await client.get(url, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "EPCISQueryDocument"
    assert epcis_schema.validate(body) == [], "responses validate against the EPCIS JSON Schema"
    result: list[dict[str, Any]] = body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return result


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["eventID"] for e in events]


def _query_cases(event: dict[str, Any]) -> list[dict[str, str]]:
    """Query parameters (one kind each) that the event must match."""
    cases = [
        {"eventType": event["type"]},
        {"GE_eventTime": event["eventTime"], "LT_eventTime": "2100-01-01T00:00:00Z"},
        {"GE_recordTime": "2000-01-01T00:00:00Z"},
        {"EQ_eventID": event["eventID"]},
    ]
    if "action" in event:
        cases.append({"EQ_action": event["action"]})
    for name, parameter in (("bizStep", "EQ_bizStep"), ("disposition", "EQ_disposition")):
        if name in event:
            cases.append({parameter: event[name]})
    if "bizStep" in event:
        cases.append({"EQ_bizStep": f"https://ref.gs1.org/cbv/BizStep-{event['bizStep']}"})
        cases.append({"EQ_bizStep": f"urn:epcglobal:cbv:bizstep:{event['bizStep']}"})
    for name, parameter in (("readPoint", "EQ_readPoint"), ("bizLocation", "EQ_bizLocation")):
        if name in event:
            cases.append({parameter: event[name]["id"]})
    for epc in event.get("epcList", []) + event.get("childEPCs", []):
        cases.extend([{"MATCH_epc": epc}, {"MATCH_anyEPC": epc}])
    if "parentID" in event:
        cases.extend([{"MATCH_parentID": event["parentID"]}, {"MATCH_anyEPC": event["parentID"]}])
    for epc in event.get("inputEPCList", []):
        cases.extend([{"MATCH_inputEPC": epc}, {"MATCH_anyEPC": epc}])
    for epc in event.get("outputEPCList", []):
        cases.extend([{"MATCH_outputEPC": epc}, {"MATCH_anyEPC": epc}])
    for element in event.get("quantityList", []) + event.get("childQuantityList", []):
        cases.extend([{"MATCH_epcClass": element["epcClass"]}, {"MATCH_anyEPCClass": element["epcClass"]}])
    for element in event.get("inputQuantityList", []):
        cases.extend([{"MATCH_inputEPCClass": element["epcClass"]}, {"MATCH_anyEPCClass": element["epcClass"]}])
    return cases


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_every_gs1_example_is_queried_back(client: httpx.AsyncClient, runtime: Runtime, path: Path) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    body = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    await capture_ok(client, token, body)
    everything = await events_of(client, token, "/epcis/events")
    given = body["epcisBody"]["eventList"]
    assert ids(everything) == [e["eventID"] for e in given]
    for stored, original in zip(everything, given, strict=True):
        assert {k: v for k, v in stored.items() if k not in ("recordTime", "@context")} == original
        assert stored["recordTime"].endswith("Z")
        assert stored["@context"] == [{"example": "http://ns.example.com/epcis/"}]
    for event in given:
        for params in _query_cases(event):
            found = await events_of(
                client, token, "/epcis/events?" + "&".join(f"{k}={quote(v)}" for k, v in params.items())
            )
            assert event["eventID"] in ids(found), params
        one = await events_of(client, token, f"/epcis/events/{quote(event['eventID'], safe='')}")
        assert ids(one) == [event["eventID"]]
    # …and values that must not match.
    for params in (
        {"eventType": "AssociationEvent"},
        {"EQ_bizStep": "packing"},
        {"GE_eventTime": "2099-01-01T00:00:00Z"},
    ):
        assert await events_of(client, token, "/epcis/events?" + "&".join(f"{k}={v}" for k, v in params.items())) == []


async def test_urn_and_digital_link_queries_are_equivalent(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    urn_event = object_event("EQ1", eventID="urn:uuid:00000000-0000-4000-8000-0000000000a1")
    dl_event = object_event(
        "EQ2",
        eventID="urn:uuid:00000000-0000-4000-8000-0000000000a2",
        epcList=["https://scan.brand.example/01/09506000134352/21/EQ2"],
        readPoint={"id": "https://id.gs1.org/414/9506000000015/254/LINE1"},
    )
    urn_event["readPoint"] = {"id": "urn:epc:id:sgln:9506000.00001.LINE1"}
    await capture_ok(client, token, document(urn_event, dl_event))
    for epc, expected in (
        ("urn:epc:id:sgtin:9506000.013435.EQ1", urn_event),
        ("https://id.gs1.org/01/09506000134352/21/EQ1", urn_event),
        ("https://other.example/01/9506000134352/21/EQ1?x=1", urn_event),
        ("urn:epc:id:sgtin:9506000.013435.EQ2", dl_event),
        ("https://scan.brand.example/01/09506000134352/21/EQ2", dl_event),
    ):
        assert ids(await events_of(client, token, f"/epcis/events?MATCH_epc={quote(epc)}")) == [expected["eventID"]]
    both = ids(
        await events_of(client, token, f"/epcis/events?MATCH_epc={quote('urn:epc:idpat:sgtin:9506000.013435.*')}")
    )
    assert both == [urn_event["eventID"], dl_event["eventID"]]
    piped = "urn:epc:id:sgtin:9506000.013435.EQ1|https://id.gs1.org/01/09506000134352/21/EQ2"
    assert len(await events_of(client, token, f"/epcis/events?MATCH_epc={quote(piped)}")) == 2
    for read_point in ("urn:epc:id:sgln:9506000.00001.LINE1", "https://id.gs1.org/414/9506000000015/254/LINE1"):
        assert len(await events_of(client, token, f"/epcis/events?EQ_readPoint={quote(read_point)}")) == 2
    by_path = await events_of(
        client, token, f"/epcis/epcs/{quote('https://id.gs1.org/01/09506000134352/21/EQ1', safe='')}/events"
    )
    assert ids(by_path) == [urn_event["eventID"]]


async def test_paging_through_250_events_returns_each_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(*(object_event(f"PG{i:03d}") for i in range(250))))
    seen: list[str] = []
    url: str | None = "/epcis/events?perPage=100&EQ_bizStep=commissioning"
    sizes = []
    while url:
        response = await client.get(url, headers=bearer(token))
        assert response.status_code == 200
        page = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        sizes.append(len(page))
        seen.extend(e["epcList"][0] for e in page)
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        if link:
            assert link.endswith('>; rel="next"')
            assert "EQ_bizStep=commissioning" in link
    assert sizes == [100, 100, 50]
    assert sorted(seen) == sorted(f"urn:epc:id:sgtin:9506000.013435.PG{i:03d}" for i in range(250))


async def test_page_tokens_cannot_be_altered_or_reused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(*(object_event(f"T{i}") for i in range(3))))
    first = await client.get("/epcis/events?perPage=1", headers=bearer(token))
    link = first.headers["link"]
    page_token = link.split("nextPageToken=")[1].split(">")[0]
    payload, signature = page_token.split(".")
    tampered = f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{signature}"
    for url in (
        f"/epcis/events?perPage=1&nextPageToken={tampered}",
        f"/epcis/events?perPage=1&EQ_action=ADD&nextPageToken={page_token}",  # another query
    ):
        refused = await client.get(url, headers=bearer(token))
        assert refused.status_code == 400
        assert refused.json()["type"] == "epcisException:QueryParameterException"
    other = await make_brand(runtime)
    other_token = await make_token(runtime, other)
    foreign = await client.get(f"/epcis/events?perPage=1&nextPageToken={page_token}", headers=bearer(other_token))
    assert foreign.status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "colour=red",
        "EQ_bizstep=shipping",
        "GE_eventTime=yesterday",
        "GE_eventTime=2024-05-01T08:00:00",
        "eventType=Sighting",
        "EQ_action=LOOK",
        "perPage=0",
        "perPage=ten",
        "MATCH_epc=urn:epc:id:sgtin:1.2.3",
        "orderBy=eventTime",
        "GE_errorDeclarationTime=yesterday",
        "LT_errorDeclarationTime=2024-05-01T08:00:00",
        "EQ_errorReason=",
        "EQ_bizStep=",
    ],
)
async def test_unknown_or_malformed_parameters_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, query: str
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    response = await client.get(f"/epcis/events?{query}", headers=bearer(token))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "epcisException:QueryParameterException"


async def test_time_with_an_offset_in_a_query_string(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(object_event("TZ")))  # 2024-05-01T00:00:00Z
    # An unencoded '+' arrives as a space; both spellings mean +08:00.
    for value in ("2024-05-01T08:00:00+08:00", "2024-05-01T08:00:00%2B08:00"):
        assert len(await events_of(client, token, f"/epcis/events?GE_eventTime={value}")) == 1
    assert await events_of(client, token, "/epcis/events?GE_eventTime=2024-05-01T08:00:01%2B08:00") == []
    assert len(await events_of(client, token, "/epcis/events?LT_eventTime=2024-05-01T00:00:01Z")) == 1


async def test_per_resource_paths(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    body = json.loads(next(p for p in EXAMPLES if "9.6.3-AggregationEvent.jsonld" in p.name).read_text())
    await capture_ok(client, token, body)
    [event] = body["epcisBody"]["eventList"]
    for url in (
        "/epcis/eventTypes/AggregationEvent/events",
        f"/epcis/epcs/{quote(event['parentID'], safe='')}/events",
        f"/epcis/epcs/{quote('https://id.gs1.org/01/10614141073464/21/2017', safe='')}/events",
        "/epcis/bizSteps/receiving/events",
        f"/epcis/bizSteps/{quote('https://ref.gs1.org/cbv/BizStep-receiving', safe='')}/events",
        f"/epcis/bizLocations/{quote(event['bizLocation']['id'], safe='')}/events",
        f"/epcis/readPoints/{quote(event['readPoint']['id'], safe='')}/events",
        "/epcis/dispositions/in_progress/events",
        "/epcis/eventTypes/AggregationEvent/events?EQ_action=OBSERVE",
    ):
        assert ids(await events_of(client, token, url)) == [event["eventID"]], url
    missing = await client.get("/epcis/eventTypes/ObjectEvent/events", headers=bearer(token))
    assert (missing.status_code, missing.json()["type"]) == (404, "epcisException:NoSuchResourceException")
    doubled = await client.get("/epcis/bizSteps/receiving/events?EQ_bizStep=shipping", headers=bearer(token))
    assert doubled.status_code == 400


async def test_queries_see_only_the_callers_brand(client: httpx.AsyncClient, runtime: Runtime) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    first_token, second_token = await make_token(runtime, first), await make_token(runtime, second)
    event = object_event("ISO", eventID="urn:uuid:00000000-0000-4000-8000-00000000015a")
    await capture_ok(client, first_token, document(event))
    # The second brand captures the very same event: its own copy, in its own repository.
    await capture_ok(client, second_token, document(object_event("ISO")))
    assert ids(await events_of(client, first_token, "/epcis/events")) == [event["eventID"]]
    theirs = await events_of(client, second_token, "/epcis/events")
    assert len(theirs) == 1
    assert theirs[0]["eventID"] != event["eventID"]
    refused = await client.get(f"/epcis/events/{quote(event['eventID'], safe='')}", headers=bearer(second_token))
    assert (refused.status_code, refused.json()["type"]) == (404, "epcisException:NoSuchResourceException")
    assert await events_of(client, second_token, f"/epcis/events?EQ_eventID={quote(event['eventID'])}") == []


CORRECTION = "urn:uuid:ec000000-0000-4000-8000-00000000c0r1"


def _declared(serial: str, reason: str, **declaration: Any) -> dict[str, Any]:
    return object_event(
        serial,
        errorDeclaration={"declarationTime": "2024-05-02T09:00:00+08:00", "reason": reason, **declaration},
    )


async def test_error_declarations_are_recorded_shown_and_queried(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """An event re-sent with an errorDeclaration keeps its hash ID: the declaration is recorded
    against the stored event (once), shown with it, and found by the error declaration parameters."""
    from sqlalchemy import func, select

    from zhongtai.trace import log
    from zhongtai.trace.hashing import error_declaration_hash_id
    from zhongtai.trace.models import TraceErrorDeclaration, TraceEvent

    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(object_event("E1"), object_event("E2")))
    declaration = {
        "correctiveEventIDs": [CORRECTION],
        "example:ticket": "QA-7",
    }
    resent = _declared("E1", "incorrect_data", **declaration)
    job = await capture_ok(client, token, document(resent))
    assert (job["storedCount"], job["duplicateCount"], job["success"]) == (0, 1, True)
    # A fresh event carrying a declaration is stored with it; a re-sent declaration changes nothing.
    await capture_ok(client, token, document(_declared("E3", "did_not_occur")))
    await capture_ok(client, token, document(resent))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(TraceEvent)) == 3
        assert await session.scalar(select(func.count()).select_from(TraceErrorDeclaration)) == 2
        assert await log.size(session, brand.id) == 5  # three events, then the two declarations
        e1 = await session.scalar(select(TraceEvent).where(TraceEvent.event_id.like("%")).order_by(TraceEvent.id))
        assert e1 is not None
        entry = error_declaration_hash_id(
            e1.hash_id, resent["errorDeclaration"], {"example": "http://ns.example.com/epcis/"}
        )
        assert (
            await session.scalar(select(TraceErrorDeclaration.entry).where(TraceErrorDeclaration.event_pk == e1.id))
            == entry
        )
        assert e1.hash_id != entry

    def serials(found: list[dict[str, Any]]) -> list[str]:
        return [e["epcList"][0].rsplit(".", 1)[1] for e in found]

    everything = await events_of(client, token, "/epcis/events")
    assert serials(everything) == ["E1", "E2", "E3"]
    assert everything[0]["errorDeclaration"] == resent["errorDeclaration"]
    assert "errorDeclaration" not in everything[1]
    assert everything[2]["errorDeclaration"]["reason"] == "did_not_occur"
    single = await events_of(client, token, f"/epcis/events/{quote(everything[0]['eventID'], safe='')}")
    assert single[0]["errorDeclaration"]["correctiveEventIDs"] == [CORRECTION]
    for url, expected in (
        ("/epcis/events?EXISTS_errorDeclaration", ["E1", "E3"]),
        ("/epcis/events?EXISTS_errorDeclaration=", ["E1", "E3"]),
        ("/epcis/events?EQ_errorReason=incorrect_data", ["E1"]),
        ("/epcis/events?EQ_errorReason=https://ref.gs1.org/cbv/ER-did_not_occur", ["E3"]),
        ("/epcis/events?EQ_errorReason=urn:epcglobal:cbv:er:incorrect_data|did_not_occur", ["E1", "E3"]),
        (f"/epcis/events?EQ_correctiveEventID={quote(CORRECTION)}", ["E1"]),
        ("/epcis/events?EQ_correctiveEventID=urn:uuid:other", []),
        ("/epcis/events?EQ_errorReason=did_not_occur&MATCH_epc=urn:epc:id:sgtin:9506000.013435.E1", []),
    ):
        assert serials(await events_of(client, token, url)) == expected, url


async def test_a_declaration_sent_to_the_single_event_endpoint_is_recorded(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    context = {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]}
    created = await client.post("/epcis/events", json={**context, **object_event("S1")}, headers=bearer(token))
    assert created.status_code == 201, created.text
    declared = {**context, **_declared("S1", "did_not_occur")}
    recorded = await client.post("/epcis/events", json=declared, headers=bearer(token))
    assert recorded.status_code == 201, recorded.text
    assert recorded.headers["location"] == created.headers["location"]
    again = await client.post("/epcis/events", json=declared, headers=bearer(token))
    assert again.status_code == 409
    [event] = await events_of(client, token, "/epcis/events?EXISTS_errorDeclaration")
    assert event["errorDeclaration"]["reason"] == "did_not_occur"


async def test_error_declaration_time_bounds(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """GE_/LT_errorDeclarationTime find events with a declaration declared within the bounds; an event
    without a declaration never matches."""
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(object_event("T1"), object_event("T2"), object_event("T3")))
    await capture_ok(client, token, document(_declared("T1", "incorrect_data")))  # 2024-05-02T01:00:00Z
    late = object_event("T3", errorDeclaration={"declarationTime": "2024-05-03T00:00:00Z", "reason": "did_not_occur"})
    await capture_ok(client, token, document(late))

    def serials(found: list[dict[str, Any]]) -> list[str]:
        return [e["epcList"][0].rsplit(".", 1)[1] for e in found]

    for url, expected in (
        ("/epcis/events?GE_errorDeclarationTime=2024-05-01T00:00:00Z", ["T1", "T3"]),
        ("/epcis/events?GE_errorDeclarationTime=2024-05-02T09:00:00%2B08:00", ["T1", "T3"]),
        ("/epcis/events?GE_errorDeclarationTime=2024-05-02T09:00:01+08:00", ["T3"]),
        ("/epcis/events?LT_errorDeclarationTime=2024-05-02T01:00:00Z", []),
        ("/epcis/events?LT_errorDeclarationTime=2024-05-02T01:00:01Z", ["T1"]),
        ("/epcis/events?LT_errorDeclarationTime=2030-01-01T00:00:00Z", ["T1", "T3"]),
        (
            "/epcis/events?GE_errorDeclarationTime=2024-05-02T12:00:00Z&LT_errorDeclarationTime=2024-05-04T00:00:00Z",
            ["T3"],
        ),
        ("/epcis/events?GE_errorDeclarationTime=2024-05-02T00:00:00Z&EQ_errorReason=did_not_occur", ["T3"]),
    ):
        assert serials(await events_of(client, token, url)) == expected, url
