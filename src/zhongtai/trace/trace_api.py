"""The trace of one code over HTTP: `GET /api/v1/trace` for operators and integrations (`trace.read`),
and `GET /h5/{tenant_slug}/trace-data` for the consumer page — public, limited per address, and
without operator identities.

Each step carries its leaf index and an RFC 9162 inclusion proof against the brand's latest signed
checkpoint (given once, in `log`), or `pending: true` while no signed head covers it yet, and
`error_declaration` when the event was declared in error (reason, time, corrective event IDs); a client
checks it with `static/trace-verify.js`: `ztVerifyEvent(step.hash_id, {...step.proof, checkpoint:
log.checkpoint}, key)` with the key from `log.public_key_url`.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import consumers, tenancy
from zhongtai.core.models import Tenant
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, rate_limit, require
from zhongtai.i18n import translate
from zhongtai.kit.rendering import request_locale
from zhongtai.trace import steps as trace_steps
from zhongtai.trace.permissions import TRACE_READ

router = APIRouter(tags=["trace"])
Reader = Annotated[Principal, Depends(require(TRACE_READ))]
CodeParam = Annotated[
    str, Query(min_length=1, max_length=300, description="a Digital Link URI, short URL, serial or SSCC")
]
PUBLIC_LIMIT_PER_MINUTE = 60


class ProductOut(BaseModel):
    name: str
    gtin: str


class LotOut(BaseModel):
    number: str
    produced_on: date | None
    expires_on: date | None
    factory: str
    line: str


class BatchOut(BaseModel):
    id: uuid.UUID
    number: str


class ContainerOut(BaseModel):
    serial: str
    uri: str | None


class CodeOut(BaseModel):
    serial: str
    uri: str = Field(description="the code's Digital Link as printed")
    epc: str = Field(description="the canonical identifier events use")
    level: str
    state: str
    container: ContainerOut | None


class PublicCodeOut(BaseModel):
    level: str
    state: str


class WhatOut(BaseModel):
    biz_step: str | None = Field(description="CBV business step, bare word")
    action: str | None
    label: str = Field(description="the step in words, in the caller's language")


class WhereOut(BaseModel):
    read_point: str | None
    read_point_name: str | None
    biz_location: str | None


class ProofOut(BaseModel):
    leaf_index: int
    tree_size: int
    inclusion_path: list[str] = Field(description="base64 hashes, RFC 9162 §2.1.3 order")


class ErrorDeclarationOut(BaseModel):
    declared_at: str = Field(description="the declaration's declarationTime, in the event's own UTC offset")
    reason: str | None = Field(description="CBV error reason, bare word (did_not_occur, incorrect_data)")
    label: str = Field(description="the reason in words, in the caller's language")
    corrective_event_ids: list[str] = Field(description="the events that correct this one, when named")


class PublicStepOut(BaseModel):
    time: str = Field(description="event time with its own UTC offset")
    what: WhatOut
    where: WhereOut
    via: str | None = Field(description="the container this step happened to, when it is inherited")
    hash_id: str = Field(description="the event's CBV 2.0 hash ID: the log entry")
    leaf_index: int | None
    pending: bool = Field(description="no signed checkpoint covers this event yet")
    proof: ProofOut | None
    error_declaration: ErrorDeclarationOut | None = Field(
        default=None, description="set when the event was declared in error (the latest declaration)"
    )


class StepOut(PublicStepOut):
    event_id: str
    event_type: str
    who: str | None = Field(description="who recorded it (the event's zt extension / custody step)")


class IntervalOut(BaseModel):
    container: str
    child: str
    depth: int
    start: str
    end: str | None


class LogOut(BaseModel):
    origin: str
    tree_size: int
    checkpoint: str = Field(description="the C2SP signed checkpoint the proofs are against")
    public_key_url: str


class PublicTraceOut(BaseModel):
    product: ProductOut
    lot: LotOut | None
    code: PublicCodeOut
    log: LogOut | None
    steps: list[PublicStepOut]


class TraceOut(BaseModel):
    product: ProductOut
    lot: LotOut | None
    batch: BatchOut
    code: CodeOut
    log: LogOut | None
    steps: list[StepOut]
    containers: list[IntervalOut]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _log(result: trace_steps.CodeTrace, slug: str) -> LogOut | None:
    if result.checkpoint is None or result.origin is None:
        return None
    return LogOut(
        origin=result.origin,
        tree_size=result.checkpoint.tree_size,
        checkpoint=result.checkpoint.note,
        public_key_url=f"/epcis/log/{slug}/public-key",
    )


def _public_step(step: trace_steps.Step, locale: str) -> dict[str, object]:
    return {
        "time": step.time,
        "what": WhatOut(biz_step=step.biz_step, action=step.action, label=translate(locale, step.what)),
        "where": WhereOut(
            read_point=step.read_point, read_point_name=step.read_point_name, biz_location=step.biz_location
        ),
        "via": step.entry.via,
        "hash_id": step.entry.hash_id,
        "leaf_index": step.entry.leaf_index,
        "pending": step.is_pending,
        "proof": (
            ProofOut(
                leaf_index=step.proof.leaf_index,
                tree_size=step.proof.tree_size,
                inclusion_path=[_b64(node) for node in step.proof.path],
            )
            if step.proof
            else None
        ),
        "error_declaration": (
            ErrorDeclarationOut(
                declared_at=step.declared.time,
                reason=step.declared.reason,
                label=translate(locale, step.declared.label),
                corrective_event_ids=step.declared.corrective_event_ids,
            )
            if step.declared
            else None
        ),
    }


def _product_and_lot(result: trace_steps.CodeTrace) -> tuple[ProductOut, LotOut | None]:
    lot = result.view.lot
    return ProductOut(name=result.view.product.name, gtin=result.view.product.gtin), (
        LotOut(
            number=lot.lot_number,
            produced_on=lot.produced_on,
            expires_on=lot.expires_on,
            factory=lot.factory,
            line=lot.line,
        )
        if lot
        else None
    )


@router.get("/api/v1/trace", response_model=TraceOut)
async def code_trace(request: Request, session: DbSession, actor: Reader, code: CodeParam) -> TraceOut:
    """A code's product, lot, batch, state and container, and every step of its history — including
    those of the case and pallet while it was packed in them — each with its log proof."""
    result = await trace_steps.code_trace(session, actor.tenant_id, code, with_actors=True)
    tenant = await session.get(Tenant, actor.tenant_id)
    assert tenant is not None
    locale = request_locale(request)
    product, lot = _product_and_lot(result)
    view = result.view
    return TraceOut(
        product=product,
        lot=lot,
        batch=BatchOut(id=view.batch.id, number=view.batch.number),
        code=CodeOut(
            serial=view.code.serial,
            uri=view.uri,
            epc=result.epc,
            level=result.level,
            state=result.state,
            container=ContainerOut(serial=view.parent_serial, uri=result.container_uri) if view.parent_serial else None,
        ),
        log=_log(result, tenant.slug),
        steps=[
            StepOut(
                **_public_step(step, locale),
                event_id=step.entry.event.event_id,
                event_type=step.entry.event.event_type,
                who=step.who,
            )
            for step in result.steps
        ],
        containers=[
            IntervalOut(
                container=i.container,
                child=i.child,
                depth=i.depth,
                start=i.start.isoformat(),
                end=i.end.isoformat() if i.end else None,
            )
            for i in result.intervals
        ],
    )


async def _public_tenant(session: AsyncSession, slug: str) -> Tenant:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, slug)
    tenancy.scope_to_tenant(session, tenant.id)
    return tenant


@router.get(
    "/h5/{tenant_slug}/trace-data",
    response_model=PublicTraceOut,
    dependencies=[Depends(rate_limit("trace-data", limit=PUBLIC_LIMIT_PER_MINUTE, period=60.0))],
)
async def public_trace(request: Request, tenant_slug: str, session: DbSession, code: CodeParam) -> PublicTraceOut:
    """What a consumer may see of a code's history: product, lot, places and times — no operators."""
    tenant = await _public_tenant(session, tenant_slug)
    result = await trace_steps.code_trace(session, tenant.id, code, with_actors=False)
    locale = request_locale(request)
    product, lot = _product_and_lot(result)
    return PublicTraceOut(
        product=product,
        lot=lot,
        code=PublicCodeOut(level=result.level, state=result.state),
        log=_log(result, tenant.slug),
        steps=[PublicStepOut(**_public_step(step, locale)) for step in result.steps],
    )
