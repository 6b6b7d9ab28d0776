"""The sales section of the console home: orders placed, money received and pickups per day."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.kit.home import Figure, Section, Series, Window, per_day
from zhongtai.sales.models import SalesOrder


async def home_section(session: AsyncSession, window: Window) -> Section:
    orders = await per_day(session, window, SalesOrder.created_at)
    paid = await per_day(session, window, SalesOrder.paid_at, value=SalesOrder.amount_fen)
    pickups = await per_day(session, window, SalesOrder.picked_up_at)
    return Section(
        key="sales",
        title="Sales",
        href="/console/sales/orders",
        figures=[
            Figure("Orders", "/console/sales/orders", sum(orders), orders[-1]),
            Figure("Payments received", "/console/sales/orders?state=paid", sum(paid), paid[-1], money=True),
            Figure("Pickups", "/console/sales/orders?state=picked_up", sum(pickups), pickups[-1]),
        ],
        series=[Series("Orders", orders), Series("Pickups", pickups)],
    )
