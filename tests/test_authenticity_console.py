"""Console and H5 pages of counterfeit reports on both tiers: the consumer's form (no JavaScript
needed) with its refusals shown in place, the operators' queue and triage page, permissions, and
the translations of every string these pages and services show."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import httpx
import jinja2
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user
from tests.test_authenticity_reports import gif, jpeg, submit
from zhongtai.authenticity import console, photos, reports, reports_api
from zhongtai.console.ops_pages import AUDIT_ACTION_LABELS
from zhongtai.core.runtime import Runtime
from zhongtai.i18n import catalog as i18n_catalog
from zhongtai.kit.rendering import ERROR_TEMPLATES, NAV

HTML = {"accept": "text/html"}
PACKAGE = Path(reports.__file__).parent


async def _signed_in(client: httpx.AsyncClient, runtime: Runtime, role: str = "owner") -> tuple[Brand, str]:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", "en")
    if role == "owner":
        return brand, await console_login(client, brand.owner.email)
    user = await make_user(runtime, brand, role)
    return brand, await console_login(client, user.email)


# The consumer's form.


async def test_h5_form_round_trip(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", "en")
    page = await client.get(f"/h5/{brand.tenant.slug}/report", params={"code": "ABCDEFGHJKMNPQRS"})
    assert page.status_code == 200
    assert 'value="ABCDEFGHJKMNPQRS"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key
    form = {
        "code": "ABCDEFGHJKMNPQRS",
        "where_bought": "Night market stall",
        "price": "99.90",
        "province_code": "440000",
        "idempotency_key": key.group(1),
    }
    sent = await client.post(
        f"/h5/{brand.tenant.slug}/report",
        data=form,
        files=[("photos", ("p.jpg", jpeg(), "image/jpeg")), ("photos", ("", b"", "application/octet-stream"))],
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    done = await client.get(sent.headers["location"])
    reference = re.search(r'id="report-reference">([^<]+)<', done.text)
    assert reference
    # Pressing "send" twice (the same form) makes one report.
    twice = await client.post(f"/h5/{brand.tenant.slug}/report", data=form, follow_redirects=False)
    assert twice.headers["location"] == sent.headers["location"]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = list(await session.scalars(select(reports.CounterfeitReport)))
    assert [(r.reference, r.price_fen, r.province_code, r.photo_count) for r in rows] == [
        (reference.group(1), 9990, "440000", 1)
    ]


async def test_h5_form_shows_refusals_in_place(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", "zh-CN")
    url = f"/h5/{brand.tenant.slug}/report"
    wrong_type = await client.post(
        url, data={"where_bought": "小卖部", "price": "12"}, files=[("photos", ("x.jpg", gif(), "image/jpeg"))]
    )
    assert wrong_type.status_code == 415
    assert "照片只能是 JPEG、PNG 或 WebP 图片。" in html.unescape(wrong_type.text)
    assert 'value="小卖部"' in wrong_type.text, "what was typed is kept"
    no_place = await client.post(url, data={"where_bought": "", "price": "12"})
    assert no_place.status_code == 422
    assert "请填写购买地点" in html.unescape(no_place.text)
    bad_price = await client.post(url, data={"where_bought": "小卖部", "price": "12.345"})
    assert bad_price.status_code == 422
    assert "价格最多两位小数" in html.unescape(bad_price.text)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert list(await session.scalars(select(reports.CounterfeitReport))) == []
    assert (await client.get(f"/h5/{brand.tenant.slug}/report/done", params={"ref": "<script>"})).status_code == 200
    assert (await client.get("/h5/no-such-brand/report")).status_code == 404


def test_report_link_partial_renders() -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE / "templates"), autoescape=True)
    env.globals["_"] = lambda text, **values: text.format(**values)
    rendered = env.get_template("h5/_report_link.html").render(
        tenant=type("T", (), {"slug": "acme"})(), code="https://id.example/01/1/21/a b"
    )
    assert 'href="/h5/acme/report?code=https%3A//id.example/01/1/21/a%20b"' in rendered


# The operators' pages.


async def test_queue_detail_and_triage(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime, "operator")
    response = await submit(
        client,
        brand,
        fields={
            "code": "hello",
            "phone": "13812345678",
            "description": "seal broken",
            "province_code": "440000",
            "city_code": "440300",
        },
        photos=[("a.jpg", jpeg(), "image/jpeg")],
    )
    report_id = response.json()["id"]
    reference = response.json()["reference"]

    queue = await client.get("/console/authenticity/reports", headers=HTML)
    assert queue.status_code == 200
    assert reference in queue.text
    assert "Unreadable code" in queue.text
    assert 'id="tab-new"' in queue.text
    empty = await client.get("/console/authenticity/reports?status=confirmed", headers=HTML)
    assert reference not in empty.text

    detail = await client.get(f"/console/authenticity/reports/{report_id}", headers=HTML)
    assert detail.status_code == 200
    assert "138****5678" in detail.text
    assert "13812345678" not in detail.text
    assert "深圳市" in detail.text
    assert "440300" not in detail.text
    assert f"/api/v1/authenticity/reports/{report_id}/photos/" in detail.text
    photo_url = re.search(r'<img src="([^"]+)"', detail.text)
    assert photo_url
    served = await client.get(photo_url.group(1))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert 'id="to-investigating"' in detail.text
    assert 'id="to-confirmed"' not in detail.text

    url = f"/console/authenticity/reports/{report_id}/status"
    started = await client.post(
        url, data={"status": "investigating", "expected": "new", "csrf_token": csrf}, headers=HTML
    )
    assert started.status_code == 303
    no_note = await client.post(
        url, data={"status": "confirmed", "expected": "investigating", "csrf_token": csrf}, headers=HTML
    )
    assert no_note.status_code == 422
    assert "Write a note" in no_note.text
    stale = await client.post(
        url, data={"status": "dismissed", "note": "x", "expected": "new", "csrf_token": csrf}, headers=HTML
    )
    assert stale.status_code == 409
    assert "Somebody else changed this report" in stale.text
    confirmed = await client.post(
        url,
        data={"status": "confirmed", "note": "Fake cap.", "expected": "investigating", "csrf_token": csrf},
        headers=HTML,
    )
    assert confirmed.status_code == 303
    after = await client.get(confirmed.headers["location"], headers=HTML)
    assert "is now: Confirmed fake" in after.text
    assert 'id="report-note">Fake cap.<' in after.text
    assert 'id="to-investigating"' in after.text, "a closed report can be reopened"
    assert "Fake cap." in after.text.split('id="report-history"')[1]


async def test_console_permissions(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, _csrf = await _signed_in(client, runtime, "viewer")
    report_id = (await submit(client, brand)).json()["id"]
    assert (await client.get("/console/authenticity/reports", headers=HTML)).status_code == 403
    assert (await client.get(f"/console/authenticity/reports/{report_id}", headers=HTML)).status_code == 403
    home = await client.get("/console", headers=HTML)
    assert "/console/authenticity/reports" not in home.text


async def test_auditor_reads_but_cannot_decide(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, csrf = await _signed_in(client, runtime, "auditor")
    report_id = (await submit(client, brand)).json()["id"]
    detail = await client.get(f"/console/authenticity/reports/{report_id}", headers=HTML)
    assert detail.status_code == 200
    assert 'id="report-triage"' not in detail.text
    refused = await client.post(
        f"/console/authenticity/reports/{report_id}/status",
        data={"status": "investigating", "csrf_token": csrf},
        headers=HTML,
    )
    assert refused.status_code == 403


# Translations of what these pages and services show.


def _literal_messages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            endings = ("Failed", "Conflict", "NotFound", "BadRequest", "Denied", "Unauthenticated", "Photo")
            if name.endswith(endings) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def test_every_string_is_translated() -> None:
    strings = (
        _literal_messages(PACKAGE / "reports.py")
        | _literal_messages(PACKAGE / "photos.py")
        | _literal_messages(PACKAGE / "reports_api.py")
        | _literal_messages(PACKAGE / "triage.py")
        | {
            cls.default_message
            for module in (photos, reports_api)
            for cls in vars(module).values()
            if isinstance(cls, type) and "default_message" in vars(cls)
        }
        | set(console.STATUS_LABELS.values())
        | set(console.ACTION_LABELS.values())
        | {console.REOPEN_LABEL}
        | set(console.CODE_STATUS_LABELS.values())
        | set(console.ALERT_STATUS_LABELS.values())
        | set(console.ALERT_ACTION_LABELS.values())
        | set(console.KIND_LABELS.values())
        | set(console.VERDICT_LABELS.values())
        | set(console.REASON_LABELS.values())
        | {label for action, label in AUDIT_ACTION_LABELS.items() if action.startswith("authenticity.")}
        | {item.label for item in NAV if item.href.startswith("/console/authenticity")}
    )
    # Messages that are only for API clients (never shown on a page).
    api_only = {m for m in strings if "'" in m and "{" not in m} | {
        "price_fen is a whole number of fen (1 yuan = 100 fen).",
        "The Content-Length header is not a number.",
        "Send the report with a Content-Length header (a plain multipart form).",
        "Photos must be sent as files (multipart/form-data).",
    }
    zh = i18n_catalog("zh-CN")
    missing = sorted(s for s in strings - api_only if not zh.get(s, "").strip())
    assert missing == []
    assert "Unknown status '{status}'; use one of {statuses}." in ERROR_TEMPLATES
    assert all(
        action in AUDIT_ACTION_LABELS
        for action in (
            "authenticity.report.investigating",
            "authenticity.report.confirmed",
            "authenticity.report.dismissed",
        )
    )
