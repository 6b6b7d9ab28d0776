"""The consumer's scan over HTTP: the resolver's answers (page, JSON, linkset, redirects, errors), PIN
verification with each verdict, attempt limits, location and clone detection. Both tiers."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from tests.factories import bearer, make_token
from tests.test_codes_api import GTIN, run_jobs
from tests.test_codes_custody import Line, setup_line
from zhongtai.app import create_app
from zhongtai.authenticity import hot, persist, resolver
from zhongtai.catalog.models import Product
from zhongtai.codes import service as codes_service
from zhongtai.codes.models import CodeBatch
from zhongtai.codes.rules import pin_for
from zhongtai.core.runtime import Runtime

SHANGHAI = {"latitude": 31.2304, "longitude": 121.4737, "accuracy": 25}
BEIJING = {"latitude": 39.9042, "longitude": 116.4074, "accuracy": 40}
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 MicroMessenger/8.0.40"
HTML = {"accept": "text/html", "user-agent": PHONE_UA}
JSON = {"accept": "application/json"}


@dataclass
class Scene:
    line: Line
    pins: dict[str, str]

    @property
    def items(self) -> list[str]:
        return self.line.serials["item"]

    def path(self, serial: str) -> str:
        return f"/01/{GTIN}/21/{serial}"


async def scene(client: httpx.AsyncClient, runtime: Runtime, *, commission: bool = True) -> Scene:
    line = await setup_line(client, runtime, commission=commission)
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        batch = await session.scalar(select(CodeBatch).where(CodeBatch.id == uuid.UUID(line.batches["item"]["id"])))
        assert batch is not None
        key = await codes_service.pin_key(session, runtime.crypto, int(batch.pin_key_version or 0))
    return Scene(line, {serial: pin_for(key, serial) for serial in line.serials["item"]})


async def settle(runtime: Runtime) -> None:
    """Persist the scan stream (PostgreSQL + Redis: checks are written behind), then run the jobs."""
    if hot.enabled(runtime):
        await persist.ScanPersister(runtime, consumer="tests").drain()
    await run_jobs(runtime)


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10**8:08d}"


async def verify(client: httpx.AsyncClient, serial: str, pin: str, **extra: object) -> httpx.Response:
    return await client.post("/api/v1/authenticity/verify", json={"code": serial, "pin": pin, **extra})


def other_client(runtime: Runtime, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime), client=(address, 4444))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_page_json_and_view_counts(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[0]
    page = await client.get(s.path(serial), headers=HTML)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "飞天 53%vol 500ml" in page.text
    assert serial in page.text
    assert 'id="pin-form"' in page.text
    assert f'data-url="/h5/{s.line.brand.tenant.slug}/trace-data?code=' in page.text
    assert "zt_cid" in page.headers.get("set-cookie", "")
    assert f'href="/h5/{s.line.brand.tenant.slug}/report?code=' in page.text  # report a suspected fake
    assert len(page.content) < 12_000  # small HTML for a weak phone
    data = (await client.get(s.path(serial), headers=JSON)).json()
    assert data["code"] == {
        "serial": serial,
        "uri": f"http://127.0.0.1:8000/01/{GTIN}/21/{serial}",
        "level": "item",
        "state": "commissioned",
        "has_pin": True,
    }
    assert data["product"]["gtin"] == GTIN
    assert data["scans"] == {"views": 2, "verifications": 0, "first_verified_at": None, "first_verified_city": None}
    assert data["links"]["verificationService"] == "http://testserver/api/v1/authenticity/verify"
    english = await client.get(s.path(serial) + "?lang=en", headers=HTML)
    assert "Scratch off the coating" in english.text
    assert "zt_lang=en" in english.headers["set-cookie"]


async def test_linkset_and_link_type_redirects(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[1]
    response = await client.get(s.path(serial) + "?linkType=all")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/linkset+json"
    (entry,) = response.json()["linkset"]
    assert entry["anchor"] == f"http://127.0.0.1:8000/01/{GTIN}/21/{serial}"
    assert entry["https://gs1.org/voc/pip"][0]["href"] == f"http://testserver{s.path(serial)}"
    assert entry["https://gs1.org/voc/verificationService"][0]["type"] == "application/json"
    trace = entry["https://gs1.org/voc/traceability"][0]["href"]
    assert trace.startswith(f"http://testserver/h5/{s.line.brand.tenant.slug}/trace-data?code=")
    redirect = await client.get(s.path(serial) + "?linkType=gs1:traceability")
    assert (redirect.status_code, redirect.headers["location"]) == (307, trace)


async def test_lot_form_short_links_and_sscc(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[2]
    with_lot = await client.get(f"/01/{GTIN}/10/ANYLOT/21/{serial}", headers=HTML)
    assert with_lot.status_code == 200
    assert serial in with_lot.text
    short = await client.get(f"/s/{serial.lower()}")
    assert (short.status_code, short.headers["location"]) == (301, s.path(serial))
    sscc = s.line.serials["case"][0]
    case_page = await client.get(f"/00/{sscc}", headers=HTML)
    assert case_page.status_code == 200
    assert 'id="pin-form"' not in case_page.text  # logistic units carry no PIN
    no_pin = await verify(client, sscc, "12345678")
    assert (no_pin.status_code, no_pin.json()["error"]) == (400, "code_has_no_pin")
    case_short = await client.get(f"/c/{s.line.serials['item'][3]}")
    assert case_short.status_code == 301


async def test_a_bottle_shows_its_own_specification_and_a_case_its_packaging(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    s = await scene(client, runtime)
    async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
        product = await session.scalar(select(Product).where(Product.id == s.line.product_id))
        assert product is not None
        assert product.items_per_case == 6
        product.specification = "500ml"
    resolver.caches.clear()
    bottle = await client.get(s.path(s.items[0]), headers=HTML)
    assert '<p class="muted">500ml</p>' in bottle.text
    assert "× 6" not in bottle.text  # one bottle is not the case it came in
    assert (await client.get(s.path(s.items[0]), headers=JSON)).json()["product"]["specification"] == "500ml"
    case_page = await client.get(f"/00/{s.line.serials['case'][0]}", headers=HTML)
    assert "500ml × 6" in case_page.text


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/01/{gtin}/21/AAAAAAAAAAAAAAAA", 404, "code_not_found"),  # unknown serial
        ("/01/06901234567893/21/{serial}", 400, "code_unreadable"),  # GTIN check digit wrong
        ("/01/04006381333931/21/{serial}", 404, "code_not_found"),  # a valid GTIN of no brand here
        ("/00/{serial}", 400, "code_unreadable"),  # an item serial is no SSCC
        ("/00/123456789012345678", 400, "code_unreadable"),  # SSCC check digit wrong
        ("/01/{gtin}", 400, "code_unreadable"),  # no serial
        ("/01/{gtin}/21/{serial}/22/x", 400, "code_unreadable"),
        ("/s/not-a-serial", 400, "code_unreadable"),
        ("/s/AAAAAAAAAAAAAAAA", 404, "code_not_found"),
    ],
)
async def test_unknown_malformed_and_foreign_codes(
    client: httpx.AsyncClient, runtime: Runtime, path: str, status: int, error: str
) -> None:
    s = await scene(client, runtime)
    url = path.format(gtin=GTIN, serial=s.items[0])
    as_json = await client.get(url, headers=JSON)
    assert (as_json.status_code, as_json.json()["error"]) == (status, error), as_json.text
    page = await client.get(url, headers=HTML)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert ("无法识别此码" if status == 404 else "这不是商品码") in page.text


async def test_verdicts_genuine_then_verified_before_with_place(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[0]
    first = await verify(client, s.path(serial), s.pins[serial], **SHANGHAI)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["verdict"], body["reason"], body["verification_number"]) == ("genuine", None, 1)
    assert body["first_verified_city"] == "上海市"
    assert body["title"] == "正品"
    again = (await verify(client, serial, s.pins[serial])).json()
    assert (again["verdict"], again["verification_number"], again["first_verified_city"]) == (
        "verified_before",
        2,
        "上海市",
    )
    assert again["first_verified_at"] == body["first_verified_at"]
    assert "上海市" in again["message"]
    page = await client.get(s.path(serial), headers=HTML)
    assert "上海市" in page.text


async def test_uncommissioned_code_is_suspicious(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime, commission=False)
    serial = s.items[0]
    body = (await verify(client, serial, s.pins[serial])).json()
    assert (body["verdict"], body["reason"]) == ("suspicious", "not_commissioned")


async def test_clone_detected_from_far_apart_checks(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[4]
    assert (await verify(client, serial, s.pins[serial], **SHANGHAI)).json()["verdict"] == "genuine"
    clone = (await verify(client, serial, s.pins[serial], **BEIJING)).json()
    assert (clone["verdict"], clone["reason"]) == ("suspicious", "clone")
    later = (await verify(client, serial, s.pins[serial])).json()
    assert (later["verdict"], later["reason"]) == ("suspicious", "clone")
    await settle(runtime)
    alerts = (await client.get("/api/v1/authenticity/clone-alerts", headers=s.line.auth)).json()
    assert len(alerts) == 1
    assert alerts[0]["serial"] == serial
    assert 1000 < alerts[0]["distance_km"] < 1100
    assert alerts[0]["evidence"]["first"]["city_name"] == "上海市"
    assert alerts[0]["evidence"]["second"]["city_name"] == "北京市"
    moved = await client.post(
        f"/api/v1/authenticity/clone-alerts/{alerts[0]['id']}",
        json={"status": "confirmed", "note": "two bottles seen"},
        headers=s.line.auth,
    )
    assert (moved.status_code, moved.json()["status"], moved.json()["resolved_by"]) == (
        200,
        "confirmed",
        "token:test token",
    )


async def test_wrong_pins_lock_the_code_but_not_others(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    contact = {"contact": "400-100-2000"}
    assert (await client.patch("/api/v1/authenticity/settings", json=contact, headers=s.line.auth)).status_code == 200
    target, other = s.items[5], s.items[6]
    lefts = []
    for _ in range(5):
        answer = await verify(client, target, wrong(s.pins[target]))
        assert answer.status_code == 200
        assert answer.json()["verdict"] == "wrong_pin"
        lefts.append(answer.json()["attempts_left"])
    assert lefts == [4, 3, 2, 1, 0]
    locked = await verify(client, target, s.pins[target])  # the right PIN, too late
    assert locked.status_code == 429
    assert locked.json()["error"] == "pin_locked"
    assert locked.json()["data"]["locked_by"] == "code"
    assert int(locked.headers["retry-after"]) > 0
    assert locked.json()["data"]["contact"] == "400-100-2000"
    again = await verify(client, target, s.pins[target])  # answered from the remembered lock
    assert (again.status_code, again.json()["data"]["contact"]) == (429, "400-100-2000")
    async with other_client(runtime, "10.9.9.9") as elsewhere:
        from_elsewhere = await verify(elsewhere, target, s.pins[target])
        assert from_elsewhere.status_code == 429  # the code is locked
        assert from_elsewhere.json()["data"]["contact"] == "400-100-2000"
        assert (await verify(elsewhere, other, s.pins[other])).json()["verdict"] == "genuine"
    assert (await verify(client, other, s.pins[other])).json()["verdict"] == "verified_before"


async def test_ten_thousand_guesses_get_nowhere(client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.settings.scan_requests_per_minute = 100_000  # measure the PIN limits, not the request limit
    s = await scene(client, runtime)
    target = s.items[7]
    right = s.pins[target]
    guesses = [pin for pin in (f"{guess:08d}" for guess in range(10_001)) if pin != right][:10_000]
    verdicts: dict[str, int] = {}
    for start in range(0, len(guesses), 50):  # 50 at a time, as a script would
        chunk = guesses[start : start + 50]
        for response in await asyncio.gather(*(verify(client, target, pin) for pin in chunk)):
            key = response.json().get("verdict") or response.json()["error"]
            verdicts[key] = verdicts.get(key, 0) + 1
    assert verdicts == {"wrong_pin": 5, "pin_locked": 9_995}
    assert "genuine" not in verdicts
    assert (await verify(client, target, right)).status_code == 429
    async with other_client(runtime, "10.7.7.7") as elsewhere:
        other = s.items[8]
        assert (await verify(elsewhere, other, s.pins[other])).json()["verdict"] == "genuine"
    await settle(runtime)
    scans = (await client.get("/api/v1/authenticity/scans", params={"code": target}, headers=s.line.auth)).json()
    assert scans["summary"]["wrong_pin_count"] == 5
    assert scans["summary"]["verify_count"] == 0
    assert [scan["kind"] for scan in scans["scans"]] == ["pin_bad"] * 5


async def test_guessing_across_codes_is_stopped_per_client(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    await client.patch("/api/v1/authenticity/settings", json={"pin_attempts_per_client": 3}, headers=s.line.auth)
    from zhongtai.authenticity import service

    service._settings_cache.clear()
    for serial in s.items[:3]:
        assert (await verify(client, serial, wrong(s.pins[serial]))).json()["verdict"] == "wrong_pin"
    blocked = await verify(client, s.items[3], s.pins[s.items[3]])
    assert (blocked.status_code, blocked.json()["data"]["locked_by"]) == (429, "client")


async def test_form_post_without_javascript(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[9]
    page = await client.post(s.path(serial), data={"pin": s.pins[serial]}, headers=HTML)
    assert page.status_code == 200, page.text
    assert 'data-verdict="genuine"' in page.text
    assert "正品" in page.text
    again = await client.post(s.path(serial), data={"pin": s.pins[serial]}, headers=HTML)
    assert 'data-verdict="verified_before"' in again.text
    bad = await client.post(s.path(serial), data={"pin": "12ab"}, headers=HTML)
    assert bad.status_code == 422
    assert "8 位" in bad.text
    wrong_answer = await client.post(s.path(serial), data={"pin": wrong(s.pins[serial])}, headers=HTML)
    assert 'data-verdict="wrong_pin"' in wrong_answer.text


async def test_bad_input_is_a_clear_4xx(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[10]
    cases = [
        ({"code": serial, "pin": "1234"}, 422, "pin_invalid"),
        ({"code": serial, "pin": "abcdefgh"}, 422, "pin_invalid"),
        ({"code": serial, "pin": s.pins[serial], "latitude": 95, "longitude": 1}, 422, "location_invalid"),
        ({"code": serial, "pin": s.pins[serial], "latitude": 30}, 422, "location_invalid"),
        ({"code": "nonsense", "pin": "12345678"}, 400, "code_unreadable"),
        ({"code": "AAAAAAAAAAAAAAAA", "pin": "12345678"}, 404, "code_not_found"),
        ({"code": serial}, 422, "validation_error"),
    ]
    for body, status, error in cases:
        response = await client.post("/api/v1/authenticity/verify", json=body)
        assert (response.status_code, response.json()["error"]) == (status, error), (body, response.text)


async def test_settings_and_scan_history_api(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    settings = (await client.get("/api/v1/authenticity/settings", headers=s.line.auth)).json()
    assert settings["clone_speed_kmh"] == 800
    assert settings["pin_attempts_per_code"] == 5
    changed = await client.patch(
        "/api/v1/authenticity/settings", json={"max_verifications": 2, "contact": "400-100-2000"}, headers=s.line.auth
    )
    assert (changed.status_code, changed.json()["max_verifications"]) == (200, 2)
    refused = await client.patch("/api/v1/authenticity/settings", json={"clone_speed_kmh": 1}, headers=s.line.auth)
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_authenticity_settings")
    serial = s.items[11]
    for _ in range(3):
        last = (await verify(client, serial, s.pins[serial])).json()
    assert (last["verdict"], last["reason"], last["contact"]) == ("suspicious", "too_many", "400-100-2000")
    await settle(runtime)
    scans = (await client.get("/api/v1/authenticity/scans", params={"code": serial}, headers=s.line.auth)).json()
    assert [scan["verdict"] for scan in scans["scans"]] == ["suspicious", "verified_before", "genuine"]
    assert scans["summary"]["verify_count"] == 3
    assert (await client.get("/api/v1/authenticity/scans", params={"code": serial})).status_code == 401
    stranger = bearer(await make_token(runtime, (await setup_line(client, runtime, commission=False)).brand))
    foreign = await client.get("/api/v1/authenticity/scans", params={"code": serial}, headers=stranger)
    assert (foreign.status_code, foreign.json()["error"]) == (404, "code_not_found")
    token = bearer(await make_token(runtime, s.line.brand, scopes=["codes.read"]))
    assert (await client.get("/api/v1/authenticity/settings", headers=token)).status_code == 403
