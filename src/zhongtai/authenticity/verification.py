"""A consumer's check of a code over HTTP, shared by the JSON API, the H5 form and the resolver: who is
checking (keyed hashes, never the raw address), where (browser geolocation only), PIN attempt limits,
and the answer.

PIN attempt limits (GCRA, `Runtime.limiter`: in-process on the embedded tier, Redis in production):

- per code: `pin_attempts_per_code` attempts per `pin_lock_minutes`. An attempt is spent *before* the
  PIN is compared, so that parallel guesses cannot overshoot; a right PIN forgives the code's earlier
  wrong ones. Out of attempts, the code is locked: even the right PIN is refused until the allowance
  refills (one attempt per `pin_lock_minutes / pin_attempts_per_code`).
- per client (cookie, else address + user agent) and per network address: `pin_attempts_per_client`
  and `pin_attempts_per_network` *wrong* PINs per hour, over all codes, so that guessing across many
  codes is stopped too.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai import geo
from zhongtai.authenticity import models as m
from zhongtai.authenticity import rules, service
from zhongtai.authenticity.resolver import Resolved, pin_key
from zhongtai.codes import rules as code_rules
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import BadRequest, ValidationFailed
from zhongtai.core.ratelimit import RateDecision
from zhongtai.core.runtime import Runtime
from zhongtai.core.web import client_ip
from zhongtai.kit.cache import TTLCache

CLIENT_COOKIE = "zt_cid"
CLIENT_HOUR = 3600.0
LOCK_MEMO_SIZE = 50_000


class InvalidPin(ValidationFailed):
    code = "pin_invalid"
    default_message = "The PIN is the 8 digits under the scratch-off coating."


class NoPin(BadRequest):
    code = "code_has_no_pin"
    default_message = "This code has no hidden PIN to check: only single items carry one."


class InvalidLocation(ValidationFailed):
    code = "location_invalid"


@dataclass(frozen=True)
class Answer:
    """What a PIN check answers: the verdict and what the consumer needs to read it."""

    verdict: str
    reason: str | None = None
    outcome: service.Outcome | None = None
    attempts_left: int | None = None
    retry_after_seconds: int | None = None
    locked_by: str | None = None  # code, client or network


# Codes this process saw locked: until when, by which limit, and the brand's contact line. A guesser
# hammering a locked code is answered from here, without a database query — with the same contact line
# as the first locked answer. Only a shortcut — the limiter stays the authority (and is shared between
# processes in production).
_locked_codes: TTLCache[str, tuple[float, str, str]] = TTLCache(
    "authenticity.locked_codes", ttl=3600, maxsize=LOCK_MEMO_SIZE
)


def remembered_lock(serial: str) -> tuple[Answer, str] | None:
    """The lock answer and the brand's contact line for a code this process saw locked and whose lock
    has not expired."""
    memo = _locked_codes.get(serial)
    if memo is None:
        return None
    left = memo[0] - time.monotonic()
    if left <= 0:
        _locked_codes.pop(serial)
        return None
    return Answer(m.LOCKED, retry_after_seconds=max(1, math.ceil(left)), locked_by=memo[1]), memo[2]


def remember_lock(serial: str, retry_after: float, scope: str, contact: str) -> None:
    if scope != "code":
        return
    _locked_codes.set(serial, (time.monotonic() + retry_after, scope, contact), ttl=retry_after)


def check_pin_format(pin: str) -> str:
    value = pin.strip().replace(" ", "").replace("-", "")
    if len(value) != code_rules.PIN_DIGITS or not value.isascii() or not value.isdigit():
        raise InvalidPin()
    return value


def region_of(location: rules.Located | None) -> service.Region:
    """Province and city of a WGS-84 point, resolved offline (zhongtai.geo); none outside China."""
    if location is None:
        return service.Region()
    found = geo.locate(geo.Point(location.latitude, location.longitude))
    if found is None:
        return service.Region()
    return service.Region(found.province_code, found.city_code, found.city_name or found.province_name)


def client_hash_of(request: Request, crypto: Crypto) -> str:
    """The keyed hash of this browser (its `zt_cid` cookie, else address and user agent) that scans carry."""
    client = (
        request.cookies.get(CLIENT_COOKIE)
        or f"{client_ip(request) or 'unknown'}|{request.headers.get('user-agent', '')}"
    )
    return str(crypto.lookup_hash(client[:200], purpose="authenticity.client"))[:32]


def check_context(
    request: Request,
    runtime: Runtime,
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    accuracy_m: float | None = None,
    consumer_id: uuid.UUID | None = None,
) -> service.CheckContext:
    now = utcnow()
    try:
        location = rules.check_location(now, latitude, longitude, accuracy_m)
    except ValueError as exc:
        raise InvalidLocation(str(exc)) from exc
    address = client_ip(request) or "unknown"
    user_agent = request.headers.get("user-agent", "")
    crypto = runtime.crypto
    return service.CheckContext(
        occurred_at=now,
        location=location,
        accuracy_m=accuracy_m,
        region=region_of(location),
        network_hash=crypto.lookup_hash(address, purpose="authenticity.network")[:32],
        client_hash=client_hash_of(request, crypto),
        consumer_id=consumer_id,
        ua_class=rules.ua_class(user_agent),
    )


def limit_keys(resolved: Resolved, ctx: service.CheckContext) -> tuple[str, str, str]:
    return (
        f"pin:code:{resolved.ref.code_id}",
        f"pin:client:{ctx.client_hash}",
        f"pin:net:{ctx.network_hash}",
    )


def _retry(decision: RateDecision) -> int:
    return max(1, math.ceil(decision.retry_after))


async def do_check_pin(
    session: AsyncSession, runtime: Runtime, resolved: Resolved, pin: str, ctx: service.CheckContext
) -> Answer:
    """Check the PIN of a resolved code and record the check; the session is scoped to its brand."""
    if not resolved.has_pin:
        raise NoPin()
    value = check_pin_format(pin)
    thresholds = await service.get_thresholds(session, resolved.ref.tenant_id)
    limiter = runtime.limiter
    code_key, client_key, net_key = limit_keys(resolved, ctx)
    code_period = thresholds.pin_lock_minutes * 60.0
    code_limit = thresholds.pin_attempts_per_code
    by_code, by_client, by_net = await asyncio.gather(
        limiter.hit(code_key, limit=code_limit, period=code_period),
        limiter.hit(client_key, limit=thresholds.pin_attempts_per_client, period=CLIENT_HOUR, cost=0),
        limiter.hit(net_key, limit=thresholds.pin_attempts_per_network, period=CLIENT_HOUR, cost=0),
    )
    for scope, decision in (("code", by_code), ("client", by_client), ("network", by_net)):
        if not decision.allowed:
            remember_lock(resolved.ref.serial, decision.retry_after, scope, thresholds.contact)
            return Answer(m.LOCKED, retry_after_seconds=_retry(decision), locked_by=scope)
    assert resolved.batch.pin_key_version is not None
    key = await pin_key(session, runtime.crypto, resolved.ref.tenant_id, resolved.batch.pin_key_version)
    if code_rules.check_pin(key, resolved.ref.serial, value):
        if by_code.remaining < code_limit - 1:  # earlier wrong attempts to forgive (else no round trip)
            await limiter.reset(code_key)
        outcome = await service.do_record_verification(session, resolved.ref, ctx, thresholds)
        return Answer(outcome.verdict, outcome.reason, outcome)
    await asyncio.gather(
        limiter.hit(client_key, limit=thresholds.pin_attempts_per_client, period=CLIENT_HOUR),
        limiter.hit(net_key, limit=thresholds.pin_attempts_per_network, period=CLIENT_HOUR),
    )
    await service.do_record_wrong_pin(session, resolved.ref, ctx)
    left = by_code.remaining
    retry = None if left > 0 else math.ceil(code_period / code_limit)
    return Answer(m.WRONG_PIN, attempts_left=left, retry_after_seconds=retry)
