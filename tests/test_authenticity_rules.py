"""Pure rules of authenticity: verdict order, clone evidence, coordinates, client classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zhongtai.authenticity import models as m
from zhongtai.authenticity import rules
from zhongtai.codes import models as codes_models

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
DEFAULTS = rules.DEFAULTS


def verdict(state: int = codes_models.COMMISSIONED, *, n: int = 1, clone: bool = False, marked: bool = False) -> tuple:
    evidence = rules.CloneEvidence(100.0, 60.0, 6000.0) if clone else None
    result = rules.verdict_of(
        code_state=state, already_clone=marked, clone=evidence, verification_number=n, thresholds=DEFAULTS
    )
    return result.verdict, result.reason


def test_verdicts_in_order_of_precedence() -> None:
    assert verdict() == (m.GENUINE, None)
    assert verdict(n=2) == (m.VERIFIED_BEFORE, None)
    assert verdict(n=DEFAULTS.max_verifications) == (m.VERIFIED_BEFORE, None)
    assert verdict(n=DEFAULTS.max_verifications + 1) == (m.SUSPICIOUS, m.REASON_TOO_MANY)
    assert verdict(clone=True) == (m.SUSPICIOUS, m.REASON_CLONE)
    assert verdict(n=2, marked=True) == (m.SUSPICIOUS, m.REASON_CLONE)
    assert verdict(codes_models.GENERATED, clone=True) == (m.SUSPICIOUS, m.REASON_NOT_COMMISSIONED)
    assert verdict(codes_models.VOIDED) == (m.SUSPICIOUS, m.REASON_VOIDED)
    for state in (codes_models.PACKED, codes_models.SHIPPED, codes_models.SOLD, codes_models.OPENED):
        assert verdict(state) == (m.GENUINE, None)


def located(hours: float, lat: float, lon: float) -> rules.Located:
    return rules.Located(T0 + timedelta(hours=hours), lat, lon)


def test_clone_evidence_needs_distance_and_speed() -> None:
    shanghai, beijing = (31.2304, 121.4737), (39.9042, 116.4074)
    assert rules.distance_km(located(0, *shanghai), located(0, *beijing)) == pytest.approx(1067.3, abs=2)
    one_hour = rules.clone_evidence(located(0, *shanghai), located(1, *beijing), DEFAULTS)
    assert one_hour is not None
    assert one_hour.seconds_between == 3600
    assert one_hour.speed_kmh == pytest.approx(one_hour.distance_km, rel=1e-3)
    assert rules.clone_evidence(located(0, *shanghai), located(2, *beijing), DEFAULTS) is None  # ~534 km/h
    # 40 km within a second is below the minimum distance: GPS error and neighbouring towns.
    assert rules.clone_evidence(located(0, 31.0, 121.0), located(0, 31.36, 121.0), DEFAULTS) is None
    same_second = rules.clone_evidence(located(0, *shanghai), located(0, *beijing), DEFAULTS)
    assert same_second is not None
    assert same_second.speed_kmh == 1e9
    assert rules.clone_evidence(None, located(0, *beijing), DEFAULTS) is None


@pytest.mark.parametrize(
    ("lat", "lon", "accuracy", "problem"),
    [
        (91.0, 0.0, None, "latitude"),
        (0.0, 181.0, None, "longitude"),
        (float("nan"), 0.0, None, "latitude"),
        (1.0, None, None, "both"),
        (1.0, 1.0, -5.0, "accuracy"),
    ],
)
def test_bad_coordinates_are_refused(lat: float, lon: float | None, accuracy: float | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        rules.check_location(T0, lat, lon, accuracy)


def test_coordinates_or_none() -> None:
    assert rules.check_location(T0, None, None, None) is None
    assert rules.check_location(T0, 31.2, 121.4, 20.0) == rules.Located(T0, 31.2, 121.4)


def test_user_agent_classes() -> None:
    wechat = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.40"
    assert rules.ua_class(wechat) == m.UA_WECHAT
    assert rules.ua_class("Mozilla/5.0 (Linux; Android 14) AlipayClient/10.5") == m.UA_ALIPAY
    assert rules.ua_class("Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36") == m.UA_MOBILE
    assert rules.ua_class("Mozilla/5.0 (X11; Linux x86_64) Chrome/120") == m.UA_DESKTOP
    assert rules.ua_class("python-httpx/0.27") == m.UA_BOT
    assert rules.ua_class(None) == m.UA_OTHER


def test_every_consumer_message_has_a_chinese_translation() -> None:
    from zhongtai.authenticity import api, h5, resolver, verification
    from zhongtai.i18n import catalog

    messages = [
        *api.VERDICT_TITLES.values(),
        *api.REASON_TEXTS.values(),
        *api.LOCKED_TEXTS.values(),
        api.GENUINE_TEXT,
        api.BEFORE_TEXT,
        api.BEFORE_PLACE,
        api.WRONG_TEXT,
        api.WRONG_LAST_TEXT,
        api.SUSPICIOUS_ADVICE,
        api.PinLocked.default_message,
        verification.InvalidPin.default_message,
        verification.NoPin.default_message,
        *h5._script_messages("en").values(),
        "Give both latitude and longitude, or neither.",
        "The latitude must be between -90 and 90.",
        "The longitude must be between -180 and 180.",
        "The accuracy must be between 0 and 1,000,000 metres.",
        "The location is not a number.",
        "A short link carries a 16-character serial.",
        "An SSCC has 18 digits.",
    ]
    assert resolver.CACHE_SECONDS > 0
    missing = [message for message in messages if message not in catalog("zh-CN")]
    assert missing == []
