"""The scan record, the per-code summary, verdicts, clone alerts and settings, through the service.
Both tiers; the code references are crafted (the resolver's lookup is tested with the HTTP tests)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import make_brand
from tests.test_codes_api import run_jobs
from zhongtai.authenticity import models as m
from zhongtai.authenticity import rules, service
from zhongtai.codes import models as codes_models
from zhongtai.core.runtime import Runtime

SHANGHAI = (31.2304, 121.4737)
SUZHOU = (31.2989, 120.5853)  # ~85 km from Shanghai
BEIJING = (39.9042, 116.4074)  # ~1,068 km from Shanghai
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def ref(tenant_id: uuid.UUID, code_id: int = 1001, state: int = codes_models.COMMISSIONED) -> service.CodeRef:
    return service.CodeRef(
        tenant_id=tenant_id, code_id=code_id, serial=f"SERIAL{code_id:010d}", state=state, gtin="06901234567892"
    )


def ctx(at: datetime, where: tuple[float, float] | None = None, city: str | None = None) -> service.CheckContext:
    location = rules.Located(at, where[0], where[1]) if where else None
    region = service.Region("310000", "310100", city) if city else service.Region()
    return service.CheckContext(occurred_at=at, location=location, accuracy_m=30.0 if where else None, region=region)


async def verify(runtime: Runtime, code: service.CodeRef, context: service.CheckContext) -> service.Outcome:
    async with runtime.db.unit_of_work(tenant_id=code.tenant_id) as session:
        thresholds = await service.get_thresholds(session, code.tenant_id, cached=False)
        return await service.do_record_verification(session, code, context, thresholds)


async def test_first_check_is_genuine_then_verified_before_then_too_many(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await service.do_update_settings(session, brand.id, {"max_verifications": 3})
    code = ref(brand.id)
    first = await verify(runtime, code, ctx(T0, SHANGHAI, "上海市"))
    assert (first.verdict, first.reason, first.verification_number) == (m.GENUINE, None, 1)
    assert (first.first_verified_at, first.first_city_name) == (T0, "上海市")
    second = await verify(runtime, code, ctx(T0 + timedelta(days=1)))
    assert (second.verdict, second.verification_number) == (m.VERIFIED_BEFORE, 2)
    assert (second.first_verified_at, second.first_city_name, second.first_province_code) == (T0, "上海市", "310000")
    third = await verify(runtime, code, ctx(T0 + timedelta(days=2)))
    fourth = await verify(runtime, code, ctx(T0 + timedelta(days=3)))
    assert (third.verdict, fourth.verdict, fourth.reason) == (m.VERIFIED_BEFORE, m.SUSPICIOUS, m.REASON_TOO_MANY)

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        summary = await service.summary_of(session, code.code_id)
        history = await service.scan_history(session, code.code_id)
    assert summary is not None
    assert (summary.verify_count, summary.first_verified_at, summary.first_city_name) == (4, T0, "上海市")
    assert (summary.first_scan_id, summary.last_scan_id) == (first.scan_id, fourth.scan_id)
    assert [scan.verdict for scan in history] == [m.SUSPICIOUS, m.VERIFIED_BEFORE, m.VERIFIED_BEFORE, m.GENUINE]
    assert [scan.verification_number for scan in history] == [4, 3, 2, 1]
    assert (history[-1].latitude, history[-1].longitude, history[-1].kind) == (*SHANGHAI, m.KIND_PIN_OK)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (codes_models.GENERATED, m.REASON_NOT_COMMISSIONED),
        (codes_models.VOIDED, m.REASON_VOIDED),
        (codes_models.DECOMMISSIONED, m.REASON_VOIDED),
    ],
)
async def test_uncommissioned_or_voided_code_is_suspicious(runtime: Runtime, state: int, reason: str) -> None:
    brand = await make_brand(runtime)
    outcome = await verify(runtime, ref(brand.id, state=state), ctx(T0))
    assert (outcome.verdict, outcome.reason, outcome.verification_number) == (m.SUSPICIOUS, reason, 1)


async def test_views_and_wrong_pins_are_recorded_and_counted(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    code = ref(brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        first = await service.do_record_view(session, code, ctx(T0))
        second = await service.do_record_view(session, code, ctx(T0 + timedelta(seconds=5)))
    assert (first.view_count, second.view_count, second.verify_count, second.first_verified_at) == (1, 2, 0, None)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await service.do_record_wrong_pin(session, code, ctx(T0 + timedelta(seconds=9)))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        summary = await service.summary_of(session, code.code_id)
        history = await service.scan_history(session, code.code_id)
        assert await service.count_scans(session, code.code_id) == 3
    assert summary is not None
    assert (summary.view_count, summary.verify_count, summary.wrong_pin_count) == (2, 0, 1)
    assert summary.first_verified_at is None
    assert [(scan.kind, scan.verdict) for scan in history] == [
        (m.KIND_PIN_BAD, m.WRONG_PIN),
        (m.KIND_VIEW, None),
        (m.KIND_VIEW, None),
    ]


async def test_far_apart_checks_raise_a_clone_alert_and_later_verdicts_stay_suspicious(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    code = ref(brand.id)
    first = await verify(runtime, code, ctx(T0, SHANGHAI, "上海市"))
    unlocated = await verify(runtime, code, ctx(T0 + timedelta(minutes=10)))  # no place: no evidence either way
    near = await verify(runtime, code, ctx(T0 + timedelta(minutes=30), SUZHOU))  # 85 km in 30 min: 170 km/h
    assert (first.verdict, unlocated.verdict, near.verdict) == (m.GENUINE, m.VERIFIED_BEFORE, m.VERIFIED_BEFORE)
    far = await verify(runtime, code, ctx(T0 + timedelta(hours=1), BEIJING))  # ~1,000 km from Suzhou in 30 min
    assert (far.verdict, far.reason) == (m.SUSPICIOUS, m.REASON_CLONE)
    assert far.clone is not None
    assert 950 < far.clone.distance_km < 1050
    assert far.clone.seconds_between == 1800
    assert far.clone.speed_kmh == pytest.approx(far.clone.distance_km * 2, rel=1e-3)
    # Later checks — even from the same place, days later — stay suspicious.
    later = await verify(runtime, code, ctx(T0 + timedelta(days=3), BEIJING))
    assert (later.verdict, later.reason, later.clone) == (m.SUSPICIOUS, m.REASON_CLONE, None)

    await run_jobs(runtime)
    await run_jobs(runtime)  # idempotent
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        alerts = await service.list_clone_alerts(session)
        summary = await service.summary_of(session, code.code_id)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.code_id, alert.status, alert.first_scan_id, alert.second_scan_id) == (
        code.code_id,
        m.ALERT_OPEN,
        near.scan_id,
        far.scan_id,
    )
    assert (alert.distance_km, alert.seconds_between) == (far.clone.distance_km, 1800)
    assert alert.evidence["first"]["latitude"] == SUZHOU[0]
    assert alert.evidence["second"]["longitude"] == BEIJING[1]
    assert summary is not None
    assert (summary.suspicious_reason, summary.suspicious_since) == (m.REASON_CLONE, T0 + timedelta(hours=1))


async def test_slow_travel_is_no_clone(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    code = ref(brand.id)
    await verify(runtime, code, ctx(T0, SHANGHAI))
    outcome = await verify(runtime, code, ctx(T0 + timedelta(hours=3), BEIJING))  # ~356 km/h: a fast train
    assert (outcome.verdict, outcome.clone) == (m.VERIFIED_BEFORE, None)


async def test_concurrent_first_checks_number_each_verification_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    code = ref(brand.id)
    outcomes = await asyncio.gather(*(verify(runtime, code, ctx(T0 + timedelta(seconds=i))) for i in range(8)))
    assert sorted(outcome.verification_number or 0 for outcome in outcomes) == list(range(1, 9))
    assert [outcome.verdict for outcome in outcomes].count(m.GENUINE) == 1
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        summary = await service.summary_of(session, code.code_id)
    assert summary is not None
    assert summary.verify_count == 8


async def test_settings_default_update_and_refuse_bad_values(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.get_thresholds(session, brand.id, cached=False) == rules.DEFAULTS
        updated = await service.do_update_settings(session, brand.id, {"clone_speed_kmh": 600, "contact": "400-800"})
    assert (updated.clone_speed_kmh, updated.contact, updated.max_verifications) == (600, "400-800", 20)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await service.get_thresholds(session, brand.id) == updated
        for bad in ({"max_verifications": 0}, {"pin_attempts_per_code": 2.5}, {"nope": 1}, {"contact": 5}):
            with pytest.raises(service.InvalidAuthenticitySettings):
                await service.do_update_settings(session, brand.id, bad)


async def test_brands_see_only_their_own_scans_and_alerts(runtime: Runtime) -> None:
    brand, other = await make_brand(runtime), await make_brand(runtime)
    code = ref(brand.id)
    await verify(runtime, code, ctx(T0, SHANGHAI))
    async with runtime.db.unit_of_work(tenant_id=other.id) as session:
        assert await service.scan_history(session, code.code_id) == []
        assert await service.summary_of(session, code.code_id) is None
