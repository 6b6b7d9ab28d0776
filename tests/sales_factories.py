"""Factories of sales orders."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.factories import Brand
from zhongtai.core.clock import utcnow
from zhongtai.core.runtime import Runtime
from zhongtai.sales import service
from zhongtai.sales.models import SalesOrder
from zhongtai.sales.rules import OrderDraft


def draft(
    ref: str,
    *,
    consumer_id: uuid.UUID | None = None,
    product_id: uuid.UUID | None = None,
    source: str = "flashsale",
    quantity: int = 1,
    unit_price_fen: int = 149_900,
    pay_minutes: float = 15,
    store_id: uuid.UUID | None = None,
) -> OrderDraft:
    return OrderDraft(
        source=source,
        source_ref=ref,
        consumer_id=consumer_id or uuid.UUID(int=1),
        product_id=product_id or uuid.UUID(int=2),
        quantity=quantity,
        unit_price_fen=unit_price_fen,
        pay_deadline=utcnow() + timedelta(minutes=pay_minutes),
        store_id=store_id,
    )


async def make_order(runtime: Runtime, brand: Brand, ref: str | None = None, **fields: object) -> SalesOrder:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        order = await service.create_order(session, brand.id, draft(ref or uuid.uuid4().hex, **fields))  # type: ignore[arg-type]
        session.expunge(order)
        return order
