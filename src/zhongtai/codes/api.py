"""Codes REST API under `/api/v1/codes`."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from zhongtai.catalog import queries as catalog_queries
from zhongtai.codes import custody, export, service
from zhongtai.codes.errors import BatchNotReady, BatchVoided
from zhongtai.codes.models import BATCH_EXPORTED, BATCH_GENERATED, BATCH_VOIDED, LEVEL_NAMES, STATE_NAMES
from zhongtai.codes.permissions import (
    CODES_CUSTODY,
    CODES_EXPORT,
    CODES_EXPORT_PINS,
    CODES_READ,
    CODES_SETTINGS,
    CODES_WRITE,
)
from zhongtai.codes.schemas import (
    BatchCreate,
    BatchOut,
    CodeEventOut,
    CodeOut,
    CodeSettingsOut,
    CodeSettingsUpdate,
    CommissionRequest,
    DecommissionRequest,
    PackCasesOut,
    PackCasesRequest,
    PackOut,
    PackRequest,
    StepFields,
    StepOut,
    VoidOut,
    VoidRequest,
)
from zhongtai.core.errors import BadRequest, PermissionDenied
from zhongtai.core.principals import Principal
from zhongtai.core.schemas import Paged
from zhongtai.core.web import DbSession, Origin, PageDep, RuntimeDep, require, writes_on_get

router = APIRouter(prefix="/api/v1/codes", tags=["codes"])

CodesReader = Annotated[Principal, Depends(require(CODES_READ))]
CodesWriter = Annotated[Principal, Depends(require(CODES_WRITE))]
CodesExporter = Annotated[Principal, Depends(require(CODES_EXPORT))]
CodesAdmin = Annotated[Principal, Depends(require(CODES_SETTINGS))]


@router.get("/settings", response_model=CodeSettingsOut)
async def get_settings(session: DbSession, actor: CodesReader, runtime: RuntimeDep) -> CodeSettingsOut:
    row = await service.get_settings(session, actor.tenant_id)
    return CodeSettingsOut(
        gs1_company_prefix=row.gs1_company_prefix,
        sscc_extension_digit=row.sscc_extension_digit,
        resolver_base=service.resolver_base_of(row, runtime.settings.public_url),
    )


@router.put("/settings", response_model=CodeSettingsOut)
async def update_settings(
    body: CodeSettingsUpdate, session: DbSession, actor: CodesAdmin, runtime: RuntimeDep, origin: Origin
) -> CodeSettingsOut:
    row = await service.do_update_settings(
        session,
        actor,
        gs1_company_prefix=body.gs1_company_prefix,
        sscc_extension_digit=body.sscc_extension_digit,
        resolver_base=body.resolver_base,
        origin=origin,
    )
    return CodeSettingsOut(
        gs1_company_prefix=row.gs1_company_prefix,
        sscc_extension_digit=row.sscc_extension_digit,
        resolver_base=service.resolver_base_of(row, runtime.settings.public_url),
    )


@router.post("/pin-keys/rotate", response_model=CodeSettingsOut)
async def rotate_pin_key(session: DbSession, actor: CodesAdmin, runtime: RuntimeDep, origin: Origin) -> CodeSettingsOut:
    version = await service.do_rotate_pin_key(session, runtime.crypto, actor, origin)
    row = await service.get_settings(session, actor.tenant_id)
    return CodeSettingsOut(
        gs1_company_prefix=row.gs1_company_prefix,
        sscc_extension_digit=row.sscc_extension_digit,
        resolver_base=service.resolver_base_of(row, runtime.settings.public_url),
        pin_key_version=version,
    )


@router.post("/batches", response_model=BatchOut, status_code=202)
async def request_batch(
    body: BatchCreate,
    session: DbSession,
    actor: CodesWriter,
    runtime: RuntimeDep,
    origin: Origin,
    idempotency_key: Annotated[str | None, Header(max_length=80, description="retry-safe key")] = None,
) -> BatchOut:
    """Queue a batch for generation; poll the batch until its status is `generated`."""
    batch, _ = await service.do_request_batch(
        session,
        runtime.crypto,
        actor,
        service.BatchRequest(body.product_id, body.level, body.quantity, body.note, idempotency_key),
        public_url=runtime.settings.public_url,
        origin=origin,
    )
    return BatchOut.of(batch)


@router.get("/batches", response_model=Paged[BatchOut])
async def list_batches(
    session: DbSession,
    _: CodesReader,
    page: PageDep,
    product_id: uuid.UUID | None = None,
    status: Annotated[str | None, Query(max_length=12)] = None,
) -> Paged[BatchOut]:
    rows, total = await service.list_batches(
        session, product_id=product_id, status=status, limit=page.per_page, offset=page.offset
    )
    return Paged(items=[BatchOut.of(batch) for batch, _ in rows], total=total, page=page.page, per_page=page.per_page)


@router.get("/batches/{batch_id}", response_model=BatchOut)
async def get_batch(batch_id: uuid.UUID, session: DbSession, _: CodesReader) -> BatchOut:
    batch = await service.get_batch(session, batch_id)
    return BatchOut.of(batch, await service.batch_state_counts(session, batch))


@router.post("/batches/{batch_id}/void", response_model=VoidOut)
async def void_codes(
    batch_id: uuid.UUID, body: VoidRequest, session: DbSession, actor: CodesWriter, origin: Origin
) -> VoidOut:
    voided = await service.do_void(
        session, actor, batch_id, from_index=body.from_index, to_index=body.to_index, reason=body.reason, origin=origin
    )
    return VoidOut(voided=voided, batch=BatchOut.of(await service.get_batch(session, batch_id)))


@router.get(
    "/batches/{batch_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "CSV, or a ZIP of CSV parts with part_size",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
@writes_on_get
async def export_batch(
    batch_id: uuid.UUID,
    session: DbSession,
    actor: CodesExporter,
    runtime: RuntimeDep,
    origin: Origin,
    kind: Literal["links", "pins"] = "links",
    part_size: Annotated[int | None, Query(ge=1000, le=10_000_000, description="rows per file; zipped")] = None,
) -> StreamingResponse:
    """Download a print file. `links` for the QR printer; `pins` (hidden PINs) for the scratch-off
    printer, which needs the `codes.export_pins` permission. Every download is audited."""
    if kind == "pins" and not actor.can(CODES_EXPORT_PINS):
        raise PermissionDenied("PIN files need the permission 'codes.export_pins'.", permission=CODES_EXPORT_PINS)
    batch = await service.get_batch(session, batch_id)
    if batch.status == BATCH_VOIDED:
        raise BatchVoided()
    if batch.status not in (BATCH_GENERATED, BATCH_EXPORTED):
        raise BatchNotReady()
    key = None
    if kind == "pins":
        if batch.pin_key_version is None:
            raise BadRequest("Cases and pallets carry no hidden PIN; export their links instead.")
        key = await service.pin_key(session, runtime.crypto, batch.pin_key_version)
    product = await catalog_queries.product_brief(session, batch.product_id)
    assert product is not None, "a batch's product is never deleted (foreign key RESTRICT)"
    await service.do_record_export(session, actor, batch, kind=kind, part_size=part_size, origin=origin)
    plan = export.ExportPlan(
        tenant_id=actor.tenant_id,
        batch_id=batch.id,
        batch_number=batch.number,
        first_id=batch.first_code_id,
        count=batch.quantity,
        kind=kind,
        gtin=product.gtin,
        resolver_base=batch.resolver_base,
        scheme=batch.scheme,
        pin_key=key,
    )
    filename = f"{batch.number}-{kind}"
    if part_size:
        return StreamingResponse(
            export.stream_zip(runtime.db, plan, part_size=part_size),
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="{filename}.zip"', "cache-control": "no-store"},
        )
    return StreamingResponse(
        export.stream_csv(runtime.db, plan),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}.csv"', "cache-control": "no-store"},
    )


@router.get("/lookup", response_model=CodeOut)
async def lookup(
    session: DbSession, _: CodesReader, code: Annotated[str, Query(min_length=1, max_length=300)]
) -> CodeOut:
    """A code's state: by Digital Link URI, short URL, serial or SSCC."""
    view = await service.lookup(session, code)
    return CodeOut(
        serial=view.code.serial,
        uri=view.uri,
        level=LEVEL_NAMES[view.code.level],
        state=STATE_NAMES[view.code.state],
        product_id=view.product.id,
        gtin=view.product.gtin,
        product_name=view.product.name,
        batch_id=view.batch.id,
        batch_number=view.batch.number,
        index_in_batch=view.code.id - view.batch.first_code_id + 1,
        lot_number=view.lot.lot_number if view.lot else None,
        parent_serial=view.parent_serial,
        children=view.children,
        changed_at=view.code.changed_at,
    )


