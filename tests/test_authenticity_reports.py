"""Counterfeit reports on both tiers: the public submission with its photo limits (size, type by the
bytes themselves, count), every refusal storing nothing, idempotency (client key, natural key, and two
simultaneous submissions), the rate limit, the operators' API with triage transitions, audit and
permissions."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from tests.factories import Brand, bearer, make_brand, make_token, system_actor
from zhongtai.authenticity import reports
from zhongtai.authenticity.photos import MAX_PHOTO_BYTES, check_photo, sniff
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import ProductDraft
from zhongtai.codes import service as codes
from zhongtai.codes.generation import generate_batch
from zhongtai.codes.models import Code
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

GPS_TAG = 0x8825


def jpeg(width: int = 64, height: int = 48, *, with_gps: bool = True, color: str = "red") -> bytes:
    image = Image.new("RGB", (width, height), color)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    if with_gps:
        exif[GPS_TAG] = {1: "N", 2: (31.0, 14.0, 0.0), 3: "E", 4: (121.0, 28.0, 0.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png(width: int = 30, height: int = 20) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 128, 255, 200)).save(out, format="PNG")
    return out.getvalue()


def webp(width: int = 40, height: int = 40) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(out, format="WEBP")
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (10, 10), "blue").save(out, format="GIF")
    return out.getvalue()


FIELDS = {"where_bought": "某某超市 人民路 12 号", "price_fen": "12800", "purchased_on": "2026-11-01"}


def _url(brand: Brand) -> str:
    return f"/api/v1/public/{brand.tenant.slug}/counterfeit-reports"


async def submit(
    client: httpx.AsyncClient,
    brand: Brand,
    *,
    fields: dict[str, str] | None = None,
    photos: list[tuple[str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    files = [("photos", photo) for photo in (photos or [])]
    return await client.post(_url(brand), data=FIELDS | (fields or {}), files=files or None, headers=headers or {})


async def _report_count(runtime: Runtime, brand: Brand) -> tuple[int, int]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        reports_n = await session.scalar(select(func.count()).select_from(reports.CounterfeitReport))
        photos_n = await session.scalar(select(func.count()).select_from(reports.CounterfeitReportPhoto))
    return int(reports_n or 0), int(photos_n or 0)


def _stored_files(runtime: Runtime) -> list[Path]:
    root = runtime.settings.data_dir / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def _known_serial(runtime: Runtime, brand: Brand) -> tuple[str, uuid.UUID]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        product = await catalog.do_create_product(
            session, system_actor(brand.id), ProductDraft(gtin="6901234567892", name="Tea")
        )
        batch, _ = await codes.do_request_batch(
            session,
            runtime.crypto,
            system_actor(brand.id),
            codes.BatchRequest(product.id, "item", 2),
            public_url="https://id.example",
        )
    await generate_batch(runtime.db, brand.id, batch.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        serial = await session.scalar(select(Code.serial).order_by(Code.id).limit(1))
    assert serial is not None
    return serial, product.id


# Photos: the pure checks.


def test_sniff_reads_the_magic_bytes() -> None:
    assert sniff(jpeg()[:16]) == "image/jpeg"
    assert sniff(png()[:16]) == "image/png"
    assert sniff(webp()[:16]) == "image/webp"
    assert sniff(gif()[:16]) is None
    assert sniff(b"%PDF-1.7") is None
    assert sniff(b"RIFF\x00\x00\x00\x00WAVE") is None


def test_check_photo_strips_exif_and_turns_the_picture_upright() -> None:
    raw = jpeg(64, 48)
    assert Image.open(io.BytesIO(raw)).getexif().get(GPS_TAG) is not None
    clean = check_photo(raw, index=1)
    stored = Image.open(io.BytesIO(clean.data))
    assert stored.format == "JPEG"
    assert dict(stored.getexif()) == {}
    assert b"PhoneMaker" not in clean.data
    # Orientation 6 means the camera held it sideways: stored upright, width and height swapped.
    assert (clean.width, clean.height) == (48, 64) == stored.size


def test_check_photo_refuses_what_is_not_an_allowed_image() -> None:
    with pytest.raises(Exception, match="JPEG, PNG or WebP") as refused:
        check_photo(gif(), index=2)
    assert refused.value.data == {"photo": 2}  # type: ignore[attr-defined]
    truncated = jpeg()[:40]
    with pytest.raises(Exception, match="could not be read") as unreadable:
        check_photo(truncated, index=1)
    assert unreadable.value.status_code == 422  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="at most 5 MiB") as too_big:
        check_photo(b"\xff\xd8\xff" + b"\x00" * MAX_PHOTO_BYTES, index=3)
    assert too_big.value.status_code == 413  # type: ignore[attr-defined]


def test_prices_in_yuan() -> None:
    assert reports.parse_price_yuan("128") == 12800
    assert reports.parse_price_yuan("¥1,280.5") == 128050
    assert reports.parse_price_yuan(" 0.07 ") == 7
    assert reports.parse_price_yuan("") is None
    for wrong in ("12.345", "abc", "-5", "1e3", "１２"):
        with pytest.raises(Exception, match="price") as refused:
            reports.parse_price_yuan(wrong)
        assert refused.value.data == {"field": "price"}  # type: ignore[attr-defined]


def test_transitions() -> None:
    assert reports.check_transition("new", "investigating", "") == ""
    assert reports.check_transition("investigating", "confirmed", "  label printed askew  ") == "label printed askew"
    with pytest.raises(Exception, match="cannot go to this status"):
        reports.check_transition("new", "confirmed", "note")
    with pytest.raises(Exception, match="already has this status"):
        reports.check_transition("new", "new", "")
    with pytest.raises(Exception, match="Write a note"):
        reports.check_transition("investigating", "dismissed", "   ")
    with pytest.raises(Exception, match="Write a note"):
        reports.check_transition("confirmed", "investigating", "")
    with pytest.raises(Exception, match="Unknown status"):
        reports.check_transition("new", "closed", "")


# Submitting.


async def test_a_report_with_photos_is_stored_clean(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    response = await submit(
        client,
        brand,
        fields={
            "code": "https://id.example/01/06901234567892/21/NOTAREALCODE0000",
            "phone": "13812345678",
            "province_code": "310000",
            "city_code": "310100",
            "description": "瓶盖松动",
        },
        photos=[
            ("front.jpg", jpeg(), "image/jpeg"),
            ("back.png", png(), "image/png"),
            ("seal.webp", webp(), "image/webp"),
        ],
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["status"] == "new"
    assert receipt["code_status"] == "unknown"
    assert receipt["photo_count"] == 3
    assert receipt["is_new"] is True
    assert receipt["reference"].startswith("R")

    token = await make_token(runtime, brand)
    detail = await client.get(f"/api/v1/authenticity/reports/{receipt['id']}", headers=bearer(token))
    assert detail.status_code == 200
    body = detail.json()
    assert body["where_bought"] == "某某超市 人民路 12 号"
    assert body["price_fen"] == 12800
    assert body["purchased_on"] == "2026-11-01"
    assert body["phone_masked"] == "138****5678"
    assert (body["province_code"], body["city_code"]) == ("310000", "310100")
    assert body["code_key"] == "NOTAREALCODE0000"
    assert [p["content_type"] for p in body["photos"]] == ["image/jpeg", "image/png", "image/webp"]
    assert [p["position"] for p in body["photos"]] == [1, 2, 3]
    assert "13812345678" not in detail.text

    first = await client.get(body["photos"][0]["url"], headers=bearer(token))
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert first.headers["x-content-type-options"] == "nosniff"
    served = Image.open(io.BytesIO(first.content))
    assert dict(served.getexif()) == {}
    assert b"PhoneMaker" not in first.content
    assert len(_stored_files(runtime)) == 3

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.get(reports.CounterfeitReport, uuid.UUID(receipt["id"]))
        assert row is not None
        assert row.phone_ciphertext is not None
        assert "13812345678" not in row.phone_ciphertext
        assert reports.reveal_phone(runtime.crypto, row) == "+8613812345678"


async def test_what_the_code_is(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    serial, product_id = await _known_serial(runtime, brand)
    cases = {
        f"https://id.example/01/06901234567892/21/{serial}": "known",
        serial: "known",
        f"https://id.example/01/04006381333931/21/{serial}": "unknown",  # the serial under another GTIN
        "ZZZZZZZZZZZZZZZZ": "unknown",
        "hello, this is not a code": "unreadable",
        "": "none",
    }
    token = await make_token(runtime, brand)
    for text, expected in cases.items():
        response = await submit(client, brand, fields={"code": text, "description": text or "no code"})
        assert response.status_code == 201, response.text
        assert response.json()["code_status"] == expected, text
        if expected == "known":
            detail = (
                await client.get(f"/api/v1/authenticity/reports/{response.json()['id']}", headers=bearer(token))
            ).json()
            assert detail["product_id"] == str(product_id)
            assert detail["code_id"] is not None

    other = await make_brand(runtime)
    foreign = await submit(client, other, fields={"code": serial})
    assert foreign.json()["code_status"] == "unknown", "another brand's code is unknown here"


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        ({"where_bought": "  "}, "where_bought", 422),
        ({"where_bought": "x" * 201}, "where_bought", 422),
        ({"price_fen": "0"}, "price", 422),
        ({"price_fen": "-5"}, "price", 422),
        ({"price_fen": str(reports.MAX_PRICE_FEN + 1)}, "price", 422),
        ({"price_fen": "", "price": "12.345"}, "price", 422),
        ({"purchased_on": "2026-13-01"}, "purchased_on", 422),
        ({"purchased_on": "2999-01-01"}, "purchased_on", 422),
        ({"purchased_on": "1999-12-31"}, "purchased_on", 422),
        ({"phone": "12345"}, "phone", 422),
        ({"province_code": "990000"}, "province_code", 422),
        ({"province_code": "310000", "city_code": "440300"}, "city_code", 422),
        ({"city_code": "44030"}, "city_code", 422),
        ({"description": "x" * 1001}, "description", 422),
        ({"code": "x" * 501}, "code", 422),
        ({"idempotency_key": "é" * 3}, "idempotency_key", 422),
        ({"where_bought": "a\x00b"}, "where_bought", 422),
    ],
)
async def test_field_refusals_store_nothing(
    client: httpx.AsyncClient, runtime: Runtime, fields: dict[str, str], field: str, status: int
) -> None:
    brand = await make_brand(runtime)
    response = await submit(client, brand, fields=fields, photos=[("a.jpg", jpeg(), "image/jpeg")])
    assert response.status_code == status, response.text
    assert response.json()["error"] == "validation_error"
    assert response.json()["data"]["field"] == field
    assert await _report_count(runtime, brand) == (0, 0)
    assert _stored_files(runtime) == []


async def test_photo_refusals_store_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    good = ("good.jpg", jpeg(), "image/jpeg")
    oversized = b"\xff\xd8\xff\xe0" + b"\x00" * MAX_PHOTO_BYTES
    cases: list[tuple[list[tuple[str, bytes, str]], int, str, dict[str, Any]]] = [
        # too big, as the second photo: the first (valid) one is not kept either
        ([good, ("big.jpg", oversized, "image/jpeg")], 413, "photo_too_large", {"photo": 2}),
        # a GIF that claims to be a JPEG by name and content type
        ([("fake.jpg", gif(), "image/jpeg")], 415, "photo_type", {"photo": 1}),
        # a PDF dressed as a PNG
        ([good, ("doc.png", b"%PDF-1.7\n" + b"0" * 200, "image/png")], 415, "photo_type", {"photo": 2}),
        # JPEG magic, then garbage
        ([("broken.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 50, "image/jpeg")], 422, "photo_unreadable", {"photo": 1}),
        ([good, good, good, good], 400, "too_many_photos", {"count": 4, "max_photos": 3}),
    ]
    for photos, status, code, data in cases:
        response = await submit(client, brand, photos=photos)
        assert response.status_code == status, (code, response.text)
        assert response.json()["error"] == code
        assert {k: response.json()["data"][k] for k in data} == data
    assert await _report_count(runtime, brand) == (0, 0)
    assert _stored_files(runtime) == []


async def test_a_too_large_body_is_refused_before_it_is_read(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    big = b"\xff\xd8\xff" + b"\x00" * (MAX_PHOTO_BYTES - 10)
    photos = [("a.jpg", big, "image/jpeg")] * 3 + [("b.jpg", big, "image/jpeg")]
    response = await submit(client, brand, photos=photos)
    assert response.status_code == 413
    assert response.json()["error"] == "report_too_large"
    assert await _report_count(runtime, brand) == (0, 0)


async def test_photos_as_other_fields_are_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    wrong_name = await client.post(_url(brand), data=FIELDS, files=[("picture", ("a.jpg", jpeg(), "image/jpeg"))])
    assert wrong_name.status_code == 422
    assert wrong_name.json()["data"]["field"] == "picture"
    file_as_text = await client.post(
        _url(brand), data=FIELDS, files=[("where_bought", ("a.txt", b"shop", "text/plain"))]
    )
    assert file_as_text.status_code == 422
    assert await _report_count(runtime, brand) == (0, 0)


async def test_unknown_or_suspended_brand(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.post("/api/v1/public/no-such-brand/counterfeit-reports", data=FIELDS)
    assert response.status_code == 404


async def test_idempotency(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    photos = [("a.jpg", jpeg(), "image/jpeg")]
    first = await submit(client, brand, photos=photos, headers={"idempotency-key": "retry-1"})
    again = await submit(client, brand, photos=photos, headers={"idempotency-key": "retry-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["is_new"] is False
    # The same key as a form field names the same report.
    field = await submit(client, brand, fields={"idempotency_key": "retry-1"})
    assert field.json()["id"] == first.json()["id"]
    # Without a key, the same content from the same address on the same day is one report …
    natural = await submit(client, brand, fields={"description": "double tap"}, photos=photos)
    natural_again = await submit(client, brand, fields={"description": "double tap"}, photos=photos)
    assert (natural.status_code, natural_again.status_code) == (201, 200)
    assert natural_again.json()["id"] == natural.json()["id"]
    # … and other content is another report.
    other = await submit(client, brand, fields={"description": "another bottle"}, photos=photos)
    assert other.status_code == 201
    assert await _report_count(runtime, brand) == (3, 3)
    assert len(_stored_files(runtime)) == 1, "the same photo is stored once (content address)"


async def test_simultaneous_double_submit_makes_one_report(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    photos = [("a.jpg", jpeg(), "image/jpeg")]
    responses = await asyncio.gather(
        *(submit(client, brand, photos=photos, headers={"idempotency-key": "tap-tap"}) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _report_count(runtime, brand) == (1, 1)


async def test_rate_limit_per_address(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    for n in range(10):
        response = await submit(client, brand, fields={"description": f"report {n}"})
        assert response.status_code == 201
    refused = await submit(client, brand, fields={"description": "one more"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=("10.7.7.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
        assert (await submit(elsewhere, brand, fields={"description": "another network"})).status_code == 201


async def test_signed_in_consumer_is_linked(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    slug = brand.tenant.slug
    sent = await client.post(f"/api/v1/public/{slug}/otp", json={"phone": "13900001111"})
    assert sent.status_code == 202
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        from zhongtai.core.models import SandboxMessage

        text = (await session.scalars(select(SandboxMessage.body))).one()
    code = text.split("验证码 ")[1][:6]
    signed = await client.post(f"/api/v1/public/{slug}/sessions", json={"phone": "13900001111", "code": code})
    consumer_token = signed.json()["token"]
    response = await submit(client, brand, headers=bearer(consumer_token))
    assert response.status_code == 201
    token = await make_token(runtime, brand)
    detail = await client.get(f"/api/v1/authenticity/reports/{response.json()['id']}", headers=bearer(token))
    assert detail.json()["consumer_id"] == signed.json()["consumer"]["id"]
    other = await make_brand(runtime)
    refused = await submit(client, other, headers=bearer(consumer_token))
    assert refused.status_code == 403
    unknown = await submit(client, brand, headers=bearer("ztc_nope"))
    assert unknown.status_code == 401


# Operators.


async def _report(client: httpx.AsyncClient, brand: Brand, **fields: str) -> str:
    response = await submit(client, brand, fields=fields or {"description": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_triage_transitions_and_audit(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    report_id = await _report(client, brand)
    url = f"/api/v1/authenticity/reports/{report_id}/status"

    def change(status: str, note: str = "", expected: str | None = None) -> Any:
        return client.post(
            url, json={"status": status, "note": note, "expected_status": expected}, headers=bearer(token)
        )

    skip = await change("confirmed", "looks fake")
    assert skip.status_code == 409
    assert skip.json()["data"]["allowed"] == ["dismissed", "investigating"]
    unknown = await change("closed")
    assert unknown.status_code == 422
    started = await change("investigating", expected="new")
    assert started.status_code == 200
    assert started.json()["status"] == "investigating"
    stale = await change("dismissed", "dup", expected="new")
    assert stale.status_code == 409
    no_note = await change("confirmed", " ")
    assert no_note.status_code == 422
    assert no_note.json()["data"]["field"] == "note"
    confirmed = await change("confirmed", "Label printed askew; fake.")
    assert confirmed.status_code == 200
    assert confirmed.json()["resolution_note"] == "Label printed askew; fake."
    assert confirmed.json()["handled_by"] == "token:test token"
    again = await change("confirmed", "again")
    assert again.status_code == 409
    dismiss_closed = await change("dismissed", "changed my mind")
    assert dismiss_closed.status_code == 409
    reopened = await change("investigating", "The consumer sent a receipt.")
    assert reopened.status_code == 200

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        events = list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.target_id == report_id)
                .order_by(AuditEvent.created_at, AuditEvent.id)
            )
        )
    assert [(e.action, e.data["from"], e.data["to"]) for e in events] == [
        ("authenticity.report.investigating", "new", "investigating"),
        ("authenticity.report.confirmed", "investigating", "confirmed"),
        ("authenticity.report.investigating", "confirmed", "investigating"),
    ]
    assert events[1].data["note"] == "Label printed askew; fake."


async def test_simultaneous_decisions_one_wins(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    report_id = await _report(client, brand)
    url = f"/api/v1/authenticity/reports/{report_id}/status"
    await client.post(url, json={"status": "investigating"}, headers=bearer(token))
    results = await asyncio.gather(
        client.post(url, json={"status": "confirmed", "note": "fake"}, headers=bearer(token)),
        client.post(url, json={"status": "dismissed", "note": "genuine"}, headers=bearer(token)),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        decided = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.target_id == report_id)
        )
    assert decided == 2


async def test_queue_filters(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    serial, product_id = await _known_serial(runtime, brand)
    token = await make_token(runtime, brand)
    known = await _report(client, brand, code=serial)
    unknown = await _report(client, brand, code="ZZZZZZZZZZZZZZZZ")
    await client.post(
        f"/api/v1/authenticity/reports/{unknown}/status", json={"status": "investigating"}, headers=bearer(token)
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get("/api/v1/authenticity/reports", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [unknown, known]
    assert await ids(status="new") == [known]
    assert await ids(status="investigating") == [unknown]
    assert await ids(product_id=str(product_id)) == [known]
    assert await ids(code_status="unknown") == [unknown]
    today = reports.china_today()
    assert await ids(since=today.isoformat(), until=today.isoformat()) == [unknown, known]
    assert await ids(until=(today - __import__("datetime").timedelta(days=1)).isoformat()) == []
    bad = await client.get("/api/v1/authenticity/reports", params={"status": "open"}, headers=bearer(token))
    assert bad.status_code == 422


async def test_permissions(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    report_id = await _report(client, brand)
    owner = await make_token(runtime, brand)
    photo_less = await client.get(f"/api/v1/authenticity/reports/{report_id}", headers=bearer(owner))
    assert photo_less.status_code == 200
    reader = await make_token(runtime, brand, scopes=[reports.REPORTS_READ])
    nobody = await make_token(runtime, brand, scopes=["codes.read"])
    url = f"/api/v1/authenticity/reports/{report_id}"
    assert (await client.get(url, headers=bearer(reader))).status_code == 200
    denied = await client.get(url, headers=bearer(nobody))
    assert denied.status_code == 403
    assert denied.json()["data"]["permission"] == reports.REPORTS_READ
    assert (await client.get("/api/v1/authenticity/reports", headers=bearer(nobody))).status_code == 403
    change = await client.post(f"{url}/status", json={"status": "investigating"}, headers=bearer(reader))
    assert change.status_code == 403
    assert change.json()["data"]["permission"] == reports.REPORTS_MANAGE
    assert (await client.get(url)).status_code == 401
    # Roles: viewers see nothing of reports; auditors read; operators triage.
    from zhongtai.core.permissions import permissions_for_role

    assert reports.REPORTS_READ not in permissions_for_role("viewer", is_platform_tenant=False)
    assert reports.REPORTS_READ in permissions_for_role("auditor", is_platform_tenant=False)
    assert reports.REPORTS_MANAGE not in permissions_for_role("auditor", is_platform_tenant=False)
    assert reports.REPORTS_MANAGE in permissions_for_role("operator", is_platform_tenant=False)


async def test_photos_of_another_report_or_brand_are_not_served(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    with_photo = (await submit(client, brand, photos=[("a.png", png(), "image/png")])).json()["id"]
    without = await _report(client, brand)
    detail = (await client.get(f"/api/v1/authenticity/reports/{with_photo}", headers=bearer(token))).json()
    photo_id = detail["photos"][0]["id"]
    assert (await client.get(detail["photos"][0]["url"], headers=bearer(token))).status_code == 200
    wrong_report = await client.get(f"/api/v1/authenticity/reports/{without}/photos/{photo_id}", headers=bearer(token))
    assert wrong_report.status_code == 404
    other = await make_brand(runtime)
    other_token = await make_token(runtime, other)
    assert (await client.get(detail["photos"][0]["url"], headers=bearer(other_token))).status_code == 404


def test_report_provinces_come_from_the_offline_geography() -> None:
    from zhongtai import geo
    from zhongtai.authenticity import reports as report_rules

    listed = report_rules.provinces()
    assert list(listed) == [code for code, _ in geo.all_regions("province")]
    assert len(listed) == 34
    assert listed["150000"] == ("内蒙古自治区", "Inner Mongolia")
    assert report_rules.province_name("440300", "en") == "Guangdong"
    assert report_rules.province_name("440300", "zh-CN") == "广东省"
    # A report's city is shown by name; a municipality's city adds nothing to its province's name.
    assert report_rules.city_name("440300") == "深圳市"
    assert report_rules.city_name("310100") == ""
    assert report_rules.city_name(None) == ""
    assert report_rules.city_name("999900") == "999900"
