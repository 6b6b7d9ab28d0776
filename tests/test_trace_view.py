"""The trace of a code: its own events and, while packed, its case's and pallet's; proofs that verify;
the consumer variant without operators; the console page; brand isolation. Both tiers."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date

import httpx

from tests.factories import bearer, console_login, make_brand, make_token, system_actor
from tests.test_codes_api import GTIN, run_jobs
from tests.test_codes_custody import Line, setup_line
from tests.test_trace_log import sign
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import LotDraft
from zhongtai.core.runtime import Runtime
from zhongtai.trace import checkpoint, merkle
from zhongtai.trace.view import trace_of

OPERATOR_EMAIL = "dock.operator@brand.example"
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"zt": "https://zhongtai.dev/ns/epcis/"}]


def at(hour: int) -> str:
    return f"2025-03-01T{hour:02d}:00:00+08:00"


def item_uri(serial: str) -> str:
    return f"https://id.gs1.org/01/{GTIN}/21/{serial}"


def sscc_uri(sscc: str) -> str:
    return f"https://id.gs1.org/00/{sscc}"


@dataclass
class Packed:
    line: Line
    items: list[str]
    case: str
    other_case: str
    pallet: str


async def _capture(client: httpx.AsyncClient, line: Line, event: dict) -> None:
    document = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-03-01T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    }
    response = await client.post("/epcis/capture", json=document, headers=line.auth)
    assert response.status_code == 202, response.text
    job = (await client.get(response.headers["location"], headers=line.auth)).json()
    assert (job["success"], job["storedCount"]) == (True, 1), job


async def _step(client: httpx.AsyncClient, line: Line, path: str, body: dict) -> None:
    response = await client.post(f"/api/v1/codes/{path}", json=body, headers=line.auth)
    assert response.status_code == 200, response.text


async def packed_line(client: httpx.AsyncClient, runtime: Runtime) -> Packed:
    """Three bottles into a case at 10:00, the case (and another) onto a pallet at 11:00 / 11:30, the
    pallet shipped at 12:00, the first bottle taken out at 13:00, the case inspected at 14:00."""
    line = await setup_line(client, runtime, commission=False)
    async with runtime.db.unit_of_work(tenant_id=line.brand.id) as session:
        lot = await catalog.do_create_lot(
            session,
            system_actor(line.brand.id),
            line.product_id,
            LotDraft(
                lot_number="L2025",
                produced_on=date(2025, 2, 28),
                expires_on=date(2027, 2, 28),
                factory="Factory 2",
                line="Line 3",
            ),
        )
    items, cases, pallets = line.serials["item"][:3], line.serials["case"], line.serials["pallet"]
    commission = {"event_time": at(9), "read_point": "Factory 2 / line 3"}
    await _step(client, line, "commission", {"codes": items, "lot_id": str(lot.id), **commission})
    await _step(client, line, "commission", {"codes": [cases[0], cases[1], pallets[0]], **commission})
    await _step(client, line, "pack", {"parent": cases[0], "children": items, "event_time": at(10)})
    await _step(client, line, "pack", {"parent": pallets[0], "children": [cases[0]], "event_time": at(11)})
    await _step(
        client, line, "pack", {"parent": pallets[0], "children": [cases[1]], "event_time": "2025-03-01T11:30:00+08:00"}
    )
    await _capture(
        client,
        line,
        {
            "type": "ObjectEvent",
            "eventTime": at(12),
            "eventTimeZoneOffset": "+08:00",
            "epcList": [sscc_uri(pallets[0])],
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.DOCK7"},
            "bizLocation": {"id": "urn:epc:id:sgln:6901234.00001.0"},
            "zt:actor": OPERATOR_EMAIL,
        },
    )
    await _step(client, line, "unpack", {"parent": cases[0], "children": items[:1], "event_time": at(13)})
    await _capture(
        client,
        line,
        {
            "type": "ObjectEvent",
            "eventTime": at(14),
            "eventTimeZoneOffset": "+08:00",
            "epcList": [sscc_uri(cases[0])],
            "action": "OBSERVE",
            "bizStep": "inspecting",
        },
    )
    await run_jobs(runtime)
    return Packed(line, items, cases[0], cases[1], pallets[0])


def _steps(entries: list) -> list[tuple[str, str | None, str | None]]:
    return [(e.body.get("bizStep"), e.body.get("action"), e.via) for e in entries]


async def test_trace_follows_the_case_and_pallet_while_packed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    packed = await packed_line(client, runtime)
    case, pallet = sscc_uri(packed.case), sscc_uri(packed.pallet)
    async with runtime.db.unit_of_work(tenant_id=packed.line.brand.id) as session:
        taken_out = await trace_of(session, packed.line.brand.id, item_uri(packed.items[0]))
        still_in = await trace_of(session, packed.line.brand.id, f"urn:epc:id:sgtin:6901234.056789.{packed.items[1]}")

    assert _steps(taken_out.entries) == [
        ("commissioning", "ADD", None),
        ("packing", "ADD", None),
        ("packing", "ADD", case),  # the case onto the pallet
        ("shipping", "OBSERVE", pallet),  # captured for the pallet only
        ("unpacking", "DELETE", None),
    ], "the other case's packing onto the pallet and the case's inspection after 13:00 are not the bottle's"
    assert [(i.container, i.depth, i.end is not None) for i in taken_out.intervals] == [
        (case, 1, True),
        (pallet, 2, True),
    ]
    assert _steps(still_in.entries) == [
        ("commissioning", "ADD", None),
        ("packing", "ADD", None),
        ("packing", "ADD", case),
        ("shipping", "OBSERVE", pallet),
        ("inspecting", "OBSERVE", case),
    ]
    times = [e.event.event_time for e in still_in.entries]
    assert times == sorted(times)
    assert [e.leaf_index is not None for e in still_in.entries] == [True] * 5
    assert len({e.leaf_index for e in still_in.entries}) == 5


async def test_trace_api_steps_carry_proofs_that_verify(client: httpx.AsyncClient, runtime: Runtime) -> None:
    packed = await packed_line(client, runtime)
    line = packed.line
    unsigned = (await client.get("/api/v1/trace", params={"code": packed.items[1]}, headers=line.auth)).json()
    assert unsigned["log"] is None
    assert [(s["pending"], s["proof"]) for s in unsigned["steps"]] == [(True, None)] * 5

    await sign(runtime, line.brand.id)
    english = {**line.auth, "accept-language": "en"}
    response = await client.get("/api/v1/trace", params={"code": item_uri(packed.items[1])}, headers=english)
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["product"] == {"name": trace["product"]["name"], "gtin": GTIN}
    assert trace["lot"] == {
        "number": "L2025",
        "produced_on": "2025-02-28",
        "expires_on": "2027-02-28",
        "factory": "Factory 2",
        "line": "Line 3",
    }
    assert trace["code"]["state"] == "packed"
    assert trace["code"]["container"]["serial"] == packed.case
    assert trace["batch"]["id"] == line.batches["item"]["id"]
    steps = trace["steps"]
    assert [(s["what"]["biz_step"], s["what"]["label"], s["via"]) for s in steps] == [
        ("commissioning", "Commissioned", None),
        ("packing", "Packed", None),
        ("packing", "Packed", sscc_uri(packed.case)),
        ("shipping", "Shipped", sscc_uri(packed.pallet)),
        ("inspecting", "Inspected", sscc_uri(packed.case)),
    ]
    assert steps[0]["time"] == "2025-03-01T09:00:00.000+08:00"
    assert steps[0]["where"]["read_point_name"] == "Factory 2 / line 3"
    assert steps[3]["where"] == {
        "read_point": "urn:epc:id:sgln:6901234.00001.DOCK7",
        "read_point_name": None,
        "biz_location": "urn:epc:id:sgln:6901234.00001.0",
    }
    assert steps[3]["who"] == OPERATOR_EMAIL
    assert steps[0]["who"] == "token:test token"
    assert steps[0]["event_id"].startswith("ni:///sha-256;")

    keys = (await client.get(f"/epcis/log/{line.brand.tenant.slug}/public-key")).json()
    assert trace["log"]["public_key_url"] == f"/epcis/log/{line.brand.tenant.slug}/public-key"
    _name, public_key = checkpoint.parse_public_key(keys["current"]["verifier_key"])
    for step in steps:
        assert step["pending"] is False
        verdict = checkpoint.verify_inclusion_bundle(
            trace["log"]["checkpoint"], public_key, step["proof"], step["hash_id"]
        )
        assert verdict.ok, verdict.message
    tampered = {**steps[1]["proof"], "leaf_index": steps[2]["proof"]["leaf_index"]}
    assert not checkpoint.verify_inclusion_bundle(
        trace["log"]["checkpoint"], public_key, tampered, steps[1]["hash_id"]
    ).ok

    # A step captured after the latest signed head is pending, the others still verify.
    await _capture(
        client,
        line,
        {
            "type": "ObjectEvent",
            "eventTime": at(15),
            "eventTimeZoneOffset": "+08:00",
            "epcList": [item_uri(packed.items[1])],
            "action": "OBSERVE",
            "bizStep": "receiving",
        },
    )
    later = (await client.get("/api/v1/trace", params={"code": packed.items[1]}, headers=line.auth)).json()
    assert [s["pending"] for s in later["steps"]] == [False] * 5 + [True]
    assert later["steps"][-1]["leaf_index"] == trace["log"]["tree_size"]


async def test_public_trace_data_hides_operators(client: httpx.AsyncClient, runtime: Runtime) -> None:
    packed = await packed_line(client, runtime)
    line = packed.line
    await sign(runtime, line.brand.id)
    url = f"/h5/{line.brand.tenant.slug}/trace-data"
    response = await client.get(url, params={"code": packed.items[1]}, headers={"accept-language": "zh-CN"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"product", "lot", "code", "log", "steps"}
    assert data["lot"]["number"] == "L2025"
    assert [s["what"]["label"] for s in data["steps"]][:2] == ["已激活", "已装箱"]
    assert all("who" not in s and "event_id" not in s for s in data["steps"])
    for secret in (OPERATOR_EMAIL, "token:test token", line.brand.owner.email, line.batches["item"]["id"]):
        assert secret not in response.text
    leaf = merkle.leaf_hash(data["steps"][3]["hash_id"].encode())
    proof = data["steps"][3]["proof"]
    root = checkpoint.parse_checkpoint(data["log"]["checkpoint"]).root_hash
    path = [base64.b64decode(node) for node in proof["inclusion_path"]]
    assert merkle.verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"], path, root)

    assert (await client.get(url, params={"code": "AAAAAAAAAAAAAAAA"})).status_code == 404
    assert (await client.get("/h5/no-such-brand/trace-data", params={"code": packed.items[1]})).status_code == 404


async def test_console_trace_page_marks_verified_steps(client: httpx.AsyncClient, runtime: Runtime) -> None:
    packed = await packed_line(client, runtime)
    line = packed.line
    await sign(runtime, line.brand.id)
    await console_login(client, line.brand.owner.email)
    page = await client.get("/console/trace", params={"code": packed.items[0]}, headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.text.count('data-verified="true"') == 5
    assert 'data-verified="false"' not in page.text
    assert packed.case in page.text
    assert packed.pallet in page.text
    assert re.search(r'id="packing-tree"', page.text)
    empty = await client.get("/console/trace", headers={"accept": "text/html"})
    assert empty.status_code == 200
    unknown = await client.get("/console/trace", params={"code": "AAAAAAAAAAAAAAAA"}, headers={"accept": "text/html"})
    assert unknown.status_code == 200
    assert 'id="trace-error"' in unknown.text


async def test_trace_of_another_brand_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    packed = await packed_line(client, runtime)
    other = await make_brand(runtime)
    token = await make_token(runtime, other)
    foreign = await client.get("/api/v1/trace", params={"code": packed.items[1]}, headers=bearer(token))
    assert foreign.status_code == 404
    assert packed.items[1] not in foreign.text
    public = await client.get(f"/h5/{other.tenant.slug}/trace-data", params={"code": packed.items[1]})
    assert public.status_code == 404
    async with runtime.db.unit_of_work(tenant_id=other.id) as session:
        assert (await trace_of(session, other.id, item_uri(packed.items[1]))).entries == []


SHIPPING_DECLARED = {
    "declarationTime": "2025-03-02T09:30:00+08:00",
    "reason": "incorrect_data",
    "correctiveEventIDs": ["urn:uuid:8c5e0a1e-0000-4000-8000-00000000c0de"],
}


async def _declare_shipping_in_error(client: httpx.AsyncClient, packed: Packed) -> None:
    """The pallet's shipping event (12:00) re-sent with an errorDeclaration: same hash ID, declaration recorded."""
    await _capture_declaration(
        client,
        packed.line,
        {
            "type": "ObjectEvent",
            "eventTime": at(12),
            "eventTimeZoneOffset": "+08:00",
            "epcList": [sscc_uri(packed.pallet)],
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.DOCK7"},
            "bizLocation": {"id": "urn:epc:id:sgln:6901234.00001.0"},
            "zt:actor": OPERATOR_EMAIL,
            "errorDeclaration": SHIPPING_DECLARED,
        },
    )