# Commissioning and packing (production lines: integration tokens with `codes.custody`).

CodesCustodian = Annotated[Principal, Depends(require(CODES_CUSTODY))]
IdempotencyKey = Annotated[str | None, Header(max_length=80, description="retry-safe key")]


def _context(actor: Principal, body: StepFields, key: str | None) -> custody.StepContext:
    return custody.StepContext(actor, body.event_time, body.event_timezone, body.read_point, key)


@router.post("/commission", response_model=StepOut)
async def commission(
    body: CommissionRequest, session: DbSession, actor: CodesCustodian, idempotency_key: IdempotencyKey = None
) -> StepOut:
    """Commission codes: a list, or positions of a batch; optionally with the item lot."""
    done = await custody.do_commission(
        session,
        _context(actor, body, idempotency_key),
        codes=body.codes,
        batch_id=body.batch_id,
        from_index=body.from_index,
        to_index=body.to_index,
        lot_id=body.lot_id,
    )
    return StepOut(event_id=done.event.id, count=done.count, replayed=done.replayed)


@router.post("/pack", response_model=PackOut)
async def pack(
    body: PackRequest, session: DbSession, actor: CodesCustodian, idempotency_key: IdempotencyKey = None
) -> PackOut:
    """Pack items into a case or cases onto a pallet."""
    done = await custody.do_pack(
        session, _context(actor, body, idempotency_key), parent_code=body.parent, children=body.children
    )
    return _packed(done)


