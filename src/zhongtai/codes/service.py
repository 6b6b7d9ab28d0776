"""Use cases of codes: settings, PIN keys, batch requests, lookups, voiding.

Services take a session and flush; the boundary commits. Generation of the codes themselves runs in
`generation.py` as a background job with its own chunked transactions.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import queries as catalog_queries
from zhongtai.catalog.queries import LotBrief, ProductBrief
from zhongtai.codes import rules, serials
from zhongtai.codes.errors import (
    BatchNotFound,
    BatchVoided,
    CodeNotFound,
    InvalidBatchRequest,
    InvalidCodeSettings,
    UnreadableCodeError,
)
from zhongtai.codes.models import (
    BATCH_EXPORTED,
    BATCH_FAILED,
    BATCH_GENERATING,
    BATCH_REQUESTED,
    BATCH_VOIDED,
    CASE,
    ITEM,
    LEVEL_NAMES,
    LEVELS_BY_NAME,
    PALLET,
    STATE_NAMES,
    VOIDED,
    Code,
    CodeBatch,
    CodeSettings,
    LegacySerial,
    PinKey,
)
from zhongtai.core import audit, jobs
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.db import is_read_session
from zhongtai.core.principals import Principal

MAX_BATCH_QUANTITY = 10_000_000
LOOKUP_CHUNK = 1000
PIN_KEY_PURPOSE = "codes.pin_key"
GENERATE_TOPIC = "codes.generate"
# Handled by the trace module: each custody step becomes an EPCIS event (zhongtai.trace.producers).
TRACE_TOPIC = "trace.code_event"


# Settings.


async def get_settings(session: AsyncSession, tenant_id: uuid.UUID) -> CodeSettings:
    """The brand's code settings, created on first use; a read session gets the defaults unsaved."""
    row = await session.scalar(select(CodeSettings))
    if row is None:
        row = CodeSettings(
            tenant_id=tenant_id,
            gs1_company_prefix=None,
            resolver_base=None,
            sscc_extension_digit=0,
            next_sscc_reference=1,
            updated_at=utcnow(),
        )
        if not is_read_session(session):
            session.add(row)
            await session.flush()
    return row


def resolver_base_of(settings_row: CodeSettings, public_url: str) -> str:
    if settings_row.resolver_base:
        return settings_row.resolver_base
    parts = urlsplit(public_url)
    return f"{parts.scheme}://{parts.netloc}"


async def do_update_settings(
    session: AsyncSession,
    actor: Principal,
    *,
    gs1_company_prefix: str | None,
    sscc_extension_digit: int | None,
    resolver_base: str | None,
    origin: RequestOrigin | None = None,
) -> CodeSettings:
    row = await get_settings(session, actor.tenant_id)
    changes: dict[str, object] = {}
    if gs1_company_prefix is not None:
        prefix = gs1_company_prefix.strip()
        if prefix and not (prefix.isdigit() and 6 <= len(prefix) <= 12):
            raise InvalidCodeSettings("A GS1 company prefix is 6 to 12 digits.", field="gs1_company_prefix")
        row.gs1_company_prefix = prefix or None
        changes["gs1_company_prefix"] = row.gs1_company_prefix
    if sscc_extension_digit is not None:
        if not 0 <= sscc_extension_digit <= 9:
            raise InvalidCodeSettings("The SSCC extension digit is one digit, 0 to 9.", field="sscc_extension_digit")
        row.sscc_extension_digit = sscc_extension_digit
        changes["sscc_extension_digit"] = sscc_extension_digit
    if resolver_base is not None:
        try:
            row.resolver_base = rules.check_resolver_base(resolver_base) if resolver_base.strip() else None
        except ValueError as exc:
            raise InvalidCodeSettings(str(exc), field="resolver_base") from exc
        changes["resolver_base"] = row.resolver_base
    if changes:
        await session.flush()
        await audit.record(
            session, actor, "codes.settings.update", target_type="code_settings", data=changes, origin=origin
        )
    return row


# PIN keys.


async def current_pin_key(session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID) -> tuple[int, bytes]:
    """The brand's newest PIN key, created on first use."""
    row = await session.scalar(
        select(PinKey).where(PinKey.retired_at.is_(None)).order_by(PinKey.version.desc()).limit(1)
    )
    if row is None:
        row = await _new_pin_key(session, crypto, tenant_id, version=1)
    return row.version, _decrypt_key(crypto, row)


async def pin_key(session: AsyncSession, crypto: Crypto, version: int) -> bytes:
    row = await session.scalar(select(PinKey).where(PinKey.version == version))
    if row is None:
        raise LookupError(f"PIN key version {version} is missing")
    return _decrypt_key(crypto, row)


