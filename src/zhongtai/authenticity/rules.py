"""Pure rules of authenticity: the verdict of a PIN check, clone detection, thresholds. No I/O.

Verdict of a check whose PIN matched (docs/authenticity.md):

1. the code was never commissioned (still `generated`)          → suspicious (not_commissioned)
2. the code was voided or decommissioned                          → suspicious (voided)
3. the code was already marked a clone                            → suspicious (clone)
4. this check is farther from the previous located one than the
   speed threshold allows (and farther than the minimum distance)  → suspicious (clone), alert raised
5. this is verification number n > max_verifications              → suspicious (too_many)
6. n == 1                                                         → genuine
7. otherwise                                                      → verified_before (with the first's time and city)

A wrong PIN is `wrong_pin`; a code, client or network out of PIN attempts is `locked`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from zhongtai import geo
from zhongtai.authenticity import models as m
from zhongtai.codes import states as codes_states

# States of a code in which a matched PIN proves nothing good.
NOT_COMMISSIONED_STATES = frozenset({codes_states.GENERATED})
VOIDED_STATES = frozenset({codes_states.VOIDED, codes_states.DECOMMISSIONED})


@dataclass(frozen=True)
class Thresholds:
    """A brand's authenticity settings (defaults below; each documented in docs/authenticity.md)."""

    max_verifications: int = 20
    clone_speed_kmh: float = 800.0  # faster than an airliner's average door-to-door speed
    clone_min_distance_km: float = 50.0  # below this, GPS error and neighbouring cities are no evidence
    pin_attempts_per_code: int = 5  # wrong PINs per code …
    pin_lock_minutes: int = 30  # … per this window; then the code is locked until the window refills
    pin_attempts_per_client: int = 20  # wrong PINs per client (any code) per hour
    pin_attempts_per_network: int = 100  # wrong PINs per network address (any code) per hour
    contact: str = ""


DEFAULTS = Thresholds()

LIMITS = {
    "max_verifications": (1, 100_000),
    "clone_speed_kmh": (50.0, 100_000.0),
    "clone_min_distance_km": (1.0, 20_000.0),
    "pin_attempts_per_code": (1, 100),
    "pin_lock_minutes": (1, 7 * 24 * 60),
    "pin_attempts_per_client": (1, 10_000),
    "pin_attempts_per_network": (1, 100_000),
}


@dataclass(frozen=True)
class Located:
    """A past or present check with a place: when and where (WGS-84)."""

    at: datetime
    latitude: float
    longitude: float


@dataclass(frozen=True)
class CloneEvidence:
    distance_km: float
    seconds_between: float
    speed_kmh: float


def distance_km(a: Located, b: Located) -> float:
    """Great-circle distance between two WGS-84 points (zhongtai.geo)."""
    return geo.distance_km(geo.Point(a.latitude, a.longitude), geo.Point(b.latitude, b.longitude))


def clone_evidence(previous: Located | None, current: Located | None, thresholds: Thresholds) -> CloneEvidence | None:
    """Evidence of a clone when the two checks are farther apart than `clone_min_distance_km` and
    reaching one from the other would need more than `clone_speed_kmh`; None otherwise."""
    if previous is None or current is None:
        return None
    distance = distance_km(previous, current)
    if distance <= thresholds.clone_min_distance_km:
        return None
    seconds = abs((current.at - previous.at).total_seconds())
    speed = math.inf if seconds < 1 else distance / (seconds / 3600)
    if speed <= thresholds.clone_speed_kmh:
        return None
    return CloneEvidence(round(distance, 3), seconds, round(speed, 1) if math.isfinite(speed) else 1e9)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str | None = None


def verdict_of(
    *,
    code_state: int,
    already_clone: bool,
    clone: CloneEvidence | None,
    verification_number: int,
    thresholds: Thresholds,
) -> Verdict:
    """The verdict of a check whose PIN matched; `verification_number` counts this one (1 = first)."""
    if code_state in NOT_COMMISSIONED_STATES:
        return Verdict(m.SUSPICIOUS, m.REASON_NOT_COMMISSIONED)
    if code_state in VOIDED_STATES:
        return Verdict(m.SUSPICIOUS, m.REASON_VOIDED)
    if already_clone or clone is not None:
        return Verdict(m.SUSPICIOUS, m.REASON_CLONE)
    if verification_number > thresholds.max_verifications:
        return Verdict(m.SUSPICIOUS, m.REASON_TOO_MANY)
    if verification_number == 1:
        return Verdict(m.GENUINE)
    return Verdict(m.VERIFIED_BEFORE)


def check_location(
    at: datetime, latitude: float | None, longitude: float | None, accuracy_m: float | None
) -> Located | None:
    """Validate browser coordinates; both or neither. Raises ValueError with a reason."""
    if latitude is None and longitude is None:
        return None
    if latitude is None or longitude is None:
        raise ValueError("Give both latitude and longitude, or neither.")
    if not (math.isfinite(latitude) and -90 <= latitude <= 90):
        raise ValueError("The latitude must be between -90 and 90.")
    if not (math.isfinite(longitude) and -180 <= longitude <= 180):
        raise ValueError("The longitude must be between -180 and 180.")
    if accuracy_m is not None and not (math.isfinite(accuracy_m) and 0 <= accuracy_m <= 1_000_000):
        raise ValueError("The accuracy must be between 0 and 1,000,000 metres.")
    return Located(at, latitude, longitude)


def ua_class(user_agent: str | None) -> str:
    """A coarse client class from the User-Agent header; the header itself is not stored."""
    ua = (user_agent or "").lower()
    if not ua:
        return m.UA_OTHER
    if "micromessenger" in ua:
        return m.UA_WECHAT
    if "alipayclient" in ua:
        return m.UA_ALIPAY
    if any(word in ua for word in ("bot", "spider", "crawl", "curl", "python", "httpx", "wget")):
        return m.UA_BOT
    if any(word in ua for word in ("mobile", "android", "iphone", "ipad", "harmonyos")):
        return m.UA_MOBILE
    if "mozilla" in ua:
        return m.UA_DESKTOP
    return m.UA_OTHER
