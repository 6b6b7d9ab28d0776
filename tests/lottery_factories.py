"""Factories of lottery sessions: stores, a product, stock, and a session opened for entries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from tests.factories import Brand, system_actor
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import ProductDraft
from zhongtai.core import clock
from zhongtai.core.clock import utcnow
from zhongtai.core.runtime import Runtime
from zhongtai.lottery import service
from zhongtai.lottery.models import LotterySession

OPENS_IN_SECONDS = 60
WINDOW_SECONDS = 3600
# Beijing, Shanghai, Guangzhou
STORE_PLACES = [("BJ01", "北京国贸店", "北京", 39.9087, 116.4605), ("SH01", "上海外滩店", "上海", 31.2400, 121.4900)]
STORE_PLACES += [("GZ01", "广州天河店", "广州", 23.1291, 113.3277)]


@dataclass
class Lottery:
    session_id: uuid.UUID
    product_ids: list[uuid.UUID]
    store_ids: list[uuid.UUID]
    stock: dict[tuple[uuid.UUID, uuid.UUID], int] = field(default_factory=dict)


async def make_product(
    runtime: Runtime, brand: Brand, gtin: str = "6901234567892", name: str = "飞天 53% 500ml"
) -> uuid.UUID:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        product = await catalog.do_create_product(session, system_actor(brand.id), ProductDraft(gtin=gtin, name=name))
        return product.id


async def make_lottery(
    runtime: Runtime,
    brand: Brand,
    *,
    quantities: tuple[int, ...] = (2, 1, 1),
    beacon_source: str = "",
    commit: bool = True,
    product_ids: list[uuid.UUID] | None = None,
) -> Lottery:
    """A session opening in a minute, with one product at three stores (stock `quantities`)."""
    product_ids = product_ids or [await make_product(runtime, brand)]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        stores = []
        for code, name, city, lat, lon in STORE_PLACES[: len(quantities)]:
            stores.append(
                await service.do_create_store(
                    session, code=f"{code}-{uuid.uuid4().hex[:4]}", name=name, city=city, latitude=lat, longitude=lon
                )
            )
        lottery = await service.do_create_session(
            session,
            runtime.crypto,
            title="茅台 每日申购",
            opens_at=utcnow() + timedelta(seconds=OPENS_IN_SECONDS),
            closes_at=utcnow() + timedelta(seconds=OPENS_IN_SECONDS + WINDOW_SECONDS),
            beacon_source=beacon_source,
        )
        items = [
            service.StockItem(store.id, product_id, quantity)
            for product_id in product_ids
            for store, quantity in zip(stores, quantities, strict=True)
        ]
        await service.do_set_stock(session, lottery, items)
        if commit:
            await service.do_commit(session, lottery)
    return Lottery(
        lottery.id, product_ids, [s.id for s in stores], {(i.store_id, i.product_id): i.quantity for i in items}
    )


def open_window() -> None:
    clock.advance(OPENS_IN_SECONDS + 1)


def end_window() -> None:
    clock.advance(WINDOW_SECONDS + 1)


async def load_session(runtime: Runtime, brand: Brand, session_id: uuid.UUID) -> LotterySession:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await service.get_session(session, session_id)
