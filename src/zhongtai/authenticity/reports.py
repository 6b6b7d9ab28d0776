"""Counterfeit reports: a consumer reports a suspected fake; operators triage it.

A report names the code the consumer holds as they typed or scanned it — a code the platform does
not know, or cannot even read, is exactly what a fake looks like, so it is kept, never refused — and
carries where and when it was bought, the price, up to three photos and, if the consumer wants to
be called back, a phone number (encrypted, shown masked).

Triage: new → investigating → confirmed / dismissed. An obvious non-report may be dismissed straight
from new; a closed report may be reopened (back to investigating). Confirming, dismissing and
reopening need a note; every change is audited and conditional on the status the operator saw, so
two operators cannot overwrite each other's decision.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Uuid, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai import geo
from zhongtai.authenticity.photos import CleanPhoto, PhotoStore, photo_key
from zhongtai.catalog import queries as catalog_queries
from zhongtai.catalog.queries import ProductBrief
from zhongtai.codes import queries as codes_queries
from zhongtai.codes import rules as code_rules
from zhongtai.codes import service as codes_service
from zhongtai.core import audit
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import check_phone
from zhongtai.core.crypto import Crypto, mask_phone
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.core.models import AuditEvent, Base
from zhongtai.core.permissions import MANAGERS, Role, register_permission
from zhongtai.core.principals import Principal
from zhongtai.core.tenancy import TenantOwned
from zhongtai.kit.home import china_day_start

REPORTS_READ = register_permission(
    "authenticity.reports.read", "See counterfeit reports and their photos", MANAGERS | {Role.OPERATOR, Role.AUDITOR}
)
REPORTS_MANAGE = register_permission(
    "authenticity.reports.manage",
    "Triage counterfeit reports (investigate, confirm, dismiss)",
    MANAGERS | {Role.OPERATOR},
)

# Day boundaries of filters and statistics: the brands are in China (UTC+8, no daylight saving).
CHINA_TZ = timezone(timedelta(hours=8), "CST")

NEW, INVESTIGATING, CONFIRMED, DISMISSED = "new", "investigating", "confirmed", "dismissed"
STATUSES = (NEW, INVESTIGATING, CONFIRMED, DISMISSED)
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({INVESTIGATING, DISMISSED}),
    INVESTIGATING: frozenset({CONFIRMED, DISMISSED}),
    CONFIRMED: frozenset({INVESTIGATING}),
    DISMISSED: frozenset({INVESTIGATING}),
}
CLOSED = frozenset({CONFIRMED, DISMISSED})

# What the platform made of the code in the report.
CODE_KNOWN, CODE_UNKNOWN, CODE_UNREADABLE, CODE_NONE = "known", "unknown", "unreadable", "none"
CODE_STATUSES = (CODE_KNOWN, CODE_UNKNOWN, CODE_UNREADABLE, CODE_NONE)

PHONE_PURPOSE = "authenticity.report.phone"
MAX_CODE_TEXT = 500
MAX_WHERE = 200
MAX_DESCRIPTION = 1000
MAX_NOTE = 1000
MAX_PRICE_FEN = 100_000_000  # one million yuan
EARLIEST_PURCHASE = date(2000, 1, 1)


@functools.cache
def provinces() -> dict[str, tuple[str, str]]:
    """Provincial-level divisions (GB/T 2260 codes) → (Chinese name, English name), from the offline
    geography shipped with the platform (`zhongtai.geo`), in code order."""
    return {code: (name, geo.region_name(code, "en") or name) for code, name in geo.all_regions("province")}


def province_name(code: str | None, locale: str) -> str:
    if not code:
        return ""
    names = provinces().get(code[:2] + "0000")
    if names is None:
        return code
    return names[0] if locale.startswith("zh") else names[1]


def city_name(city_code: str | None) -> str:
    """The city a report names, by its Chinese name (operators read "深圳市", not "440300"); empty for
    none or for a municipality, whose province name already says it; the code itself if unknown."""
    if not city_code:
        return ""
    region = geo.region_by_code(city_code)
    if region is None or region.city_name is None:
        return city_code
    return "" if region.city_code == region.province_code else region.city_name


class CounterfeitReport(TenantOwned, Base):
    __tablename__ = "counterfeit_reports"
    __table_args__ = (
        Index("ix_counterfeit_reports_queue", "tenant_id", "status", "created_at"),
        Index("ix_counterfeit_reports_code", "tenant_id", "code_id"),
        Index("uq_counterfeit_reports_reference", "tenant_id", "reference", unique=True),
        Index("uq_counterfeit_reports_idempotency", "tenant_id", "idempotency_key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), default=NEW)
    code_text: Mapped[str] = mapped_column(String(MAX_CODE_TEXT), default="")
    code_status: Mapped[str] = mapped_column(String(12))
    code_key: Mapped[str | None] = mapped_column(String(40), default=None)  # the serial or SSCC read
    code_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("catalog_products.id", ondelete="RESTRICT"), default=None
    )
    where_bought: Mapped[str] = mapped_column(String(MAX_WHERE))
    province_code: Mapped[str | None] = mapped_column(String(6), default=None)
    city_code: Mapped[str | None] = mapped_column(String(6), default=None)
    price_fen: Mapped[int | None] = mapped_column(BigInteger, default=None)
    purchased_on: Mapped[date | None] = mapped_column(Date, default=None)
    description: Mapped[str] = mapped_column(String(MAX_DESCRIPTION), default="")
    phone_ciphertext: Mapped[str | None] = mapped_column(String(200), default=None)
    phone_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    phone_masked: Mapped[str | None] = mapped_column(String(32), default=None)
    consumer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consumers.id", ondelete="SET NULL"), default=None)
    photo_count: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_by: Mapped[str | None] = mapped_column(String(254), default=None)
    resolution_note: Mapped[str] = mapped_column(String(MAX_NOTE), default="")


class CounterfeitReportPhoto(TenantOwned, Base):
    __tablename__ = "counterfeit_report_photos"
    __table_args__ = (Index("uq_counterfeit_report_photos_position", "report_id", "position", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("counterfeit_reports.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(20))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Checking what a consumer sent.


@dataclass(frozen=True)
class ReportDraft:
    """A report as received, before any check; every field is optional text but `where_bought`."""

    code: str = ""
    where_bought: str = ""
    province_code: str = ""
    city_code: str = ""
    price_fen: int | None = None
    purchased_on: date | None = None
    phone: str = ""
    description: str = ""


@dataclass(frozen=True)
class CheckedReport:
    code: str
    where_bought: str
    province_code: str | None
    city_code: str | None
    price_fen: int | None
    purchased_on: date | None
    phone_e164: str | None
    description: str


def china_today() -> date:
    return utcnow().astimezone(CHINA_TZ).date()


def parse_price_yuan(text: str) -> int | None:
    """'128', '128.5', '¥1,280.00' → fen; '' → None; anything else refused."""
    value = text.strip().replace(",", "").replace("，", "").lstrip("¥￥").strip()
    if not value:
        return None
    whole, _, cents = value.partition(".")
    if (
        not (whole.isascii() and whole.isdigit())
        or len(whole) > 9
        or (cents and not (cents.isascii() and cents.isdigit()))
    ):
        raise ValidationFailed("Enter the price in yuan, for example 128 or 128.50.", field="price")
    if len(cents) > 2:
        raise ValidationFailed("The price has at most two decimals (fen).", field="price")
    return int(whole) * 100 + int(cents.ljust(2, "0") or 0)


def check_report(draft: ReportDraft) -> CheckedReport:
    """Validate a draft; raises ValidationFailed naming the field."""
    code = draft.code.strip()
    if len(code) > MAX_CODE_TEXT:
        raise ValidationFailed("The code is too long; scan it again or type the serial.", field="code")
    where = " ".join(draft.where_bought.split())
    if not where:
        raise ValidationFailed("Say where you bought it (shop, website or market).", field="where_bought")
    if len(where) > MAX_WHERE:
        raise ValidationFailed("Where you bought it: at most 200 characters.", field="where_bought")
    province = draft.province_code.strip() or None
    city = draft.city_code.strip() or None
    if province is not None and province not in provinces():
        raise ValidationFailed("Unknown province.", field="province_code")
    if city is not None:
        if not (len(city) == 6 and city.isascii() and city.isdigit() and city.endswith("00") and city[2:4] != "00"):
            raise ValidationFailed("A city code has six digits, like 440300.", field="city_code")
        if province is None:
            province = city[:2] + "0000"
        if province not in provinces() or city[:2] != province[:2]:
            raise ValidationFailed("The city is not in this province.", field="city_code")
    if draft.price_fen is not None and not 1 <= draft.price_fen <= MAX_PRICE_FEN:
        raise ValidationFailed("The price is between ¥0.01 and ¥1,000,000.", field="price")
    if draft.purchased_on is not None:
        if draft.purchased_on > china_today() + timedelta(days=1):
            raise ValidationFailed("The purchase date is in the future.", field="purchased_on")
        if draft.purchased_on < EARLIEST_PURCHASE:
            raise ValidationFailed("The purchase date is too long ago.", field="purchased_on")
    phone = check_phone(draft.phone) if draft.phone.strip() else None
    description = draft.description.strip()
    if len(description) > MAX_DESCRIPTION:
        raise ValidationFailed("The description: at most 1000 characters.", field="description")
    return CheckedReport(code, where, province, city, draft.price_fen, draft.purchased_on, phone, description)


def natural_key(checked: CheckedReport, photos: list[CleanPhoto], ip: str | None) -> str:
    """Without a client key, the same content from the same address on the same day is one report."""
    parts = [
        ip or "",
        china_today().isoformat(),
        checked.code,
        checked.where_bought,
        checked.province_code or "",
        checked.city_code or "",
        str(checked.price_fen or ""),
        str(checked.purchased_on or ""),
        checked.phone_e164 or "",
        checked.description,
        *(photo.original_sha256 for photo in photos),
    ]
    return "auto:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]


def check_idempotency_key(value: str | None) -> str | None:
    key = (value or "").strip()
    if not key:
        return None
    if len(key) > 64 or not key.isascii() or not key.isprintable():
        raise ValidationFailed("The idempotency key is 1 to 64 printable ASCII characters.", field="idempotency_key")
    return "key:" + key


@dataclass(frozen=True)
class ResolvedCode:
    status: str
    key: str | None = None
    code_id: int | None = None
    product_id: uuid.UUID | None = None


async def resolve_code(session: AsyncSession, text: str) -> ResolvedCode:
    """What the reported code is in this brand (the session is scoped to it)."""
    if not text:
        return ResolvedCode(CODE_NONE)
    try:
        parsed = code_rules.parse_code(text)
    except code_rules.UnreadableCode:
        return ResolvedCode(CODE_UNREADABLE)
    code = (await codes_service.find_codes(session, [parsed.key])).get(parsed.key)
    if code is None:
        return ResolvedCode(CODE_UNKNOWN, parsed.key)
    batch = await codes_queries.batch_holding(session, code.id)
    product_id = batch.product_id if batch is not None else None
    if parsed.gtin and product_id is not None:
        gtin = (await catalog_queries.product_gtins(session, [product_id])).get(product_id)
        if gtin != parsed.gtin:
            return ResolvedCode(CODE_UNKNOWN, parsed.key)
    return ResolvedCode(CODE_KNOWN, parsed.key, code.id, product_id)


def _new_reference() -> str:
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = "".join(secrets.choice(alphabet) for _ in range(6))
    return f"R{china_today():%y%m%d}-{tail}"


async def _by_idempotency(session: AsyncSession, key: str) -> CounterfeitReport | None:
    return await session.scalar(select(CounterfeitReport).where(CounterfeitReport.idempotency_key == key))


async def do_submit_report(
    session: AsyncSession,
    *,
    crypto: Crypto,
    store: PhotoStore,
    tenant_id: uuid.UUID,
    checked: CheckedReport,
    photos: list[CleanPhoto],
    idempotency_key: str,
    consumer_id: uuid.UUID | None = None,
) -> tuple[CounterfeitReport, bool]:
    """Record a report and store its photos. Returns (report, created); a repeated idempotency key
    returns the first report unchanged."""
    existing = await _by_idempotency(session, idempotency_key)
    if existing is not None:
        return existing, False
    code = await resolve_code(session, checked.code)
    report = CounterfeitReport(
        tenant_id=tenant_id,
        reference=_new_reference(),
        code_text=checked.code,
        code_status=code.status,
        code_key=code.key,
        code_id=code.code_id,
        product_id=code.product_id,
        where_bought=checked.where_bought,
        province_code=checked.province_code,
        city_code=checked.city_code,
        price_fen=checked.price_fen,
        purchased_on=checked.purchased_on,
        description=checked.description,
        consumer_id=consumer_id,
        photo_count=len(photos),
        idempotency_key=idempotency_key,
    )
    if checked.phone_e164:
        report.phone_ciphertext = crypto.pii.encrypt(checked.phone_e164, purpose=PHONE_PURPOSE)
        report.phone_hash = crypto.lookup_hash(checked.phone_e164, purpose=PHONE_PURPOSE)
        report.phone_masked = mask_phone(checked.phone_e164)
    try:
        # Added inside the savepoint: a lost race rolls the row back out of the session too.
        async with session.begin_nested():
            session.add(report)
            await session.flush()
    except IntegrityError:
        existing = await _by_idempotency(session, idempotency_key)
        if existing is None:
            raise
        return existing, False
    for position, photo in enumerate(photos, start=1):
        key = photo_key(tenant_id, photo)
        session.add(
            CounterfeitReportPhoto(
                tenant_id=tenant_id,
                report_id=report.id,
                position=position,
                content_type=photo.content_type,
                size_bytes=len(photo.data),
                width=photo.width,
                height=photo.height,
                sha256=photo.sha256,
                storage_key=key,
            )
        )
        await store.put(key, photo.data)
    await session.flush()
    return report, True


# Operators.


@dataclass(frozen=True)
class ReportFilter:
    status: str | None = None
    product_id: uuid.UUID | None = None
    code_status: str | None = None
    since: date | None = None  # China dates, inclusive
    until: date | None = None


def _filtered(query: Any, flt: ReportFilter) -> Any:
    if flt.status:
        query = query.where(CounterfeitReport.status == flt.status)
    if flt.product_id:
        query = query.where(CounterfeitReport.product_id == flt.product_id)
    if flt.code_status:
        query = query.where(CounterfeitReport.code_status == flt.code_status)
    if flt.since:
        query = query.where(CounterfeitReport.created_at >= china_day_start(flt.since))
    if flt.until:
        query = query.where(CounterfeitReport.created_at < china_day_start(flt.until + timedelta(days=1)))
    return query


async def list_reports(
    session: AsyncSession, flt: ReportFilter, *, limit: int, offset: int
) -> tuple[list[tuple[CounterfeitReport, ProductBrief | None]], int]:
    total = await session.scalar(_filtered(select(func.count()).select_from(CounterfeitReport), flt))
    found = list(
        await session.scalars(
            _filtered(select(CounterfeitReport), flt)
            .order_by(CounterfeitReport.created_at.desc(), CounterfeitReport.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    products = await catalog_queries.product_briefs(session, {report.product_id for report in found})
    return [(report, products.get(report.product_id) if report.product_id else None) for report in found], int(
        total or 0
    )


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(CounterfeitReport.status, func.count()).group_by(CounterfeitReport.status))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in rows.all()})
    return counts


async def get_report(session: AsyncSession, report_id: uuid.UUID) -> CounterfeitReport:
    report = await session.scalar(select(CounterfeitReport).where(CounterfeitReport.id == report_id))
    if report is None:
        raise NotFound("No such report.")
    return report


async def report_photos(session: AsyncSession, report_id: uuid.UUID) -> list[CounterfeitReportPhoto]:
    rows = await session.scalars(
        select(CounterfeitReportPhoto)
        .where(CounterfeitReportPhoto.report_id == report_id)
        .order_by(CounterfeitReportPhoto.position)
    )
    return list(rows)


async def get_photo(session: AsyncSession, report_id: uuid.UUID, photo_id: uuid.UUID) -> CounterfeitReportPhoto:
    photo = await session.scalar(
        select(CounterfeitReportPhoto).where(
            CounterfeitReportPhoto.id == photo_id, CounterfeitReportPhoto.report_id == report_id
        )
    )
    if photo is None:
        raise NotFound("This photo is not available.")
    return photo


async def report_product(session: AsyncSession, report: CounterfeitReport) -> ProductBrief | None:
    return await catalog_queries.product_brief(session, report.product_id)


def reveal_phone(crypto: Crypto, report: CounterfeitReport) -> str | None:
    if report.phone_ciphertext is None:
        return None
    return crypto.pii.decrypt(report.phone_ciphertext, purpose=PHONE_PURPOSE)


def check_transition(current: str, target: str, note: str) -> str:
    """The cleaned note, or ValidationFailed / Conflict with what to do instead."""
    if target not in STATUSES:
        raise ValidationFailed(f"Unknown status '{target}'; use one of {', '.join(STATUSES)}.", field="status")
    if target == current:
        raise Conflict("The report already has this status.", status=current)
    if target not in TRANSITIONS[current]:
        raise Conflict(
            "The report cannot go to this status from its current one.",
            status=current,
            target=target,
            allowed=sorted(TRANSITIONS[current]),
        )
    cleaned = note.strip()
    if len(cleaned) > MAX_NOTE:
        raise ValidationFailed("The note: at most 1000 characters.", field="note")
    if (target in CLOSED or current in CLOSED) and not cleaned:
        raise ValidationFailed("Write a note: why is the report confirmed, dismissed or reopened?", field="note")
    return cleaned


async def do_change_status(
    session: AsyncSession,
    actor: Principal,
    report_id: uuid.UUID,
    *,
    status: str,
    note: str = "",
    expected: str | None = None,
    origin: RequestOrigin | None = None,
) -> CounterfeitReport:
    """Move a report to `status`. `expected` (the status the operator saw) makes the change refuse
    when somebody else changed the report in between."""
    report = await get_report(session, report_id)
    current = report.status
    if expected is not None and expected != current:
        raise Conflict("Somebody else changed this report meanwhile. Reload and decide again.", status=current)
    cleaned = check_transition(current, status, note)
    now = utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now, "handled_by": actor.label}
    if status in CLOSED or cleaned:
        values["resolution_note"] = cleaned
    changed = await session.execute(
        update(CounterfeitReport)
        .where(CounterfeitReport.id == report.id, CounterfeitReport.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Somebody else changed this report meanwhile. Reload and decide again.")
    await session.refresh(report)
    await audit.record(
        session,
        actor,
        f"authenticity.report.{status}",
        target_type="counterfeit_report",
        target_id=report.id,
        data={"from": current, "to": status, "note": cleaned, "reference": report.reference},
        origin=origin,
    )
    return report


async def reports_of_code(session: AsyncSession, code_id: int) -> list[CounterfeitReport]:
    rows = await session.scalars(
        select(CounterfeitReport)
        .where(CounterfeitReport.code_id == code_id)
        .order_by(CounterfeitReport.created_at.desc())
        .limit(50)
    )
    return list(rows)


async def report_history(session: AsyncSession, report_id: uuid.UUID) -> list[AuditEvent]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_type == "counterfeit_report", AuditEvent.target_id == str(report_id))
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return list(rows)
