"""Console pages over consumer scans on both tiers: statistics with exact counts from crafted scans
(China day boundaries, products, provinces), the clone-alert queue and triage (transitions, notes,
audit, permissions), a code's full scan history, and the scans beside a counterfeit report."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user, system_actor
from tests.test_authenticity_reports import submit
from zhongtai.authenticity import models as am
from zhongtai.authenticity import stats, triage
from zhongtai.authenticity.models import CloneAlert, Scan
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import ProductDraft
from zhongtai.codes import service as codes
from zhongtai.codes.generation import generate_batch
from zhongtai.codes.models import Code
from zhongtai.core.clock import utcnow
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

HTML = {"accept": "text/html"}


async def _codes(runtime: Runtime, brand: Brand, gtin: str, name: str, count: int = 2) -> tuple[uuid.UUID, list[Code]]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        product = await catalog.do_create_product(session, system_actor(brand.id), ProductDraft(gtin=gtin, name=name))
        batch, _ = await codes.do_request_batch(
            session,
            runtime.crypto,
            system_actor(brand.id),
            codes.BatchRequest(product.id, "item", count),
            public_url="https://id.example",
        )
    await generate_batch(runtime.db, brand.id, batch.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = list(await session.scalars(select(Code).where(Code.id >= batch.first_code_id).order_by(Code.id)))
    return product.id, rows[:count]


def _scan(
    brand: Brand,
    code: Code,
    product_id: uuid.UUID | None,
    at: datetime,
    kind: str,
    *,
    verdict: str | None = None,
    province: str | None = None,
    city: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> Scan:
    return Scan(
        tenant_id=brand.id,
        code_id=code.id,
        serial=code.serial,
        product_id=product_id,
        kind=kind,
        verdict=verdict
        if verdict or kind == am.KIND_VIEW
        else (am.GENUINE if kind == am.KIND_PIN_OK else am.WRONG_PIN),
        reason=am.REASON_CLONE if verdict == am.SUSPICIOUS else None,
        occurred_at=at,
        province_code=province,
        city_name=city,
        latitude=lat,
        longitude=lon,
    )


async def _signed_in(client: httpx.AsyncClient, runtime: Runtime, brand: Brand, role: str = "owner") -> str:
    client.cookies.set("zt_lang", "en")
    if role == "owner":
        return await console_login(client, brand.owner.email)
    user = await make_user(runtime, brand, role)
    return await console_login(client, user.email)


def _utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


async def test_statistics_count_exactly(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    tea, (tea_a, tea_b) = await _codes(runtime, brand, "6901234567892", "Tea")
    wine, (wine_a,) = await _codes(runtime, brand, "6901234567885", "Wine", count=1)
    other = await make_brand(runtime)
    other_product, (other_code,) = await _codes(runtime, other, "6901234567878", "Other", count=1)
    # China days: 2026-03-01 runs from 2026-02-28 16:00 UTC to 2026-03-01 16:00 UTC.
    scans = [
        _scan(brand, tea_a, tea, _utc(2026, 2, 28, 15, 59), am.KIND_VIEW, province="310000"),  # 02-28 China
        _scan(brand, tea_a, tea, _utc(2026, 2, 28, 16, 0), am.KIND_VIEW, province="310000"),  # 03-01
        _scan(brand, tea_a, tea, _utc(2026, 2, 28, 16, 1), am.KIND_PIN_OK, province="310000"),  # 03-01
        _scan(brand, tea_b, tea, _utc(2026, 3, 1, 15, 59), am.KIND_PIN_BAD, province="440000"),  # 03-01
        _scan(brand, tea_b, tea, _utc(2026, 3, 2, 3, 0), am.KIND_PIN_OK, verdict=am.SUSPICIOUS, province="440000"),
        _scan(brand, wine_a, wine, _utc(2026, 3, 2, 4, 0), am.KIND_PIN_OK, province="440000"),
        _scan(brand, wine_a, wine, _utc(2026, 3, 3, 4, 0), am.KIND_PIN_OK, verdict=am.VERIFIED_BEFORE),  # no place
        _scan(brand, wine_a, wine, _utc(2026, 3, 9, 4, 0), am.KIND_VIEW),  # after the period
    ]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        session.add_all(scans)
    async with runtime.db.unit_of_work(tenant_id=other.id) as session:
        session.add(_scan(other, other_code, other_product, _utc(2026, 3, 2, 4, 0), am.KIND_PIN_OK, province="440000"))

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        result = await stats.scan_stats(session, since=date(2026, 3, 1), until=date(2026, 3, 3))
        only_wine = await stats.scan_stats(session, since=date(2026, 3, 1), until=date(2026, 3, 3), product_id=wine)
    days = {day.isoformat(): (c.views, c.verifications, c.suspicious, c.wrong_pins) for day, c in result.days}
    assert days == {"2026-03-01": (1, 1, 0, 1), "2026-03-02": (0, 2, 1, 0), "2026-03-03": (0, 1, 0, 0)}
    total = result.total
    assert (total.checks, total.views, total.verifications, total.suspicious, total.wrong_pins) == (6, 1, 4, 1, 1)
    assert [(pid, name, c.checks, c.verifications, c.suspicious) for pid, name, c in result.products] == [
        (tea, "Tea", 4, 2, 1),
        (wine, "Wine", 2, 2, 0),
    ]
    assert [(code, c.checks, c.verifications) for code, c in result.provinces] == [
        ("440000", 3, 2),
        ("310000", 2, 1),
        (None, 1, 1),
    ]
    assert only_wine.total.checks == 2
    assert [name for _pid, name, _c in only_wine.products] == ["Wine"]

    await _signed_in(client, runtime, brand, "viewer")
    page = await client.get("/console/authenticity/stats?since=2026-03-01&until=2026-03-03", headers=HTML)
    assert page.status_code == 200
    assert 'data-total="checks">6<' in page.text
    assert 'data-total="suspicious" class="danger">1<' in page.text
    assert re.findall(r'data-day="([\d-]+)" data-checks="(\d+)" data-suspicious="(\d+)"', page.text) == [
        ("2026-03-01", "3", "0"),
        ("2026-03-02", "2", "1"),
        ("2026-03-03", "1", "0"),
    ]
    assert "<svg" in page.text
    assert "Shanghai" in page.text
    assert "Unknown place" in page.text
    too_long = await client.get("/console/authenticity/stats?since=2020-01-01&until=2026-03-03", headers=HTML)
    assert too_long.status_code == 200
    assert "Choose at most 366 days." in too_long.text
    backwards = await client.get("/console/authenticity/stats?since=2026-03-05&until=2026-03-01", headers=HTML)
    assert "The first day is after the last day." in backwards.text


def test_chart_of_an_empty_period() -> None:
    svg = stats.day_chart([(date(2026, 1, 1), stats.Counts())], title="Checks <per> day")
    assert 'data-checks="0"' in svg
    assert "Checks &lt;per&gt; day" in svg


async def _alert(runtime: Runtime, brand: Brand) -> tuple[uuid.UUID, Code]:
    product, (code,) = await _codes(runtime, brand, "6901234567892", "Tea", count=1)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        first = _scan(
            brand,
            code,
            product,
            utcnow() - timedelta(hours=1),
            am.KIND_PIN_OK,
            province="310000",
            city="上海市",
            lat=31.23,
            lon=121.47,
        )
        second = _scan(
            brand,
            code,
            product,
            utcnow(),
            am.KIND_PIN_OK,
            verdict=am.SUSPICIOUS,
            province="440000",
            city="深圳市",
            lat=22.54,
            lon=114.06,
        )
        session.add_all([first, second])
        await session.flush()
        alert = CloneAlert(
            tenant_id=brand.id,
            code_id=code.id,
            serial=code.serial,
            product_id=product,
            first_scan_id=first.id,
            second_scan_id=second.id,
            distance_km=1213.4,
            seconds_between=3600.0,
            speed_kmh=1213.4,
            evidence={"first": {"scan_id": first.id}, "second": {"scan_id": second.id}},
        )
        session.add(alert)
    return alert.id, code


async def test_clone_alert_queue_and_triage(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    alert_id, code = await _alert(runtime, brand)
    csrf = await _signed_in(client, runtime, brand, "operator")
    queue = await client.get("/console/authenticity/alerts", headers=HTML)
    assert queue.status_code == 200
    assert code.serial in queue.text
    assert "1,213 km" in queue.text
    detail = await client.get(f"/console/authenticity/alerts/{alert_id}", headers=HTML)
    assert detail.status_code == 200
    assert "上海市" in detail.text
    assert "深圳市" in detail.text
    assert "31.23, 121.47" in detail.text
    assert 'id="alert-distance">1,213.4 km<' in detail.text
    assert 'id="alert-time">1.00 h<' in detail.text

    url = f"/console/authenticity/alerts/{alert_id}/status"
    no_note = await client.post(url, data={"status": "confirmed", "expected": "open", "csrf_token": csrf}, headers=HTML)
    assert no_note.status_code == 422
    confirmed = await client.post(
        url,
        data={"status": "confirmed", "note": "Two shops sell it.", "expected": "open", "csrf_token": csrf},
        headers=HTML,
    )
    assert confirmed.status_code == 303
    again = await client.post(
        url, data={"status": "dismissed", "note": "x", "expected": "open", "csrf_token": csrf}, headers=HTML
    )
    assert again.status_code == 409
    closed = await client.get(f"/console/authenticity/alerts/{alert_id}", headers=HTML)
    assert 'id="alert-note">Two shops sell it.<' in closed.text
    assert 'id="alert-to-investigating"' in closed.text
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        alert = await session.get(CloneAlert, alert_id)
        assert alert is not None
        assert (alert.status, alert.resolved_by) == ("confirmed", alert.resolved_by)
        assert alert.resolved_at is not None
        actions = [
            e.action for e in await session.scalars(select(AuditEvent).where(AuditEvent.target_id == str(alert_id)))
        ]
    assert actions == ["authenticity.alert.confirmed"]
    listed = await client.get("/console/authenticity/alerts?status=open", headers=HTML)
    assert code.serial not in listed.text


def test_alert_transitions() -> None:
    assert triage.check_alert_transition("open", "investigating", "") == ""
    assert triage.check_alert_transition("open", "dismissed", " same shop ") == "same shop"
    with pytest.raises(Exception, match="Write a note"):
        triage.check_alert_transition("investigating", "confirmed", "")
    with pytest.raises(Exception, match="cannot go to this status"):
        triage.check_alert_transition("confirmed", "dismissed", "x")
    with pytest.raises(Exception, match="already has this status"):
        triage.check_alert_transition("open", "open", "")


async def test_alert_permissions(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    alert_id, _code = await _alert(runtime, brand)
    csrf = await _signed_in(client, runtime, brand, "viewer")
    detail = await client.get(f"/console/authenticity/alerts/{alert_id}", headers=HTML)
    assert detail.status_code == 200, "viewers read alerts"
    assert 'id="alert-triage"' not in detail.text
    refused = await client.post(
        f"/console/authenticity/alerts/{alert_id}/status",
        data={"status": "investigating", "expected": "open", "csrf_token": csrf},
        headers=HTML,
    )
    assert refused.status_code == 403


async def test_code_scan_history_and_report_beside(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    product, (code, untouched) = await _codes(runtime, brand, "6901234567892", "Tea")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        session.add_all(
            [
                _scan(
                    brand,
                    code,
                    product,
                    utcnow() - timedelta(minutes=60 - n),
                    am.KIND_VIEW,
                    province="330000",
                    city="杭州市",
                )
                for n in range(55)
            ]
            + [_scan(brand, code, product, utcnow(), am.KIND_PIN_OK, province="330000", city="杭州市")]
        )
    await _signed_in(client, runtime, brand)
    page = await client.get("/console/authenticity/scans", params={"code": code.serial}, headers=HTML)
    assert page.status_code == 200
    assert page.text.count("data-scan=") == 50
    assert "56 scans" in page.text
    older = re.search(r'href="([^"]+before=\d+)" rel="next"', page.text)
    assert older
    rest = await client.get(older.group(1).replace("&amp;", "&"), headers=HTML)
    assert rest.text.count("data-scan=") == 6
    assert "PIN verified" in page.text
    assert "Zhejiang · 杭州市" in page.text
    unknown = await client.get("/console/authenticity/scans", params={"code": "not a code"}, headers=HTML)
    assert unknown.status_code == 200
    assert 'id="scans-error"' in unknown.text
    lookup = await client.get("/console/codes/lookup", params={"code": code.serial}, headers=HTML)
    assert f"/console/authenticity/scans?code={code.serial}" in lookup.text

    report = await submit(client, brand, fields={"code": code.serial})
    detail = await client.get(f"/console/authenticity/reports/{report.json()['id']}", headers=HTML)
    assert 'id="report-scans"' in detail.text
    assert detail.text.count("data-scan=") == 20
    assert "All 56 scans" in detail.text
    quiet = await submit(client, brand, fields={"code": untouched.serial})
    quiet_page = await client.get(f"/console/authenticity/reports/{quiet.json()['id']}", headers=HTML)
    assert "Nobody has scanned this code yet." in quiet_page.text
    history = await client.get("/console/authenticity/scans", params={"code": code.serial}, headers=HTML)
    assert report.json()["reference"] in history.text, "the code's reports are listed beside its scans"


async def test_the_scan_page_links_to_the_report_form(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    _product, (code,) = await _codes(runtime, brand, "6901234567892", "Tea", count=1)
    page = await client.get(f"/01/06901234567892/21/{code.serial}", headers=HTML)
    assert page.status_code == 200, page.text
    link = re.search(r'id="report-fake" href="([^"]+)"', page.text)
    assert link
    assert link.group(1).startswith(f"/h5/{brand.tenant.slug}/report?code=")
    form = await client.get(link.group(1).replace("&amp;", "&"))
    assert form.status_code == 200
    assert code.serial in form.text