def _decrypt_key(crypto: Crypto, row: PinKey) -> bytes:
    return bytes.fromhex(crypto.pii.decrypt(row.key_ciphertext, purpose=PIN_KEY_PURPOSE))


async def _new_pin_key(session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, *, version: int) -> PinKey:
    row = PinKey(
        tenant_id=tenant_id,
        version=version,
        key_ciphertext=crypto.pii.encrypt(secrets.token_bytes(32).hex(), purpose=PIN_KEY_PURPOSE),
    )
    session.add(row)
    await session.flush()
    return row


async def do_rotate_pin_key(
    session: AsyncSession, crypto: Crypto, actor: Principal, origin: RequestOrigin | None = None
) -> int:
    """New batches use a new key; batches already printed keep verifying with theirs."""
    newest = await session.scalar(select(func.max(PinKey.version)))
    row = await _new_pin_key(session, crypto, actor.tenant_id, version=int(newest or 0) + 1)
    await audit.record(
        session, actor, "codes.pin_key.rotate", target_type="pin_key", data={"version": row.version}, origin=origin
    )
    return row.version


# Batches.


@dataclass(frozen=True)
class BatchRequest:
    product_id: uuid.UUID
    level: str
    quantity: int
    note: str = ""
    idempotency_key: str | None = None


async def _reserve_ids(session: AsyncSession, count: int) -> int:
    """Reserve `count` consecutive code ids with one atomic update; returns the first."""
    result = await session.execute(
        text("UPDATE code_id_counter SET next_id = next_id + :n WHERE name = 'codes' RETURNING next_id - :n"),
        {"n": count},
    )
    return int(result.scalar_one())


async def do_request_batch(
    session: AsyncSession,
    crypto: Crypto,
    actor: Principal,
    request: BatchRequest,
    *,
    public_url: str,
    origin: RequestOrigin | None = None,
) -> tuple[CodeBatch, bool]:
    """Record a batch and queue its generation. Returns (batch, created); a repeated idempotency
    key returns the first batch unchanged."""
    if request.idempotency_key:
        existing = await session.scalar(select(CodeBatch).where(CodeBatch.idempotency_key == request.idempotency_key))
        if existing is not None:
            return existing, False
    level = LEVELS_BY_NAME.get(request.level)
    if level is None:
        raise InvalidBatchRequest("The level is item, case or pallet.", field="level")
    if not 1 <= request.quantity <= MAX_BATCH_QUANTITY:
        raise InvalidBatchRequest(f"A batch holds 1 to {MAX_BATCH_QUANTITY:,} codes.", field="quantity")
    product = await catalog_queries.product_brief(session, request.product_id)
    if product is None:
        raise InvalidBatchRequest("No such product.", field="product_id")
    if product.is_archived:
        raise InvalidBatchRequest("The product is archived; restore it before requesting codes.", field="product_id")
    if level == CASE and not product.items_per_case:
        raise InvalidBatchRequest("The product has no case packaging; set items per case first.", field="level")
    if level == PALLET and not product.cases_per_pallet:
        raise InvalidBatchRequest("The product has no pallet packaging; set cases per pallet first.", field="level")
    code_settings = await get_settings(session, actor.tenant_id)
    scheme = "sscc" if level != ITEM and code_settings.gs1_company_prefix else "serial"
    first_reference = None
    if scheme == "sscc":
        prefix = str(code_settings.gs1_company_prefix)
        reserved = await session.execute(
            update(CodeSettings)
            .where(CodeSettings.id == code_settings.id)
            .values(next_sscc_reference=CodeSettings.next_sscc_reference + request.quantity)
            .returning(CodeSettings.next_sscc_reference - request.quantity)
            .execution_options(synchronize_session=False)
        )
        first_reference = int(reserved.scalar_one())
        if first_reference + request.quantity > rules.sscc_capacity(prefix):
            raise InvalidBatchRequest(
                f"The company prefix {prefix} has no room for {request.quantity:,} more SSCCs.", field="quantity"
            )
    # Items carry a hidden PIN; the batch remembers which key version derives it.
    version = (await current_pin_key(session, crypto, actor.tenant_id))[0] if level == ITEM else None
    # Serials are the ids encrypted under the newest serial key (see codes.serials).
    serial_key_version = None
    if scheme == "serial":
        serial_key_version = serials.keyring(session).current_version
        if serial_key_version is None:
            raise RuntimeError("no PII key version between 1 and 31 is configured, so no serial key")
    batch = CodeBatch(
        tenant_id=actor.tenant_id,
        number=f"{utcnow():%Y%m%d}-{secrets.token_hex(3).upper()}",
        product_id=product.id,
        level=level,
        quantity=request.quantity,
        scheme=scheme,
        first_code_id=await _reserve_ids(session, request.quantity),
        first_sscc_reference=first_reference,
        resolver_base=resolver_base_of(code_settings, public_url),
        pin_key_version=version,
        serial_key_version=serial_key_version,
        note=request.note.strip()[:200],
        idempotency_key=request.idempotency_key,
        created_by=actor.label,
    )
    session.add(batch)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        existing = await session.scalar(select(CodeBatch).where(CodeBatch.idempotency_key == request.idempotency_key))
        if existing is None:
            raise
        return existing, False
    await jobs.enqueue(session, GENERATE_TOPIC, {"batch_id": str(batch.id)}, dedupe_key=f"generate:{batch.id}")
    await audit.record(
        session,
        actor,
        "codes.batch.request",
        target_type="code_batch",
        target_id=batch.id,
        data={
            "product_id": str(product.id),
            "gtin": product.gtin,
            "level": LEVEL_NAMES[level],
            "quantity": request.quantity,
        },
        origin=origin,
    )
    return batch, True