async def _capture_declaration(client: httpx.AsyncClient, line: Line, event: dict) -> None:
    document = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-03-02T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    }
    response = await client.post("/epcis/capture", json=document, headers=line.auth)
    assert response.status_code == 202, response.text
    job = (await client.get(response.headers["location"], headers=line.auth)).json()
    assert (job["success"], job["storedCount"], job["duplicateCount"]) == (True, 0, 1), job


async def test_a_step_declared_in_error_shows_its_declaration(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """The trace API, the consumer's data and the console page show that a step was declared in error:
    its reason (in the caller's language), the declaration time and the corrective events."""
    packed = await packed_line(client, runtime)
    line = packed.line
    before = (await client.get("/api/v1/trace", params={"code": packed.items[1]}, headers=line.auth)).json()
    assert [s["error_declaration"] for s in before["steps"]] == [None] * 5
    await _declare_shipping_in_error(client, packed)
    await sign(runtime, line.brand.id)

    english = {**line.auth, "accept-language": "en"}
    trace = (await client.get("/api/v1/trace", params={"code": packed.items[1]}, headers=english)).json()
    steps = trace["steps"]
    assert [s["what"]["biz_step"] for s in steps] == ["commissioning", "packing", "packing", "shipping", "inspecting"]
    assert [s["error_declaration"] is not None for s in steps] == [False, False, False, True, False]
    assert steps[3]["error_declaration"] == {
        "declared_at": "2025-03-02T09:30:00.000+08:00",
        "reason": "incorrect_data",
        "label": "The event's data were incorrect",
        "corrective_event_ids": SHIPPING_DECLARED["correctiveEventIDs"],
    }
    assert steps[3]["pending"] is False, "the declared step keeps its own leaf and proof"

    public = await client.get(
        f"/h5/{line.brand.tenant.slug}/trace-data",
        params={"code": packed.items[1]},
        headers={"accept-language": "zh-CN"},
    )
    assert public.status_code == 200, public.text
    declared = public.json()["steps"][3]["error_declaration"]
    assert (declared["reason"], declared["label"]) == ("incorrect_data", "该事件的数据有误")
    assert declared["corrective_event_ids"] == SHIPPING_DECLARED["correctiveEventIDs"]
    assert OPERATOR_EMAIL not in public.text

    await console_login(client, line.brand.owner.email)
    for language, words in (
        ("en", ("Declared in error", "The event&#39;s data were incorrect", "Corrected by")),
        (
            "zh-CN",
            ("已声明为错误", "该事件的数据有误", "更正事件"),
        ),
    ):
        page = await client.get(
            "/console/trace",
            params={"code": packed.items[1]},
            headers={"accept": "text/html", "accept-language": language},
        )
        assert page.status_code == 200, page.text
        assert page.text.count('data-declared="error"') == 1
        assert page.text.count("declared-in-error") == 1
        for word in words:
            assert word in page.text, (language, word)
        assert "2025-03-02 09:30:00 +08:00" in page.text
        assert SHIPPING_DECLARED["correctiveEventIDs"][0] in page.text
        assert page.text.count('data-verified="true"') == 5


def test_consumer_trace_partial_points_at_the_public_data() -> None:
    from types import SimpleNamespace

    from zhongtai.kit.rendering import templates

    html = templates.get_template("h5/_trace.html").render(
        _=lambda message, **values: message, tenant=SimpleNamespace(slug="moutai-demo"), code="https://x/01/1?a=<b>"
    )
    assert 'data-url="/h5/moutai-demo/trace-data?code=https%3A//x/01/1%3Fa%3D%3Cb%3E"' in html
    assert '<script src="/static/trace-verify.js"></script>' in html
    assert '<script src="/static/trace-view.js"></script>' in html
    assert 'data-declared="Declared in error" data-corrected="Corrected by"' in html
