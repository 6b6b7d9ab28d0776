"""The channel section of the console home: diversion alerts raised per day and those still open."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel.scan_models import ALERT_OPEN, DiversionAlert
from zhongtai.kit.home import Figure, Section, Series, Window, per_day


async def home_section(session: AsyncSession, window: Window) -> Section:
    alerts = await per_day(session, window, DiversionAlert.created_at)
    still_open = int(await session.scalar(select(func.count()).where(DiversionAlert.status == ALERT_OPEN)) or 0)
    return Section(
        key="channel",
        title="Channel",
        href="/console/channel/diversion",
        figures=[
            Figure(
                "Diversion alerts", "/console/channel/diversion?status=", sum(alerts), alerts[-1], warn=alerts[-1] > 0
            ),
            Figure("Open diversion alerts", "/console/channel/diversion?status=open", still_open, warn=still_open > 0),
        ],
        series=[Series("Diversion alerts", alerts)],
    )
