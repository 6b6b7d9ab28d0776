"""Codes console pages on both tiers: requesting a batch, its live progress and state counts, print
files through the console session, voiding with a confirmation step, lookup with the QR code,
settings and PIN-key rotation, label sheets, and what viewers and operators may not do."""

from __future__ import annotations

import ast
import csv
import html
import io
import re
import string
import uuid
import zipfile
from pathlib import Path

import httpx
import jinja2
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user, system_actor
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import ProductDraft
from zhongtai.codes import console, errors, rules, service
from zhongtai.codes.models import Code, CodeBatch, CodeSettings
from zhongtai.console.ops_pages import AUDIT_ACTION_LABELS
from zhongtai.core.jobs import Worker
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime
from zhongtai.i18n import catalog as i18n_catalog
from zhongtai.kit.rendering import ERROR_TEMPLATES, NAV, localize_message

HTML = {"accept": "text/html"}
GTIN = "06901234567892"
BATCH_URL = re.compile(r"^/console/codes/batches/([0-9a-f-]{36})$")


async def _signed_in(
    client: httpx.AsyncClient, runtime: Runtime, role: str = "owner", locale: str = "en"
) -> tuple[Brand, str]:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", locale)
    if role == "owner":
        return brand, await console_login(client, brand.owner.email)
    user = await make_user(runtime, brand, role)
    return brand, await console_login(client, user.email)


async def _product(
    runtime: Runtime, brand: Brand, *, gtin: str = GTIN, items_per_case: int | None = 6, archived: bool = False
) -> uuid.UUID:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        product = await catalog.do_create_product(
            session,
            system_actor(brand.id),
            ProductDraft(gtin=gtin, name="飞天 53%vol 500ml", items_per_case=items_per_case),
        )
        if archived:
            await catalog.do_set_archived(session, system_actor(brand.id), product.id, archived=True)
    return product.id


async def _run_jobs(runtime: Runtime) -> None:
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass


async def _request(client: httpx.AsyncClient, csrf: str, product_id: uuid.UUID, quantity: int) -> str:
    form = {"csrf_token": csrf, "product_id": str(product_id), "level": "item", "quantity": str(quantity)}
    response = await client.post("/console/codes/batches", data=form | {"note": "line 2"}, headers=HTML)
    assert response.status_code == 303, response.text
    found = BATCH_URL.match(response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


async def _generated_batch(
    client: httpx.AsyncClient, runtime: Runtime, brand: Brand, csrf: str, quantity: int = 25
) -> str:
    batch_id = await _request(client, csrf, await _product(runtime, brand), quantity)
    await _run_jobs(runtime)
    return batch_id


async def _audit(runtime: Runtime, brand: Brand) -> list[tuple[str, dict]]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.action.startswith("codes.")).order_by(AuditEvent.created_at)
        )
        return [(event.action, dict(event.data or {})) for event in rows]


async def _states(runtime: Runtime, brand: Brand, batch_id: str) -> dict[str, int]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        batch = await service.get_batch(session, uuid.UUID(batch_id))
        return await service.batch_state_counts(session, batch)


async def _serials(runtime: Runtime, brand: Brand) -> list[str]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return list(await session.scalars(select(Code.serial).order_by(Code.id)))


