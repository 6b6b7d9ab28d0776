"""Finding the code a consumer scanned, fast: one indexed query per scan, the rest from caches.

A serial (or SSCC) is unique across the installation, so the code row names its brand. What a code
needs besides its row — its batch's product and GTIN, scheme and PIN key version, its lot number, the
brand's slug and name, the decrypted PIN key — changes rarely or never and is cached per process:

- batches per brand (sorted by first code id; a batch is a contiguous id range), reloaded when a code
  falls outside every cached range or after `CACHE_SECONDS` (a renamed product shows within that time);
- lot numbers and brands for `CACHE_SECONDS` (a deactivated brand stops answering within that time);
- PIN keys by (brand, version) for the life of the process: a key version never changes.
"""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity.service import CodeRef
from zhongtai.catalog import queries as catalog_queries
from zhongtai.codes import queries as codes_queries
from zhongtai.codes import rules as code_rules
from zhongtai.codes import service as codes_service
from zhongtai.codes import states as codes_states
from zhongtai.codes.errors import CodeNotFound, UnreadableCodeError
from zhongtai.core import tenancy
from zhongtai.core.crypto import Crypto
from zhongtai.core.models import Tenant
from zhongtai.kit.cache import FOREVER, MISSING, TTLCache

CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class BatchInfo:
    first_code_id: int
    quantity: int
    product_id: uuid.UUID
    product_name: str
    product_specification: str
    gtin: str
    scheme: str
    resolver_base: str
    pin_key_version: int | None
    items_per_case: int | None = None


@dataclass(frozen=True)
class TenantInfo:
    id: uuid.UUID
    slug: str
    name: str


@dataclass(frozen=True)
class Resolved:
    """A scanned code with everything the page and the verification need."""

    ref: CodeRef
    tenant: TenantInfo
    batch: BatchInfo
    level: int
    lot_number: str | None

    @property
    def has_pin(self) -> bool:
        return self.level == codes_states.ITEM and self.batch.pin_key_version is not None

    @property
    def uri(self) -> str:
        """The code's Digital Link as printed (lot included when the code has one)."""
        if self.batch.scheme == "sscc":
            return code_rules.sscc_link(self.batch.resolver_base, self.ref.serial)
        return code_rules.item_link(self.batch.resolver_base, self.batch.gtin, self.ref.serial, self.lot_number)

    @property
    def path(self) -> str:
        """The Digital Link path on this resolver (no host)."""
        if self.batch.scheme == "sscc":
            return code_rules.sscc_link("", self.ref.serial)
        return code_rules.item_link("", self.batch.gtin, self.ref.serial, self.lot_number)

    @property
    def state_name(self) -> str:
        return codes_states.STATE_NAMES.get(self.ref.state, "unknown")

    @property
    def level_name(self) -> str:
        return codes_states.LEVEL_NAMES.get(self.level, "item")

    @property
    def specification(self) -> str:
        """What this code's package is: a bottle shows the product's own specification (the catalog
        keeps the case packaging apart, in `items_per_case`); a case shows it times its bottles."""
        spec = self.batch.product_specification
        per_case = self.batch.items_per_case
        if self.level == codes_states.CASE and spec and per_case:
            return f"{spec} × {per_case}"
        return spec


class _Caches:
    """The resolver's caches (`zhongtai.kit.cache`): clear them all with `clear()`."""

    def __init__(self) -> None:
        self.batches: TTLCache[uuid.UUID, tuple[list[int], list[BatchInfo]]] = TTLCache(
            "authenticity.batches", ttl=CACHE_SECONDS, maxsize=10_000
        )
        self.tenants: TTLCache[uuid.UUID, TenantInfo | None] = TTLCache(
            "authenticity.tenants", ttl=CACHE_SECONDS, maxsize=10_000
        )
        self.lots: TTLCache[uuid.UUID, str | None] = TTLCache("authenticity.lots", ttl=CACHE_SECONDS, maxsize=100_000)
        self.pin_keys: TTLCache[tuple[uuid.UUID, int], bytes] = TTLCache(
            "authenticity.pin_keys", ttl=FOREVER, maxsize=10_000
        )

    def clear(self) -> None:
        self.batches.clear()
        self.tenants.clear()
        self.lots.clear()
        self.pin_keys.clear()


caches = _Caches()


def parse(text: str) -> code_rules.ParsedCode:
    """A Digital Link, short URL, serial or SSCC; a bare resolver path (`/01/…`) is read as a link."""
    text = text.strip()
    if text.startswith("/"):
        text = "https://resolver.invalid" + text
    return codes_service.parse(text)


