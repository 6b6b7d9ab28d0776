"""What EPCIS capture refuses at the door, on both tiers: numbers JSON cannot carry (NaN, Infinity,
1e400), documents nested too deeply, over-long EPCs; and no stored value can make a query fail."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.factories import bearer, make_brand, make_token
from tests.test_trace_epcis_capture import capture_ok, count_events, document, object_event
from zhongtai.core.runtime import Runtime

CLASS = "urn:epc:class:lgtin:4012345.012345.998877"


def quantity_event(serial: str, quantity: str) -> str:
    """An ObjectEvent with a quantityList whose quantity is the raw JSON text `quantity`."""
    event = object_event(serial, quantityList=[{"epcClass": CLASS, "quantity": 31337, "uom": "KGM"}])
    return json.dumps(document(event)).replace("31337", quantity)


async def post_raw(client: httpx.AsyncClient, token: str, path: str, body: str) -> httpx.Response:
    return await client.post(path, content=body.encode(), headers={**bearer(token), "content-type": "application/json"})


def assert_validation_problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "epcisException:ValidationException"
    assert body["errors"]
    assert {"pointer", "message"} <= set(body["errors"][0])
    return body


@pytest.mark.parametrize("quantity", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 400 + ".5"])
async def test_non_finite_numbers_are_refused(client: httpx.AsyncClient, runtime: Runtime, quantity: str) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    assert_validation_problem(await post_raw(client, token, "/epcis/capture", quantity_event("1", quantity)))
    single = json.dumps(object_event("2", quantityList=[{"epcClass": CLASS, "quantity": 31337}]))
    assert_validation_problem(await post_raw(client, token, "/epcis/events", single.replace("31337", quantity)))
    assert await count_events(runtime, brand.id) == 0
    listed = await client.get("/epcis/events", headers=bearer(token))
    assert listed.status_code == 200, listed.text


async def test_finite_numbers_are_kept(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    job = await capture_ok(client, token, json.loads(quantity_event("1", "1.5e3")))
    assert job["success"] is True, job
    listed = await client.get("/epcis/events", headers=bearer(token))
    assert listed.status_code == 200
    event = listed.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]
    assert event["quantityList"][0]["quantity"] == 1500.0


async def test_a_stored_non_finite_number_does_not_break_queries(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await capture_ok(client, token, json.loads(quantity_event("1", "7.5")))
    if runtime.db.engine.dialect.name != "sqlite":
        pytest.skip("jsonb cannot hold NaN: only the embedded tier can have stored one")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await session.execute(text("UPDATE trace_events SET body = replace(body, '7.5', 'NaN')"))
    for url in ("/epcis/events", "/epcis/eventTypes/ObjectEvent/events"):
        response = await client.get(url, headers=bearer(token))
        assert response.status_code == 200, response.text
        event = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]
        assert event["quantityList"][0]["quantity"] == "nan"


@pytest.mark.parametrize("depth", [65, 3000])
async def test_deeply_nested_documents_are_refused(client: httpx.AsyncClient, runtime: Runtime, depth: int) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    deep = '{"example:a":' * depth + "1" + "}" * depth
    body = json.dumps(document(object_event("1", ilmd={"example:root": "PLACEHOLDER"})))
    body = body.replace('"PLACEHOLDER"', deep)
    response = await post_raw(client, token, "/epcis/capture", body)
    problem = assert_validation_problem(response)
    assert "nested deeper" in problem["detail"]
    assert "x-request-id" in response.headers
    assert await count_events(runtime, brand.id) == 0


async def test_moderately_nested_ilmd_is_captured(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    nested: Any = 1
    for _ in range(20):
        nested = {"example:a": nested}
    job = await capture_ok(client, token, document(object_event("1", ilmd={"example:root": nested})))
    assert job["success"] is True, job


async def test_over_long_identifiers_are_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    long_epc = "https://id.example.com/01/09506000134352/21/" + "a" * 600
    response = await client.post(
        "/epcis/capture", json=document(object_event("1", epcList=[long_epc])), headers=bearer(token)
    )
    problem = assert_validation_problem(response)
    assert problem["errors"][0]["pointer"] == "/epcisBody/eventList/0/epcList/0"
    place = object_event("2", bizLocation={"id": "urn:epc:id:sgln:9506000.13435." + "9" * 600})
    single = await client.post("/epcis/events", json=place, headers=bearer(token))
    assert assert_validation_problem(single)["errors"][0]["pointer"] == "/bizLocation/id"
    assert await count_events(runtime, brand.id) == 0
