"""EPCIS capture on both tiers: validation with located errors, capture jobs, idempotency, error
behaviour, the outbox path for large documents, single-event capture, permissions, log leaves."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import bearer, make_brand, make_token
from zhongtai.core.jobs import Worker
from zhongtai.core.runtime import Runtime
from zhongtai.trace import capture, log
from zhongtai.trace.models import TraceEvent, TraceEventEpc

EXAMPLES = sorted(Path(__file__).resolve().parent.joinpath("data/gs1/examples").glob("*.jsonld"))
assert len(EXAMPLES) == 6, "the GS1 example documents ship with the tests (tests/data/gs1)"
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


def example(name: str) -> dict[str, Any]:
    path = next(p for p in EXAMPLES if name in p.name)
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [CONTEXT, {"example": "http://ns.example.com/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-05-01T00:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def object_event(serial: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2024-05-01T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"urn:epc:id:sgtin:9506000.013435.{serial}"],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        **extra,
    }


async def post_capture(
    client: httpx.AsyncClient, token: str, body: Any, behaviour: str | None = None
) -> httpx.Response:
    headers = bearer(token)
    if behaviour:
        headers["GS1-Capture-Error-Behaviour"] = behaviour
    return await client.post("/epcis/capture", json=body, headers=headers)


async def capture_ok(client: httpx.AsyncClient, token: str, body: Any, behaviour: str | None = None) -> dict[str, Any]:
    response = await post_capture(client, token, body, behaviour)
    assert response.status_code == 202, response.text
    assert response.headers["GS1-EPCIS-Capture-Limit"] == str(capture.CAPTURE_LIMIT)
    job = await client.get(response.headers["location"], headers=bearer(token))
    assert job.status_code == 200
    result: dict[str, Any] = job.json()
    return result


async def count_events(runtime: Runtime, tenant_id: Any) -> int:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(TraceEvent)) or 0)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_every_gs1_example_is_captured(client: httpx.AsyncClient, runtime: Runtime, path: Path) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    body = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    job = await capture_ok(client, token, body)
    count = len(body["epcisBody"]["eventList"])
    assert job["running"] is False
    assert job["success"] is True, job
    assert job["captureErrorBehaviour"] == "rollback"
    assert job["errors"] == []
    assert (job["eventCount"], job["storedCount"], job["duplicateCount"]) == (count, count, 0)
    assert await count_events(runtime, brand.id) == count
    # The given eventIDs are kept; every event's canonical hash is a leaf of the brand's log.
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = list(await session.scalars(select(TraceEvent).order_by(TraceEvent.id)))
        assert [r.event_id for r in rows] == [e["eventID"] for e in body["epcisBody"]["eventList"]]
        for row in rows:
            assert await log.leaf_index_of(session, brand.id, row.hash_id.encode()) is not None
        assert await log.size(session, brand.id) == count


def _broken(mutate: Any) -> dict[str, Any]:
    body = example("9.6.1-ObjectEvent.jsonld")
    mutate(body["epcisBody"]["eventList"][1])
    return body


INVALID = {
    "wrong type": (
        _broken(lambda e: e.update(epcList="urn:epc:id:sgtin:0614141.107346.2018")),
        "/epcisBody/eventList/1/epcList",
        "is not of type 'array'",
    ),
    "missing required": (
        _broken(lambda e: e.pop("eventTimeZoneOffset")),
        "/epcisBody/eventList/1",
        "'eventTimeZoneOffset' is a required property",
    ),
    "bad enum": (_broken(lambda e: e.update(action="LOOK")), "/epcisBody/eventList/1/action", "is not one of"),
    "bad date": (
        _broken(lambda e: e.update(eventTime="2005-02-30T20:33:31Z")),
        "/epcisBody/eventList/1/eventTime",
        "is not a 'date-time'",
    ),
    "bad time zone offset": (
        _broken(lambda e: e.update(eventTimeZoneOffset="+8:00")),
        "/epcisBody/eventList/1/eventTimeZoneOffset",
        "does not match",
    ),
    "unknown event type": (_broken(lambda e: e.update(type="Sighting")), "/epcisBody/eventList/1/type", "'uri'"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_invalid_documents_are_refused_whole_with_the_error_located(
    client: httpx.AsyncClient, runtime: Runtime, case: str
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    body, pointer, message = INVALID[case]
    response = await post_capture(client, token, body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "epcisException:ValidationException"
    assert problem["status"] == 400
    assert problem["title"]
    assert any(e["pointer"] == pointer and message in e["message"] for e in problem["errors"]), problem
    assert problem["detail"].startswith(problem["errors"][0]["pointer"])
    assert await count_events(runtime, brand.id) == 0, "the valid first event is refused with the document"


async def test_bodies_that_are_not_epcis_documents(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    not_json = await client.post(
        "/epcis/capture", content=b"{not json", headers={**bearer(token), "content-type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["type"]) == (400, "epcisException:ValidationException")
    event_only = await post_capture(client, token, object_event("A"))
    assert event_only.status_code == 400
    assert event_only.json()["errors"][0]["pointer"] == "/type"
    xml = await client.post("/epcis/capture", content=b"<x/>", headers={**bearer(token), "content-type": "text/xml"})
    assert (xml.status_code, xml.json()["type"]) == (415, "epcisException:UnsupportedMediaTypeException")
    behaviour = await post_capture(client, token, document(object_event("A")), behaviour="sometimes")
    assert behaviour.status_code == 400


async def test_too_many_events_is_a_capture_limit_error(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    monkeypatch.setattr(capture, "CAPTURE_LIMIT", 2)
    response = await post_capture(client, token, document(*(object_event(str(i)) for i in range(3))))
    assert response.status_code == 413
    assert response.json()["type"] == "epcisException:CaptureLimitExceededException"


async def test_recapture_is_idempotent(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    body = example("9.6.3-AggregationEvent.jsonld")
    first = await capture_ok(client, token, body)
    again = await capture_ok(client, token, body)
    assert (first["storedCount"], again["storedCount"], again["duplicateCount"]) == (1, 0, 1)
    assert again["success"] is True
    # The same event under another eventID (or none) has the same canonical hash: not stored twice.
    renamed = copy.deepcopy(body)
    renamed["epcisBody"]["eventList"][0]["eventID"] = "urn:uuid:0b7a5e2c-1111-4222-8333-444455556666"
    unnamed = copy.deepcopy(body)
    del unnamed["epcisBody"]["eventList"][0]["eventID"]
    for variant in (renamed, unnamed):
        job = await capture_ok(client, token, variant)
        assert (job["storedCount"], job["duplicateCount"]) == (0, 1)
    # One document holding the same event twice stores it once.
    twice = document(object_event("T1"), object_event("T1"))
    job = await capture_ok(client, token, twice)
    assert (job["storedCount"], job["duplicateCount"]) == (1, 1)
    assert await count_events(runtime, brand.id) == 2
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await log.size(session, brand.id) == 2


async def test_event_without_id_gets_its_hash_as_event_id(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(object_event("H1")))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(TraceEvent))
        assert row is not None
        assert row.event_id == row.hash_id
        assert row.hash_id.startswith("ni:///sha-256;")
        assert row.hash_id.endswith("?ver=CBV2.0")
        assert row.body["eventID"] == row.hash_id


def _with_bad_epc() -> dict[str, Any]:
    # Schema-valid, but the Digital Link's GTIN has a wrong check digit.
    bad = object_event("B1", epcList=["https://id.gs1.org/01/09506000134351/21/B1"])
    return document(object_event("G1"), bad, object_event("G2"))


async def test_rollback_stores_nothing_when_an_event_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    job = await capture_ok(client, token, _with_bad_epc())
    assert (job["running"], job["success"], job["storedCount"]) == (False, False, 0)
    [error] = job["errors"]
    assert error["type"] == "epcisException:ValidationException"
    assert error["pointer"] == "/epcisBody/eventList/1/epcList/0"
    assert "check digit" in error["detail"]
    assert await count_events(runtime, brand.id) == 0


async def test_proceed_stores_the_events_without_problems(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    job = await capture_ok(client, token, _with_bad_epc(), behaviour="proceed")
    assert (job["success"], job["storedCount"], job["captureErrorBehaviour"]) == (False, 2, "proceed")
    assert [e["pointer"] for e in job["errors"]] == ["/epcisBody/eventList/1/epcList/0"]
    assert await count_events(runtime, brand.id) == 2


async def test_event_id_used_by_another_event_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(
        client, token, document(object_event("E1", eventID="urn:uuid:00000000-0000-4000-8000-00000000000e"))
    )
    clash = document(object_event("E2", eventID="urn:uuid:00000000-0000-4000-8000-00000000000e"))
    job = await capture_ok(client, token, clash)
    assert job["success"] is False
    assert "already used by a different event" in job["errors"][0]["detail"]
    assert await count_events(runtime, brand.id) == 1


async def test_large_documents_go_through_the_outbox(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    monkeypatch.setattr(capture, "INLINE_EVENT_LIMIT", 2)
    response = await post_capture(client, token, document(*(object_event(f"L{i}") for i in range(5))))
    assert response.status_code == 202
    location = response.headers["location"]
    pending = (await client.get(location, headers=bearer(token))).json()
    assert (pending["running"], pending["storedCount"]) == (True, 0)
    assert await Worker(runtime.db).run_once() >= 1
    done = (await client.get(location, headers=bearer(token))).json()
    assert (done["running"], done["success"], done["storedCount"]) == (False, True, 5)
    assert "finishedAt" in done
    assert await count_events(runtime, brand.id) == 5
    listed = (await client.get("/epcis/capture", headers=bearer(token))).json()
    assert [j["captureID"] for j in listed] == [location.rsplit("/", 1)[1]]


async def test_capture_jobs_are_paged(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    for i in range(3):
        await capture_ok(client, token, document(object_event(f"P{i}")))
    first = await client.get("/epcis/capture?perPage=2", headers=bearer(token))
    assert len(first.json()) == 2
    link = first.headers["link"]
    assert link.endswith('>; rel="next"')
    second = await client.get(link[1 : link.index(">")], headers=bearer(token))
    assert len(second.json()) == 1
    assert "link" not in second.headers
    assert not {j["captureID"] for j in first.json()} & {j["captureID"] for j in second.json()}
    unknown = await client.get("/epcis/capture/not-a-job", headers=bearer(token))
    assert (unknown.status_code, unknown.json()["type"]) == (404, "epcisException:NoSuchResourceException")


async def test_single_event_capture(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    event = {"@context": [CONTEXT], **object_event("S1", eventID="urn:uuid:5e000000-0000-4000-8000-000000000001")}
    created = await client.post("/epcis/events", json=event, headers=bearer(token))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/epcis/events/urn%3Auuid%3A5e000000-0000-4000-8000-000000000001"
    again = await client.post("/epcis/events", json=event, headers=bearer(token))
    assert (again.status_code, again.json()["type"]) == (409, "epcisException:ResourceAlreadyExistsException")
    assert again.headers["location"] == created.headers["location"]
    fetched = await client.get(created.headers["location"], headers=bearer(token))
    assert fetched.status_code == 200
    [stored] = fetched.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert stored["eventID"] == event["eventID"]
    no_context = await client.post("/epcis/events", json=object_event("S2"), headers=bearer(token))
    assert no_context.status_code == 400
    assert any("@context" in e["message"] for e in no_context.json()["errors"])
    assert await count_events(runtime, brand.id) == 1


async def test_capture_needs_the_capture_permission(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    reader = await make_token(runtime, brand, scopes=["trace.read"])
    refused = await post_capture(client, reader, document(object_event("X")))
    assert refused.status_code == 403
    assert refused.json()["type"] == "epcisException:SecurityException"
    anonymous = await client.post("/epcis/capture", json=document(object_event("X")))
    assert (anonymous.status_code, anonymous.json()["type"]) == (401, "epcisException:SecurityException")
    capturer = await make_token(runtime, brand, scopes=["trace.capture"])
    assert (await post_capture(client, capturer, document(object_event("X")))).status_code == 202
    no_read = await client.get("/epcis/events", headers=bearer(capturer))
    assert no_read.status_code == 403


async def test_epcs_are_indexed_in_canonical_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, example("9.6.4-TransformationEvent.jsonld"))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        epcs = set((await session.execute(select(TraceEventEpc.role, TraceEventEpc.epc))).all())
    assert (4, "https://id.gs1.org/01/04012345111224/21/25") in epcs  # inputEPCList
    assert (5, "https://id.gs1.org/01/04012345778892/21/28") in epcs  # outputEPCList
    assert (13, "https://id.gs1.org/01/04012345666663") in epcs  # idpat in inputQuantityList
    assert len(epcs) == 9


def _reading(measurement: str) -> dict[str, Any]:
    return object_event(
        "COLD1",
        action="OBSERVE",
        bizStep="inspecting",
        disposition="in_transit",
        sensorElementList=[
            {
                "sensorMetadata": {"time": "2024-05-01T07:59:00+08:00"},
                "sensorReport": [{"type": measurement, "exception": "ALARM_CONDITION", "value": 9.5, "uom": "CEL"}],
            }
        ],
    )


async def test_a_sensor_reading_in_any_vocabulary_form_is_stored_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    first = await capture_ok(client, token, document(_reading("Temperature")))
    assert (first["storedCount"], first["duplicateCount"]) == (1, 0)
    for form in ("gs1:Temperature",):  # the schema refuses the full https://gs1.org/voc/ URI here
        again = await capture_ok(client, token, document(_reading(form)))
        assert (again["storedCount"], again["duplicateCount"]) == (0, 1), form
    assert await count_events(runtime, brand.id) == 1