async def _load_batches(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[list[int], list[BatchInfo]]:
    # Two reads once per brand and `CACHE_SECONDS` (not per scan): the brand's batches from codes, then
    # their products from the catalog.
    batches = await codes_queries.batches_of(session, tenant_id)
    products = await catalog_queries.product_briefs(session, {batch.product_id for batch in batches})
    infos = [
        BatchInfo(
            first_code_id=batch.first_code_id,
            quantity=batch.quantity,
            product_id=product.id,
            product_name=product.name,
            product_specification=product.specification,
            gtin=product.gtin,
            scheme=batch.scheme,
            resolver_base=batch.resolver_base,
            pin_key_version=batch.pin_key_version,
            items_per_case=product.items_per_case,
        )
        for batch in batches
        if (product := products.get(batch.product_id)) is not None
    ]
    starts = [info.first_code_id for info in infos]
    caches.batches.set(tenant_id, (starts, infos))
    return starts, infos


def _find(starts: list[int], infos: list[BatchInfo], code_id: int) -> BatchInfo | None:
    index = bisect.bisect_right(starts, code_id) - 1
    if index < 0:
        return None
    info = infos[index]
    return info if code_id < info.first_code_id + info.quantity else None


async def _batch_of(session: AsyncSession, tenant_id: uuid.UUID, code_id: int) -> BatchInfo:
    cached = caches.batches.get(tenant_id)
    if cached is not None:
        found = _find(cached[0], cached[1], code_id)
        if found is not None:
            return found
    starts, infos = await _load_batches(session, tenant_id)
    found = _find(starts, infos, code_id)
    if found is None:
        raise CodeNotFound()
    return found


async def _tenant(session: AsyncSession, tenant_id: uuid.UUID) -> TenantInfo:
    info = caches.tenants.get(tenant_id, MISSING)
    if info is MISSING:
        row = await session.scalar(select(Tenant).where(Tenant.id == tenant_id))
        info = caches.tenants.set(
            tenant_id, TenantInfo(row.id, row.slug, row.name) if row is not None and row.is_active else None
        )
    if not isinstance(info, TenantInfo):
        raise CodeNotFound("This brand's codes are not available.")
    return info


async def _lot_number(session: AsyncSession, lot_id: uuid.UUID | None) -> str | None:
    if lot_id is None:
        return None
    cached = caches.lots.get(lot_id, MISSING)
    if cached is not MISSING:
        return cached  # type: ignore[return-value]
    return caches.lots.set(lot_id, await catalog_queries.lot_number(session, lot_id))


@dataclass(frozen=True)
class CodeFacts:
    """What a scan needs of the code's own row (the rest comes from the caches above)."""

    code_id: int
    tenant_id: uuid.UUID
    state: int
    lot_id: uuid.UUID | None
    level: int


async def resolve(session: AsyncSession, parsed: code_rules.ParsedCode) -> Resolved:
    """The code a parsed link names, on any brand; leaves the session scoped to that brand.

    Raises CodeNotFound for an unknown serial, a serial under another GTIN, or an SSCC asked as an
    item (and the reverse). A lot in the link is not checked: labels may be printed before the lot is
    known, and the page shows the code's real lot."""
    tenancy.scope_all_tenants(session)
    # Item serials decrypt to their code id: one primary-key lookup (codes.service.find_codes).
    code = (await codes_service.find_codes(session, [parsed.key])).get(parsed.key)
    if code is None:
        raise CodeNotFound()
    facts = CodeFacts(code.id, code.tenant_id, code.state, code.lot_id, code.level)
    tenancy.scope_to_tenant(session, facts.tenant_id)
    batch = await _batch_of(session, facts.tenant_id, facts.code_id)
    tenant = await _tenant(session, facts.tenant_id)
    lot_number = await _lot_number(session, facts.lot_id)
    return _assemble(parsed, facts, batch, tenant, lot_number)


def _assemble(
    parsed: code_rules.ParsedCode, facts: CodeFacts, batch: BatchInfo, tenant: TenantInfo, lot_number: str | None
) -> Resolved:
    if parsed.sscc is not None and batch.scheme != "sscc":
        raise CodeNotFound()
    if parsed.gtin is not None and (batch.scheme == "sscc" or parsed.gtin != batch.gtin):
        raise CodeNotFound("The serial exists, but not for this GTIN.")
    ref = CodeRef(
        tenant_id=facts.tenant_id,
        code_id=facts.code_id,
        serial=parsed.key,
        state=facts.state,
        gtin=batch.gtin if batch.scheme != "sscc" else None,
        product_id=batch.product_id,
        lot_id=facts.lot_id,
    )
    return Resolved(ref=ref, tenant=tenant, batch=batch, level=facts.level, lot_number=lot_number)


def facts_of(resolved: Resolved) -> CodeFacts:
    ref = resolved.ref
    return CodeFacts(ref.code_id, ref.tenant_id, ref.state, ref.lot_id, resolved.level)


def resolve_cached(parsed: code_rules.ParsedCode, facts: CodeFacts) -> Resolved | None:
    """`resolve` from the per-process caches alone, given the code's facts; None when a cache is cold
    or expired (then `resolve` with a session). Raises what `resolve` raises for a wrong GTIN."""
    batches = caches.batches.get(facts.tenant_id)
    tenant = caches.tenants.get(facts.tenant_id, MISSING)
    if batches is None or tenant is MISSING:
        return None
    batch = _find(batches[0], batches[1], facts.code_id)
    if batch is None:
        return None
    if not isinstance(tenant, TenantInfo):
        raise CodeNotFound("This brand's codes are not available.")
    lot_number = None
    if facts.lot_id is not None:
        lot = caches.lots.get(facts.lot_id, MISSING)
        if lot is MISSING:
            return None
        lot_number = lot
    return _assemble(parsed, facts, batch, tenant, lot_number)  # type: ignore[arg-type]


async def resolve_text(session: AsyncSession, text: str) -> Resolved:
    return await resolve(session, parse(text))


async def pin_key(session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, version: int) -> bytes:
    cached = caches.pin_keys.get((tenant_id, version))
    if cached is None:
        cached = caches.pin_keys.set((tenant_id, version), await codes_service.pin_key(session, crypto, version))
    return cached


def check_path_code(gtin: str | None, serial: str | None, sscc: str | None, lot: str | None = None) -> str:
    """The Digital Link of a resolver path's parts, checked the way parse_code checks any link."""
    if sscc is not None:
        if len(sscc) != code_rules.SSCC_LENGTH or not sscc.isascii() or not sscc.isdigit():
            raise UnreadableCodeError("An SSCC has 18 digits.")
        text = f"https://resolver.invalid/00/{sscc}"
    else:
        text = code_rules.item_link("https://resolver.invalid", gtin or "", serial or "", lot)
    try:
        code_rules.parse_code(text)
    except code_rules.UnreadableCode as exc:
        raise UnreadableCodeError(str(exc)) from exc
    return text
