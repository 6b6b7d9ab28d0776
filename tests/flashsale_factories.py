"""Factories of flash sales: a product, a scheduled sale open now, passes for members."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from tests.factories import Brand
from tests.lottery_factories import make_product
from zhongtai.catalog import service as catalog
from zhongtai.core.clock import utcnow
from zhongtai.core.runtime import Runtime
from zhongtai.flashsale import rules, service
from zhongtai.flashsale.fastpath import state_of
from zhongtai.flashsale.models import FlashSale


@dataclass
class Sale:
    id: uuid.UUID
    brand: Brand
    stock: int
    per_member_limit: int

    @property
    def buy_url(self) -> str:
        return f"/api/v1/flashsale/sales/{self.id}/buy"


def open_limits(runtime: Runtime) -> None:
    """All test traffic comes from one address: lift the per-address limit (before the first buy)."""
    runtime.settings.flashsale_requests_per_second_per_address = 1_000_000
    runtime.settings.flashsale_requests_per_minute_per_member = 1_000_000


async def make_sale(
    runtime: Runtime,
    brand: Brand,
    *,
    stock: int = 10,
    per_member_limit: int = 1,
    requires_verification: bool = False,
    starts_in_seconds: float = -1,
    schedule: bool = True,
    product_id: uuid.UUID | None = None,
) -> Sale:
    if product_id is None:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            existing = await catalog.find_by_gtin(session, "6901234567892")
        product_id = existing.id if existing else await make_product(runtime, brand, gtin="6901234567892")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        sale = await service.do_create_sale(
            session,
            rules.SaleDraft(
                title="飞天 53% 500ml 秒杀",
                product_id=product_id,
                price_fen=149_900,
                stock=stock,
                starts_at=utcnow() + timedelta(seconds=starts_in_seconds),
                ends_at=utcnow() + timedelta(hours=1),
                per_member_limit=per_member_limit,
                requires_verification=requires_verification,
            ),
        )
        if schedule:
            await service.do_schedule_sale(session, state_of(runtime), sale)
    return Sale(sale.id, brand, stock, per_member_limit)


def sale_pass(runtime: Runtime, sale: Sale, consumer_id: uuid.UUID | None = None) -> str:
    """A pass as the pass endpoint would issue it (for members whose eligibility is not the point)."""
    return rules.issue_pass(
        rules.pass_key(runtime.crypto.secret_key),
        sale_id=sale.id,
        consumer_id=consumer_id or uuid.uuid4(),
        expires_epoch=int(utcnow().timestamp()) + 7200,
    )


async def load_sale(runtime: Runtime, sale: Sale) -> FlashSale:
    async with runtime.db.unit_of_work(tenant_id=sale.brand.id) as session:
        return await service.get_sale(session, sale.id)
