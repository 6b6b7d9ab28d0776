"""Flash-sale REST API: staff create, schedule, end and watch sales; a consumer gets a sale pass.

The buy itself (`POST /api/v1/flashsale/sales/{sale_id}/buy`) is answered by `fastpath` before this
router is reached; the route below only documents it in the OpenAPI description.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from zhongtai.core import audit
from zhongtai.core.principals import Principal
from zhongtai.core.web import CurrentConsumer, DbSession, Origin, PageDep, RuntimeDep, rate_limit, require
from zhongtai.flashsale import jobs as _jobs  # noqa: F401 - registers the release job
from zhongtai.flashsale import service
from zhongtai.flashsale.fastpath import state_of
from zhongtai.flashsale.permissions import FLASHSALE_READ, FLASHSALE_WRITE
from zhongtai.flashsale.schemas import BuyAccepted, LiveOut, PassOut, SaleCreate, SaleOut

router = APIRouter(prefix="/api/v1", tags=["flash sales"])

SaleReader = Annotated[Principal, Depends(require(FLASHSALE_READ))]
SaleWriter = Annotated[Principal, Depends(require(FLASHSALE_WRITE))]
PassLimit = Depends(rate_limit("flashsale-pass", limit=30, period=60.0, by="principal"))


@router.post("/flashsale/sales", response_model=SaleOut, status_code=201)
async def create_sale(body: SaleCreate, session: DbSession, actor: SaleWriter, origin: Origin) -> SaleOut:
    sale = await service.do_create_sale(session, body.draft())
    await audit.record(session, actor, "flashsale.create", target_type="flashsale", target_id=sale.id, origin=origin)
    return SaleOut.of(sale)


@router.get("/flashsale/sales", response_model=list[SaleOut])
async def list_sales(session: DbSession, _: SaleReader, page: PageDep) -> list[SaleOut]:
    sales, _total = await service.list_sales(session, limit=page.per_page, offset=page.offset)
    return [SaleOut.of(sale) for sale in sales]


@router.get("/flashsale/sales/{sale_id}", response_model=SaleOut)
async def get_sale(sale_id: uuid.UUID, session: DbSession, _: SaleReader) -> SaleOut:
    return SaleOut.of(await service.get_sale(session, sale_id))


@router.post("/flashsale/sales/{sale_id}/schedule", response_model=SaleOut)
async def schedule_sale(
    sale_id: uuid.UUID, session: DbSession, actor: SaleWriter, runtime: RuntimeDep, origin: Origin
) -> SaleOut:
    sale = await service.get_sale(session, sale_id)
    await service.do_schedule_sale(session, state_of(runtime), sale)
    await audit.record(session, actor, "flashsale.schedule", target_type="flashsale", target_id=sale.id, origin=origin)
    return SaleOut.of(sale)


@router.post("/flashsale/sales/{sale_id}/end", response_model=SaleOut)
async def end_sale(
    sale_id: uuid.UUID, session: DbSession, actor: SaleWriter, runtime: RuntimeDep, origin: Origin
) -> SaleOut:
    sale = await service.get_sale(session, sale_id)
    await service.do_end_sale(session, state_of(runtime), sale)
    await audit.record(session, actor, "flashsale.end", target_type="flashsale", target_id=sale.id, origin=origin)
    return SaleOut.of(sale)


@router.get("/flashsale/sales/{sale_id}/live", response_model=LiveOut)
async def live(sale_id: uuid.UUID, session: DbSession, _: SaleReader, runtime: RuntimeDep) -> LiveOut:
    sale = await service.get_sale(session, sale_id)
    figures = await service.live_figures(session, state_of(runtime), sale)
    return LiveOut(**figures.__dict__)


@router.post("/consumer/flashsale/sales/{sale_id}/pass", response_model=PassOut, dependencies=[PassLimit])
async def get_pass(sale_id: uuid.UUID, session: DbSession, consumer: CurrentConsumer, runtime: RuntimeDep) -> PassOut:
    """Check that the signed-in member may buy (verified real name, old enough) and hand out a pass
    for the buy endpoint, valid until the sale ends."""
    sale = await service.get_sale(session, sale_id)
    issued = await service.do_issue_pass(session, runtime.crypto, sale, consumer.id)
    return PassOut(
        sale_pass=issued.token, expires_at=issued.expires_at, buy_url=f"/api/v1/flashsale/sales/{sale.id}/buy"
    )


@router.post("/flashsale/sales/{sale_id}/buy", response_model=BuyAccepted, status_code=202)
async def buy(sale_id: uuid.UUID) -> BuyAccepted:  # pragma: no cover - answered by fastpath
    """Buy: `Authorization: Bearer <sale pass>`, optional `Idempotency-Key`, optional body
    `{"quantity": n}`. 202 with the order's reference, or 401 `pass_invalid`, 409 `sale_not_open` /
    `sold_out` / `limit_reached`, 422, 429. Served by the flash-sale fast path, not by this route."""
    raise AssertionError("served by zhongtai.flashsale.fastpath")