async def get_batch(session: AsyncSession, batch_id: uuid.UUID) -> CodeBatch:
    batch = await session.scalar(select(CodeBatch).where(CodeBatch.id == batch_id))
    if batch is None:
        raise BatchNotFound()
    return batch


async def list_batches(
    session: AsyncSession, *, product_id: uuid.UUID | None, status: str | None, limit: int, offset: int
) -> tuple[list[tuple[CodeBatch, ProductBrief]], int]:
    query = select(CodeBatch)
    count = select(func.count()).select_from(CodeBatch)
    if product_id:
        query, count = query.where(CodeBatch.product_id == product_id), count.where(CodeBatch.product_id == product_id)
    if status:
        query, count = query.where(CodeBatch.status == status), count.where(CodeBatch.status == status)
    total = await session.scalar(count)
    batches = list(await session.scalars(query.order_by(CodeBatch.created_at.desc()).limit(limit).offset(offset)))
    products = await catalog_queries.product_briefs(session, {batch.product_id for batch in batches})
    return [(batch, products[batch.product_id]) for batch in batches if batch.product_id in products], int(total or 0)


def _batch_range(batch: CodeBatch) -> tuple[int, int]:
    return batch.first_code_id, batch.first_code_id + batch.quantity


async def batch_state_counts(session: AsyncSession, batch: CodeBatch) -> dict[str, int]:
    start, end = _batch_range(batch)
    rows = await session.execute(
        select(Code.state, func.count()).where(Code.id >= start, Code.id < end).group_by(Code.state)
    )
    return {STATE_NAMES[state]: int(n) for state, n in rows}


