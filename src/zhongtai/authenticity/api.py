"""Authenticity over JSON: the public PIN check (`POST /api/v1/authenticity/verify`), and for the brand
its thresholds, a code's scan history and the clone alerts.

The public endpoint is limited per network address (`ZT_SCAN_REQUESTS_PER_MINUTE`) and PIN attempts
per code, client and address (verification.py); a locked code answers 429 `pin_locked` with when to
try again and whom to contact.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import hot, resolver, rules, service, triage, verification
from zhongtai.authenticity import models as m
from zhongtai.authenticity import persist as _persist  # noqa: F401 -- registers the scan stream worker
from zhongtai.authenticity.permissions import AUTHENTICITY_MANAGE, AUTHENTICITY_READ
from zhongtai.authenticity.resolver import Resolved
from zhongtai.core import consumers, tenancy
from zhongtai.core.errors import RateLimited
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, PageDep, RuntimeDep, client_ip, get_runtime, require
from zhongtai.i18n import translate
from zhongtai.kit.rendering import request_locale

router = APIRouter(prefix="/api/v1/authenticity", tags=["authenticity"])
Reader = Annotated[Principal, Depends(require(AUTHENTICITY_READ))]
Manager = Annotated[Principal, Depends(require(AUTHENTICITY_MANAGE))]


class PinLocked(RateLimited):
    code = "pin_locked"
    default_message = "Too many wrong PINs. Try again later or contact the brand."


async def scan_rate_limit(request: Request) -> None:
    """At most ZT_SCAN_REQUESTS_PER_MINUTE public scan requests per minute per network address."""
    runtime = get_runtime(request)
    decision = await runtime.limiter.hit(
        f"rl:scan:{client_ip(request) or 'unknown'}", limit=runtime.settings.scan_requests_per_minute, period=60.0
    )
    if not decision.allowed:
        raise RateLimited(retry_after=decision.retry_after)


# Messages a consumer reads (translated; tests/test_i18n.py checks them through h5.py's tr()).
VERDICT_TITLES = {
    m.GENUINE: "Genuine",
    m.VERIFIED_BEFORE: "Genuine, verified before",
    m.SUSPICIOUS: "Suspicious",
    m.WRONG_PIN: "Wrong PIN",
    m.LOCKED: "Locked",
}
REASON_TEXTS = {
    m.REASON_NOT_COMMISSIONED: "The brand never put this code into circulation.",
    m.REASON_VOIDED: "The brand voided this code.",
    m.REASON_TOO_MANY: "This code has been verified too many times.",
    m.REASON_CLONE: "This code was verified in places too far apart for the time between them.",
}
GENUINE_TEXT = "This is the first verification of this code."
BEFORE_TEXT = "This code was first verified on {time}{place}. If that was not you, the product may be a copy."
BEFORE_PLACE = " in {city}"
WRONG_TEXT = "The PIN does not match. Attempts left: {left}."
WRONG_LAST_TEXT = "The PIN does not match. No attempts left: try again in {minutes} minutes."
LOCKED_TEXTS = {
    "code": "Too many wrong PINs for this code. Try again in {minutes} minutes, or contact the brand.",
    "client": "Too many wrong PINs from this device. Try again in {minutes} minutes, or contact the brand.",
    "network": "Too many wrong PINs from this network. Try again in {minutes} minutes, or contact the brand.",
}
SUSPICIOUS_ADVICE = "Do not consume it; report it to the brand."


def local_time(value: datetime, locale: str) -> str:
    """China Standard Time, as a consumer reads it."""
    from datetime import timedelta, timezone

    shown = value.astimezone(timezone(timedelta(hours=8)))
    return shown.strftime("%Y-%m-%d %H:%M") if locale != "en" else shown.strftime("%Y-%m-%d %H:%M (UTC+8)")


def answer_text(answer: verification.Answer, locale: str) -> str:
    """The sentence under the verdict, in the consumer's language."""
    minutes = max(1, -(-(answer.retry_after_seconds or 60) // 60))
    if answer.verdict == m.GENUINE:
        return translate(locale, GENUINE_TEXT)
    if answer.verdict == m.VERIFIED_BEFORE and answer.outcome and answer.outcome.first_verified_at:
        city = answer.outcome.first_city_name
        place = translate(locale, BEFORE_PLACE, city=city) if city else ""
        return translate(locale, BEFORE_TEXT, time=local_time(answer.outcome.first_verified_at, locale), place=place)
    if answer.verdict == m.SUSPICIOUS and answer.reason:
        return translate(locale, REASON_TEXTS[answer.reason]) + " " + translate(locale, SUSPICIOUS_ADVICE)
    if answer.verdict == m.WRONG_PIN:
        if answer.attempts_left:
            return translate(locale, WRONG_TEXT, left=answer.attempts_left)
        return translate(locale, WRONG_LAST_TEXT, minutes=minutes)
    if answer.verdict == m.LOCKED:
        return translate(locale, LOCKED_TEXTS[answer.locked_by or "code"], minutes=minutes)
    return ""


class VerifyIn(BaseModel):
    code: str = Field(min_length=1, max_length=300, description="the Digital Link, short URL, serial or SSCC")
    pin: str = Field(min_length=1, max_length=20, description="the hidden PIN under the scratch-off coating")
    latitude: float | None = Field(default=None, description="WGS-84, from the browser's Geolocation API")
    longitude: float | None = Field(default=None, description="WGS-84")
    accuracy: float | None = Field(default=None, description="metres, as the Geolocation API gives it")


class ProductOut(BaseModel):
    name: str
    gtin: str
    specification: str


class CodeOut(BaseModel):
    serial: str
    uri: str
    level: str
    state: str
    has_pin: bool


class VerifyOut(BaseModel):
    verdict: str = Field(description="genuine, verified_before, suspicious or wrong_pin")
    reason: str | None = Field(description="why suspicious: not_commissioned, voided, too_many or clone")
    title: str
    message: str = Field(description="what the verdict means, in the caller's language")
    verification_number: int | None = Field(description="1 for the first PIN verification of this code")
    first_verified_at: datetime | None
    first_verified_city: str | None
    attempts_left: int | None = Field(description="after a wrong PIN: attempts before the code locks")
    retry_after_seconds: int | None
    code: CodeOut
    product: ProductOut
    lot: str | None
    brand: str
    contact: str


def code_out(resolved: Resolved) -> CodeOut:
    return CodeOut(
        serial=resolved.ref.serial,
        uri=resolved.uri,
        level=resolved.level_name,
        state=resolved.state_name,
        has_pin=resolved.has_pin,
    )


def product_out(resolved: Resolved) -> ProductOut:
    batch = resolved.batch
    return ProductOut(name=batch.product_name, gtin=batch.gtin, specification=resolved.specification)


def verify_out(resolved: Resolved, answer: verification.Answer, locale: str, contact: str) -> VerifyOut:
    outcome = answer.outcome
    return VerifyOut(
        verdict=answer.verdict,
        reason=answer.reason,
        title=translate(locale, VERDICT_TITLES[answer.verdict]),
        message=answer_text(answer, locale),
        verification_number=outcome.verification_number if outcome else None,
        first_verified_at=outcome.first_verified_at if outcome else None,
        first_verified_city=outcome.first_city_name if outcome else None,
        attempts_left=answer.attempts_left,
        retry_after_seconds=answer.retry_after_seconds,
        code=code_out(resolved),
        product=product_out(resolved),
        lot=resolved.lot_number,
        brand=resolved.tenant.name,
        contact=contact,
    )


async def check(
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    resolved: Resolved,
    pin: str,
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    accuracy: float | None = None,
) -> tuple[verification.Answer, str]:
    """Run one PIN check; returns the answer and the brand's contact line."""
    consumer_id = await signed_in_consumer(request, session, resolved.ref.tenant_id)
    ctx = verification.check_context(
        request, runtime, latitude=latitude, longitude=longitude, accuracy_m=accuracy, consumer_id=consumer_id
    )
    if hot.enabled(runtime):
        answer, _ = await hot.check_pin(request, runtime, resolved, pin, ctx)
    else:
        answer = await verification.do_check_pin(session, runtime, resolved, pin, ctx)
    contact = (await service.get_thresholds(session, resolved.ref.tenant_id)).contact
    return answer, contact


async def signed_in_consumer(request: Request, session: AsyncSession | None, tenant_id: uuid.UUID) -> uuid.UUID | None:
    """The consumer signed in with a bearer token of this brand, if any (a check is never refused for it:
    an unknown token or another brand's consumer checks anonymously)."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip().startswith("ztc_"):
        return None
    if session is None:
        async with get_runtime(request).db.read_only(all_tenants=True) as own:
            principal = await consumers.authenticate_consumer(own, credential.strip())
    else:
        principal = await consumers.authenticate_consumer(session, credential.strip())
        tenancy.scope_to_tenant(session, tenant_id)
    return principal.id if principal is not None and principal.tenant_id == tenant_id else None


@router.post("/verify", response_model=VerifyOut)
async def verify(request: Request, body: VerifyIn) -> VerifyOut:
    """Check a code's hidden PIN. Public: no sign-in. Every answer is recorded with the code's scans."""
    runtime = get_runtime(request)  # not a dependency: a sync one costs a thread hop per request
    parsed = resolver.parse(body.code)
    locale = request_locale(request)
    if hot.enabled(runtime):
        # PostgreSQL + Redis: no transaction here; the request limit is part of the one script call.
        remembered = verification.remembered_lock(parsed.key)
        if remembered is not None:
            await scan_rate_limit(request)
            raise _locked(*remembered, locale=locale)
        resolved, epoch, seed = await hot.resolve(runtime, parsed)
        consumer_id = await signed_in_consumer(request, None, resolved.ref.tenant_id)
        ctx = verification.check_context(
            request,
            runtime,
            latitude=body.latitude,
            longitude=body.longitude,
            accuracy_m=body.accuracy,
            consumer_id=consumer_id,
        )
        answer, resolved = await hot.check_pin(
            request, runtime, resolved, body.pin, ctx, epoch=epoch, seed=seed, parsed=parsed
        )
        thresholds = service.cached_thresholds(resolved.ref.tenant_id) or rules.DEFAULTS
        contact = thresholds.contact
    else:
        await scan_rate_limit(request)
        remembered = verification.remembered_lock(parsed.key)
        if remembered is not None:
            raise _locked(*remembered, locale=locale)
        async with runtime.db.unit_of_work() as session:
            request.state.db = session
            resolved = await resolver.resolve(session, parsed)
            answer, contact = await check(
                request,
                session,
                runtime,
                resolved,
                body.pin,
                latitude=body.latitude,
                longitude=body.longitude,
                accuracy=body.accuracy,
            )
    if answer.verdict == m.LOCKED:
        raise _locked(answer, contact, locale=locale)
    return verify_out(resolved, answer, locale, contact)


def _locked(answer: verification.Answer, contact: str, *, locale: str) -> PinLocked:
    """The 429 answer for a locked code; every one carries the brand's contact line, whether it came
    from the limiter or from this process's memory of the lock."""
    return PinLocked(
        answer_text(answer, locale),
        retry_after=float(answer.retry_after_seconds or 1),
        verdict=m.LOCKED,
        locked_by=answer.locked_by,
        title=translate(locale, VERDICT_TITLES[m.LOCKED]),
        contact=contact,
    )


# The brand's side.


class SettingsOut(BaseModel):
    max_verifications: int
    clone_speed_kmh: float
    clone_min_distance_km: float
    pin_attempts_per_code: int
    pin_lock_minutes: int
    pin_attempts_per_client: int
    pin_attempts_per_network: int
    contact: str


class SettingsIn(BaseModel):
    max_verifications: int | None = None
    clone_speed_kmh: float | None = None
    clone_min_distance_km: float | None = None
    pin_attempts_per_code: int | None = None
    pin_lock_minutes: int | None = None
    pin_attempts_per_client: int | None = None
    pin_attempts_per_network: int | None = None
    contact: str | None = None


def _settings_out(thresholds: Any) -> SettingsOut:
    return SettingsOut(**{name: getattr(thresholds, name) for name in SettingsOut.model_fields})


@router.get("/settings", response_model=SettingsOut)
async def get_settings(session: DbSession, actor: Reader) -> SettingsOut:
    """The brand's authenticity thresholds (defaults when never changed)."""
    return _settings_out(await service.get_thresholds(session, actor.tenant_id, cached=False))


@router.patch("/settings", response_model=SettingsOut)
async def update_settings(body: SettingsIn, session: DbSession, actor: Manager) -> SettingsOut:
    """Change some thresholds; omitted fields keep their values."""
    changes = body.model_dump(exclude_none=True)
    return _settings_out(await service.do_update_settings(session, actor.tenant_id, changes))


class ScanOut(BaseModel):
    id: int
    kind: str
    verdict: str | None
    reason: str | None
    occurred_at: datetime
    latitude: float | None
    longitude: float | None
    accuracy_m: float | None
    province_code: str | None
    city_code: str | None
    city_name: str | None
    ua_class: str
    verification_number: int | None
    client_hash: str | None


class SummaryOut(BaseModel):
    view_count: int
    verify_count: int
    wrong_pin_count: int
    first_verified_at: datetime | None
    first_city_name: str | None
    suspicious_reason: str | None


class ScansOut(BaseModel):
    serial: str
    summary: SummaryOut | None
    scans: list[ScanOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


@router.get("/scans", response_model=ScansOut)
async def code_scans(
    session: DbSession,
    actor: Reader,
    code: Annotated[str, Query(min_length=1, max_length=300, description="Digital Link, short URL, serial or SSCC")],
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ScansOut:
    """A code's consumer scans, newest first, with its summary."""
    resolved = await resolver.resolve_text(session, code)
    if resolved.ref.tenant_id != actor.tenant_id:
        from zhongtai.codes.errors import CodeNotFound

        raise CodeNotFound()
    summary = await service.summary_of(session, resolved.ref.code_id)
    scans = await service.scan_history(session, resolved.ref.code_id, limit=limit, before_id=before_id)
    return ScansOut(
        serial=resolved.ref.serial,
        summary=SummaryOut.model_validate(summary, from_attributes=True) if summary else None,
        scans=[ScanOut.model_validate(scan, from_attributes=True) for scan in scans],
        next_before_id=scans[-1].id if len(scans) == limit else None,
    )


class AlertOut(BaseModel):
    id: uuid.UUID
    code_id: int
    serial: str
    first_scan_id: int
    second_scan_id: int
    distance_km: float
    seconds_between: float
    speed_kmh: float
    evidence: dict[str, Any]
    status: str
    note: str
    created_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None


class AlertStatusIn(BaseModel):
    status: str = Field(description="open, investigating, confirmed or dismissed")
    note: str | None = Field(default=None, max_length=500)


@router.get("/clone-alerts", response_model=list[AlertOut])
async def clone_alerts(
    session: DbSession,
    actor: Reader,
    page: PageDep,
    status: Annotated[str | None, Query(description="open, investigating, confirmed or dismissed")] = None,
) -> list[AlertOut]:
    """Codes verified at places too far apart for the time between, newest first."""
    alerts = await service.list_clone_alerts(session, status=status, limit=page.per_page, offset=page.offset)
    return [AlertOut.model_validate(alert, from_attributes=True) for alert in alerts]


@router.post("/clone-alerts/{alert_id}", response_model=AlertOut)
async def set_clone_alert_status(
    alert_id: uuid.UUID, body: AlertStatusIn, session: DbSession, actor: Manager, origin: Origin
) -> AlertOut:
    """Move an alert along: investigating, confirmed (a clone) or dismissed; a closed alert can be
    reopened (investigating). Confirming, dismissing and reopening need a note; audited."""
    alert = await triage.do_triage_alert(
        session, actor, alert_id, status=body.status, note=body.note or "", origin=origin
    )
    return AlertOut.model_validate(alert, from_attributes=True)