@router.post("/pack-cases", response_model=PackCasesOut)
async def pack_cases(
    body: PackCasesRequest, session: DbSession, actor: CodesCustodian, idempotency_key: IdempotencyKey = None
) -> PackCasesOut:
    """Pack several containers at once (a line sending the cases it closed): all or nothing."""
    done = await custody.do_pack_many(
        session,
        _context(actor, body, idempotency_key),
        [custody.CaseRequest(case.parent, case.children) for case in body.cases],
    )
    return PackCasesOut(
        count=sum(d.added for d in done), replayed=any(d.replayed for d in done), cases=[_packed(d) for d in done]
    )


@router.post("/unpack", response_model=PackOut)
async def unpack(
    body: PackRequest, session: DbSession, actor: CodesCustodian, idempotency_key: IdempotencyKey = None
) -> PackOut:
    """Take the named codes (or everything, when none are named) out of a case or pallet."""
    done = await custody.do_unpack(
        session, _context(actor, body, idempotency_key), parent_code=body.parent, children=body.children
    )
    return _packed(done)


@router.post("/repack", response_model=PackOut)
async def repack(
    body: PackRequest, session: DbSession, actor: CodesCustodian, idempotency_key: IdempotencyKey = None
) -> PackOut:
    """Move codes from the containers holding them into another one."""
    done = await custody.do_repack(
        session, _context(actor, body, idempotency_key), parent_code=body.parent, children=body.children
    )
    return _packed(done)


def _packed(done: custody.Packed) -> PackOut:
    return PackOut(
        event_id=done.event.id if done.event else None,
        count=done.added,
        replayed=done.replayed,
        parent=done.parent.serial,
        contents=done.contents,
        capacity=done.capacity,
    )


@router.post("/decommission", response_model=StepOut)
async def decommission(
    body: DecommissionRequest, session: DbSession, actor: CodesCustodian, idempotency_key: IdempotencyKey = None
) -> StepOut:
    done = await custody.do_decommission(
        session, _context(actor, body, idempotency_key), codes=body.codes, reason=body.reason
    )
    return StepOut(event_id=done.event.id, count=done.count, replayed=done.replayed)


@router.get("/tree")
async def packing_tree(
    session: DbSession, _: CodesReader, code: Annotated[str, Query(min_length=1, max_length=300)]
) -> dict[str, object]:
    """A code with the containers holding it and its contents (two levels)."""
    view = await service.lookup(session, code)
    return await custody.packing_tree(session, view.code)


@router.get("/events", response_model=Paged[CodeEventOut])
async def list_events(
    session: DbSession, _: CodesReader, page: PageDep, kind: Annotated[str | None, Query(max_length=20)] = None
) -> Paged[CodeEventOut]:
    """Recorded custody steps, newest first (the trace module turns them into EPCIS events)."""
    rows, total = await custody.list_events(session, kind=kind, limit=page.per_page, offset=page.offset)
    return Paged(
        items=[CodeEventOut.model_validate(r) for r in rows], total=total, page=page.page, per_page=page.per_page
    )