async def do_void(
    session: AsyncSession,
    actor: Principal,
    batch_id: uuid.UUID,
    *,
    from_index: int | None = None,
    to_index: int | None = None,
    reason: str,
    origin: RequestOrigin | None = None,
) -> int:
    """Void a whole batch or the codes at positions from_index..to_index (1-based, inclusive) — leaked
    or misprinted codes. Voided codes fail verification from then on. Returns how many changed."""
    batch = await get_batch(session, batch_id)
    if batch.status == BATCH_VOIDED:
        raise BatchVoided()
    if not reason.strip():
        raise InvalidBatchRequest("Say why the codes are voided.", field="reason")
    whole = from_index is None and to_index is None
    first = from_index or 1
    last = to_index or batch.quantity
    if not 1 <= first <= last <= batch.quantity:
        raise InvalidBatchRequest(f"Positions run from 1 to {batch.quantity:,}, first ≤ last.", field="from_index")
    start = batch.first_code_id + first - 1
    end = batch.first_code_id + last
    result = await session.execute(
        update(Code)
        .where(and_(Code.id >= start, Code.id < end, Code.state != VOIDED))
        .values(state=VOIDED, changed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = int(result.rowcount)  # type: ignore[attr-defined]
    batch.voided_count += changed
    if whole:
        batch.status = BATCH_VOIDED
    await audit.record(
        session,
        actor,
        "codes.void",
        target_type="code_batch",
        target_id=batch.id,
        data={"from_index": first, "to_index": last, "voided": changed, "reason": reason.strip()[:200]},
        origin=origin,
    )
    return changed


async def do_record_export(
    session: AsyncSession,
    actor: Principal,
    batch: CodeBatch,
    *,
    kind: str,
    part_size: int | None = None,
    origin: RequestOrigin | None = None,
) -> None:
    """Every print-file download (links, PINs, label sheets) is counted on the batch and audited."""
    batch.export_count += 1
    batch.status = BATCH_EXPORTED
    await audit.record(
        session,
        actor,
        "codes.batch.export",
        target_type="code_batch",
        target_id=batch.id,
        data={"kind": kind, "part_size": part_size, "quantity": batch.quantity},
        origin=origin,
    )


async def do_mark_failed(session: AsyncSession, batch_id: uuid.UUID, error: str) -> None:
    """A generation that gave up: the batch says so instead of looking busy forever."""
    await session.execute(
        update(CodeBatch)
        .where(CodeBatch.id == batch_id, CodeBatch.status.in_((BATCH_REQUESTED, BATCH_GENERATING)))
        .values(status=BATCH_FAILED, last_error=error[:500])
        .execution_options(synchronize_session=False)
    )


# Lookup.


@dataclass(frozen=True)
class CodeView:
    code: Code
    batch: CodeBatch
    product: ProductBrief
    lot: LotBrief | None
    uri: str
    parent_serial: str | None
    children: int


def parse(text_value: str) -> rules.ParsedCode:
    try:
        return rules.parse_code(text_value)
    except rules.UnreadableCode as exc:
        raise UnreadableCodeError(str(exc)) from exc


async def batch_of(session: AsyncSession, code: Code) -> CodeBatch:
    batch = await session.scalar(
        select(CodeBatch).where(CodeBatch.first_code_id <= code.id).order_by(CodeBatch.first_code_id.desc()).limit(1)
    )
    if batch is None or code.id >= batch.first_code_id + batch.quantity:
        raise CodeNotFound()
    return batch


async def find_codes(session: AsyncSession, keys: Sequence[str]) -> dict[str, Code]:
    """The codes with these serials or SSCCs (as `ParsedCode.key`), within the session's tenancy scope.

    Serials decrypt to ids (a primary-key lookup); SSCCs and other container codes are found through
    the partial index on containers; random item serials made before serials were encrypted ids
    through their own table. At most 1,000 keys a query."""
    found: dict[str, Code] = {}
    wanted = list(dict.fromkeys(keys))
    by_id = serials.keyring(session).ids(key for key in wanted if len(key) == serials.SERIAL_LENGTH)
    ids = list(by_id.values())
    for start in range(0, len(ids), LOOKUP_CHUNK):
        rows = await session.scalars(select(Code).where(Code.id.in_(ids[start : start + LOOKUP_CHUNK])))
        found.update({code.serial: code for code in rows})
    # A serial that decrypts to an existing id of another serial is not that code.
    found = {key: found[key] for key in wanted if key in found}
    missing = [key for key in wanted if key not in found]
    for start in range(0, len(missing), LOOKUP_CHUNK):
        chunk = missing[start : start + LOOKUP_CHUNK]
        rows = await session.scalars(select(Code).where(Code.serial.in_(chunk), Code.level != ITEM))
        found.update({code.serial: code for code in rows})
    missing = [key for key in missing if key not in found and len(key) == serials.SERIAL_LENGTH]
    for start in range(0, len(missing), LOOKUP_CHUNK):
        chunk = missing[start : start + LOOKUP_CHUNK]
        legacy = await session.execute(
            select(LegacySerial.serial, LegacySerial.code_id).where(LegacySerial.serial.in_(chunk))
        )
        legacy_ids: dict[str, int] = {row.serial: row.code_id for row in legacy}
        if legacy_ids:
            rows = await session.scalars(select(Code).where(Code.id.in_(list(legacy_ids.values()))))
            found.update({code.serial: code for code in rows if legacy_ids.get(code.serial) == code.id})
    return found


async def lookup(session: AsyncSession, text_value: str) -> CodeView:
    parsed = parse(text_value)
    code = (await find_codes(session, [parsed.key])).get(parsed.key)
    if code is None:
        raise CodeNotFound()
    batch = await batch_of(session, code)
    product = await catalog_queries.product_brief(session, batch.product_id)
    if product is None:
        raise CodeNotFound()
    if parsed.gtin and parsed.gtin != product.gtin:
        raise CodeNotFound("The serial exists, but not for this GTIN.")
    lot = await catalog_queries.lot_brief(session, code.lot_id)
    parent_serial = (
        await session.scalar(select(Code.serial).where(Code.id == code.parent_id)) if code.parent_id else None
    )
    children = await session.scalar(select(func.count()).select_from(Code).where(Code.parent_id == code.id))
    uri = (
        rules.sscc_link(batch.resolver_base, code.serial)
        if batch.scheme == "sscc"
        else rules.item_link(batch.resolver_base, product.gtin, code.serial, lot.lot_number if lot else None)
    )
    return CodeView(code, batch, product, lot, uri, parent_serial, int(children or 0))