async def test_request_progress_state_counts_and_downloads(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    empty = await client.get("/console/codes/batches", headers=HTML)
    assert empty.status_code == 200
    assert "No code batches yet." in empty.text
    assert 'href="/console/codes/batches"' in empty.text, "the navigation lists code batches"
    product_id = await _product(runtime, brand)
    form = await client.get("/console/codes/batches/new", headers=HTML)
    assert f'<option value="{product_id}"' in form.text

    batch_id = await _request(client, csrf, product_id, 25)
    page = await client.get(f"/console/codes/batches/{batch_id}", headers=HTML)
    assert "was requested: 25 codes are being generated." in page.text
    poll = f'hx-get="/console/codes/batches/{batch_id}/progress" hx-trigger="every 1s"'
    assert poll in page.text, "the page polls while the batch is generated"
    assert 'id="progress-percent">0%' in page.text
    assert 'id="download-links"' not in page.text

    fragment = await client.get(f"/console/codes/batches/{batch_id}/progress", headers=HTML)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert poll in fragment.text

    await _run_jobs(runtime)
    done = await client.get(f"/console/codes/batches/{batch_id}/progress", headers=HTML)
    assert 'id="progress-percent">100%' in done.text
    assert "hx-trigger" not in done.text, "polling stops once the batch is generated"
    assert "25 of 25 codes generated" in done.text
    counts = re.search(r'id="state-counts".*?</section>', done.text, re.DOTALL)
    assert counts
    assert re.search(r'stat-label">Generated</div><div class="stat-value">25<', counts.group(0))
    links_url = f"/api/v1/codes/batches/{batch_id}/export?kind=links"
    assert f'href="{links_url}"' in done.text
    assert f'href="/api/v1/codes/batches/{batch_id}/export?kind=pins"' in done.text, "owners may take PIN files"
    assert f'href="/console/codes/batches/{batch_id}/labels"' in done.text

    # The download links work with the console session alone (cookie, GET, no CSRF header).
    links = await client.get(links_url)
    assert links.status_code == 200, links.text
    rows = list(csv.reader(io.StringIO(links.text)))
    assert rows[0] == ["index", "uri", "serial"]
    assert len(rows) == 26
    assert [row[2] for row in rows[1:]] == await _serials(runtime, brand)
    assert rows[1][1] == f"http://127.0.0.1:8000/01/{GTIN}/21/{rows[1][2]}"
    zipped = await client.get(f"/api/v1/codes/batches/{batch_id}/export", params={"kind": "links", "part_size": 1000})
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        [name] = archive.namelist()
        assert len(archive.read(name).decode().splitlines()) == 26

    listing = await client.get("/console/codes/batches", headers=HTML)
    assert 'class="badge batch-exported">Exported' in listing.text
    assert "100% · 25" in listing.text
    filtered = await client.get("/console/codes/batches", params={"status": "voided"}, headers=HTML)
    assert "No batches match these filters." in filtered.text
    assert [action for action, _ in await _audit(runtime, brand)] == [
        "codes.batch.request",
        "codes.batch.export",
        "codes.batch.export",
    ]
    audit_page = await client.get("/console/audit", params={"action": "codes."}, headers=HTML)
    assert "Requested a code batch" in audit_page.text
    assert "Downloaded a print file" in audit_page.text


async def test_operator_without_pin_permission_sees_no_pin_button(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime, role="operator")
    batch_id = await _generated_batch(client, runtime, brand, csrf, quantity=5)
    page = await client.get(f"/console/codes/batches/{batch_id}", headers=HTML)
    assert 'id="download-links"' in page.text
    assert "kind=pins" not in page.text
    assert 'id="download-pins"' not in page.text
    refused = await client.get(f"/api/v1/codes/batches/{batch_id}/export", params={"kind": "pins"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    assert (await client.get(f"/api/v1/codes/batches/{batch_id}/export?kind=links")).status_code == 200
    assert (await client.get("/console/codes/settings", headers=HTML)).status_code == 403
    assert 'href="/console/codes/settings"' not in page.text, "no settings entry in the navigation"


async def test_request_form_errors_next_to_fields(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    no_products = await client.get("/console/codes/batches/new", headers=HTML)
    assert "There is no active product yet." in no_products.text
    loose = await _product(runtime, brand, items_per_case=None)
    archived = await _product(runtime, brand, gtin="4006381333931", archived=True)

    bad = {"csrf_token": csrf, "product_id": "", "level": "item", "quantity": "lots", "note": "kept"}
    response = await client.post("/console/codes/batches", data=bad, headers=HTML)
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "Choose a product." in text
    assert "Enter a whole number from 1 to 10,000,000." in text
    assert text.count('class="field invalid"') == 2
    assert 'value="kept"' in response.text, "what was typed is kept"
    assert f'<option value="{archived}"' not in response.text, "archived products are not offered"

    case = bad | {"product_id": str(loose), "level": "case", "quantity": "10"}
    response = await client.post("/console/codes/batches", data=case, headers=HTML)
    assert response.status_code == 422
    assert "The product has no case packaging; set items per case first." in response.text
    assert re.search(r'<fieldset class="field invalid">\s*<legend>Packaging level', response.text)

    client.cookies.set("zt_lang", "zh-CN")
    response = await client.post(
        "/console/codes/batches", data=bad | {"product_id": str(archived), "quantity": "10"}, headers=HTML
    )
    assert response.status_code == 422
    assert "该产品已归档；请先恢复再申请码。" in response.text
    too_many = await client.post(
        "/console/codes/batches", data=bad | {"product_id": str(loose), "quantity": "10000001"}, headers=HTML
    )
    assert "请填写 1 到 10,000,000 之间的整数。" in too_many.text
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert list(await session.scalars(select(CodeBatch))) == []


async def test_lookup_shows_state_and_qr(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    batch_id = await _generated_batch(client, runtime, brand, csrf, quantity=3)
    serials = await _serials(runtime, brand)
    page = await client.get("/console/codes/lookup", params={"code": serials[1].lower()}, headers=HTML)
    assert page.status_code == 200
    assert 'id="code-state">Generated<' in page.text
    uri = f"http://127.0.0.1:8000/01/{GTIN}/21/{serials[1]}"
    assert f'id="code-uri">{uri}<' in page.text
    qr = re.search(r'<div class="qr-box" id="code-qr"><svg viewBox="0 0 (\d+) \1" class="qr">', page.text)
    assert qr, "the Digital Link as an inline SVG QR code"
    assert f'href="/console/codes/batches/{batch_id}"' in page.text
    assert "2 / 3" in page.text, "position in the batch"
    by_link = await client.get("/console/codes/lookup", params={"code": uri}, headers=HTML)
    assert f'<code class="serial">{serials[1]}</code>' in by_link.text

    missing = await client.get("/console/codes/lookup", params={"code": "A" * 16}, headers=HTML)
    assert missing.status_code == 404
    assert "No such code." in missing.text
    garbage = await client.get("/console/codes/lookup", params={"code": "hello"}, headers=HTML)
    assert garbage.status_code == 400
    assert "Not a code of this platform" in garbage.text
    client.cookies.set("zt_lang", "zh-CN")
    wrong_gtin = await client.get(
        "/console/codes/lookup", params={"code": f"https://x.example/01/04006381333931/21/{serials[0]}"}, headers=HTML
    )
    assert wrong_gtin.status_code == 404
    assert "该序列码存在，但不属于这个 GTIN。" in wrong_gtin.text


async def test_void_asks_for_confirmation(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    batch_id = await _generated_batch(client, runtime, brand, csrf, quantity=10)
    url = f"/console/codes/batches/{batch_id}/void"
    form = {"csrf_token": csrf, "reason": "roll misprinted", "from_index": "2", "to_index": "4"}

    missing = await client.post(url, data=form | {"reason": " "}, headers=HTML)
    assert missing.status_code == 422
    assert "Say why the codes are voided." in missing.text
    backwards = await client.post(url, data=form | {"from_index": "5", "to_index": "11"}, headers=HTML)
    assert backwards.status_code == 422
    assert "Positions run from 1 to 10, first ≤ last." in html.unescape(backwards.text)
    not_a_number = await client.post(url, data=form | {"to_index": "x"}, headers=HTML)
    assert "Enter a position from 1 to 10." in not_a_number.text

    asked = await client.post(url, data=form, headers=HTML)
    assert asked.status_code == 200
    assert "Void positions 2 to 4 of batch" in asked.text
    assert ": 3 codes?" in asked.text
    assert 'name="confirm" value="1"' in asked.text
    assert await _states(runtime, brand, batch_id) == {"generated": 10}, "nothing changes before confirming"

    done = await client.post(url, data=form | {"confirm": "1"}, headers=HTML)
    assert (done.status_code, done.headers["location"]) == (303, f"/console/codes/batches/{batch_id}")
    page = await client.get(done.headers["location"], headers=HTML)
    assert "3 codes were voided; they fail verification from now on." in page.text
    assert await _states(runtime, brand, batch_id) == {"generated": 7, "voided": 3}
    serials = await _serials(runtime, brand)
    lookup = await client.get("/console/codes/lookup", params={"code": serials[2]}, headers=HTML)
    assert 'id="code-state">Voided<' in lookup.text

    whole = {"csrf_token": csrf, "reason": "leaked", "from_index": "", "to_index": ""}
    asked = await client.post(url, data=whole, headers=HTML)
    assert "Void the whole batch" in asked.text
    assert ": 10 codes?" in asked.text
    await client.post(url, data=whole | {"confirm": "1"}, headers=HTML)
    page = await client.get(f"/console/codes/batches/{batch_id}", headers=HTML)
    assert 'class="badge batch-voided">Voided' in page.text
    assert "A voided batch has no print files." in page.text
    assert 'id="void-form"' not in page.text
    assert await _states(runtime, brand, batch_id) == {"voided": 10}
    voids = [data for action, data in await _audit(runtime, brand) if action == "codes.void"]
    assert [(v["from_index"], v["to_index"], v["voided"]) for v in voids] == [(2, 4, 3), (1, 10, 7)]


async def test_settings_validate_save_and_rotate(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    page = await client.get("/console/codes/settings", headers=HTML)
    assert page.status_code == 200
    assert 'placeholder="http://127.0.0.1:8000"' in page.text
    assert "The first key is created with the first item batch." in page.text
    good = {"csrf_token": csrf, "gs1_company_prefix": "6901234", "sscc_extension_digit": "3", "resolver_base": ""}
    cases = [
        ({"gs1_company_prefix": "69ab"}, "gs1_company_prefix", "A GS1 company prefix is 6 to 12 digits."),
        ({"sscc_extension_digit": "12"}, "sscc_extension_digit", "The SSCC extension digit is one digit, 0 to 9."),
        ({"resolver_base": "ftp://id.example/x"}, "resolver_base", "The resolver address must look like"),
    ]
    for change, field, message in cases:
        response = await client.post("/console/codes/settings", data=good | change, headers=HTML)
        assert response.status_code == 422, field
        assert message in response.text
        assert response.text.count('class="field invalid"') == 1
        assert f'name="{field}" value="{change[field]}"' in response.text, "what was typed is kept"

    saved = await client.post(
        "/console/codes/settings", data=good | {"resolver_base": "https://id.brand.example/"}, headers=HTML
    )
    assert (saved.status_code, saved.headers["location"]) == (303, "/console/codes/settings")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(CodeSettings))
        assert row is not None
        assert (row.gs1_company_prefix, row.sscc_extension_digit, row.resolver_base) == (
            "6901234",
            3,
            "https://id.brand.example",
        )
    page = await client.get("/console/codes/settings", headers=HTML)
    assert "Code settings were saved." in page.text

    await _generated_batch(client, runtime, brand, csrf, quantity=2)
    page = await client.get("/console/codes/settings", headers=HTML)
    assert re.search(r'id="pin-key-version"><strong>1</strong>', page.text)
    assert "The current version is 1; new item batches will use version 2." in page.text
    rotated = await client.post("/console/codes/settings/rotate-pin-key", data={"csrf_token": csrf}, headers=HTML)
    assert rotated.status_code == 303
    page = await client.get("/console/codes/settings", headers=HTML)
    assert "new item batches use version 2" in page.text
    assert re.search(r'id="pin-key-version"><strong>2</strong>', page.text)
    actions = [action for action, _ in await _audit(runtime, brand)]
    assert actions == ["codes.settings.update", "codes.batch.request", "codes.pin_key.rotate"]


async def test_label_sheet(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime)
    batch_id = await _generated_batch(client, runtime, brand, csrf, quantity=12)
    sheet = await client.get(f"/console/codes/batches/{batch_id}/labels", headers=HTML)
    assert sheet.status_code == 200
    assert "@page { size: A4" in sheet.text
    assert sheet.text.count('<svg viewBox="0 0') == 12
    for serial in await _serials(runtime, brand):
        assert f'<div class="serial">{serial}</div>' in sheet.text
    assert [data["kind"] for action, data in await _audit(runtime, brand) if action == "codes.batch.export"] == [
        "labels"
    ]

    big = await _request(client, csrf, await _product(runtime, brand, gtin="4006381333931"), 1001)
    page = await client.get(f"/console/codes/batches/{big}/labels", headers=HTML)
    assert page.status_code == 409, "not generated yet"
    await _run_jobs(runtime)
    detail = await client.get(f"/console/codes/batches/{big}", headers=HTML)
    assert 'id="label-sheet"' not in detail.text
    too_big = await client.get(f"/console/codes/batches/{big}/labels", headers=HTML)
    assert too_big.status_code == 400
    assert "Label sheets are for batches of up to 1,000 codes" in too_big.text


async def test_viewer_reads_but_cannot_request_void_or_download(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime, role="viewer")
    product_id = await _product(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        batch, _ = await service.do_request_batch(
            session,
            runtime.crypto,
            system_actor(brand.id),
            service.BatchRequest(product_id, "item", 4),
            public_url="https://id.brand.example",
        )
    await _run_jobs(runtime)
    listing = await client.get("/console/codes/batches", headers=HTML)
    assert listing.status_code == 200
    assert batch.number in listing.text
    assert 'id="request-codes"' not in listing.text
    detail = await client.get(f"/console/codes/batches/{batch.id}", headers=HTML)
    assert detail.status_code == 200
    assert 'id="void-form"' not in detail.text
    assert 'id="download-links"' not in detail.text
    assert "needs the permission &#39;codes.export&#39;" in detail.text
    assert (await client.get("/console/codes/batches/new", headers=HTML)).status_code == 403
    refused = await client.post(
        "/console/codes/batches",
        data={"csrf_token": csrf, "product_id": str(product_id), "level": "item", "quantity": "5"},
        headers=HTML,
    )
    assert refused.status_code == 403
    assert "This page needs the permission 'codes.write'." in html.unescape(refused.text)
    voided = await client.post(
        f"/console/codes/batches/{batch.id}/void", data={"csrf_token": csrf, "reason": "x", "confirm": "1"}
    )
    assert voided.status_code == 403
    assert (await client.get(f"/console/codes/batches/{batch.id}/labels", headers=HTML)).status_code == 403
    assert (await client.get(f"/api/v1/codes/batches/{batch.id}/export?kind=links")).status_code == 403
    lookup = await client.get("/console/codes/lookup", params={"code": batch.number}, headers=HTML)
    assert lookup.status_code == 400, "viewers may look codes up"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert len(list(await session.scalars(select(CodeBatch)))) == 1
    assert await _states(runtime, brand, str(batch.id)) == {"generated": 4}


# Every codes string an operator reads has a Simplified Chinese translation with the same placeholders.

CODES_DIR = Path(rules.__file__).parent
MESSAGE_CLASSES = {
    "InvalidBatchRequest",
    "InvalidCodeSettings",
    "CodeNotFound",
    "UnreadableCode",
    "BadRequest",
    "ValueError",
}


def _template_strings() -> set[str]:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    found: set[str] = set()
    for path in sorted((CODES_DIR / "templates").rglob("*.html")):
        for _line, function, message in env.extract_translations(path.read_text(encoding="utf-8")):
            first = message[0] if isinstance(message, tuple) else message
            if function == "_" and isinstance(first, str):
                found.add(first)
    return found


def _code_strings() -> set[str]:
    """Literal messages of the codes errors the console shows, and the console's `tr()` strings."""
    found: set[str] = set()
    for name in ("service.py", "rules.py", "console.py"):
        for node in ast.walk(ast.parse((CODES_DIR / name).read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            position = 1 if called == "tr" else 0 if called in MESSAGE_CLASSES else None
            if position is None or len(node.args) <= position:
                continue
            argument = node.args[position]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.add(argument.value)
    return found


def _all_strings() -> set[str]:
    return (
        _template_strings()
        | _code_strings()
        | {item.label for item in NAV if item.href.startswith("/console/codes")}
        | {label for action, label in AUDIT_ACTION_LABELS.items() if action.startswith("codes.")}
        | set(console.STATUS_LABELS.values())
        | set(console.LEVEL_LABELS.values())
        | set(console.STATE_LABELS.values())
        | set(console.SCHEME_LABELS.values())
        | {
            cls.default_message
            for cls in vars(errors).values()
            if isinstance(cls, type) and "default_message" in vars(cls)
        }
        | {template for template in ERROR_TEMPLATES if "SSCC" in template or "batch" in template}
    )


def test_every_codes_string_has_a_chinese_translation() -> None:
    found = _all_strings()
    assert "Request codes" in found
    assert "The product is archived; restore it before requesting codes." in found
    assert "Batch {number} was requested: {quantity} codes are being generated." in found
    zh = i18n_catalog("zh-CN")
    missing = sorted(s for s in found if not zh.get(s, "").strip())
    assert missing == [], f"add these strings to src/zhongtai/i18n/zh_CN.json: {missing}"

    def fields(text: str) -> set[str]:
        return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}

    assert {s: zh[s] for s in found if fields(s) != fields(zh[s])} == {}


def test_service_messages_with_values_are_translated() -> None:
    assert localize_message("zh-CN", "A batch holds 1 to 10,000,000 codes.") == "每批 1 到 10,000,000 个码。"
    assert (
        localize_message("zh-CN", "Positions run from 1 to 25, first ≤ last.") == "位置范围为 1 到 25，且起始 ≤ 结束。"
    )
