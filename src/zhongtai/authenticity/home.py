"""The authenticity section of the console home: verifications, suspicious verdicts and activations
(bottles verified for the first time) per day, and the clone alerts waiting for someone."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import models as m
from zhongtai.authenticity.models import CloneAlert, Scan
from zhongtai.kit.home import Figure, Section, Series, Window, per_day_many


async def home_section(session: AsyncSession, window: Window) -> Section:
    verified = Scan.kind == m.KIND_PIN_OK
    verifications, suspicious, activations = await per_day_many(
        session,
        window,
        Scan.occurred_at,
        [
            func.sum(case((verified, 1), else_=0)),
            func.sum(case((verified & (Scan.verdict == m.SUSPICIOUS), 1), else_=0)),
            func.sum(case((verified & (Scan.verification_number == 1), 1), else_=0)),
        ],
    )
    open_alerts = int(await session.scalar(select(func.count()).where(CloneAlert.status == m.ALERT_OPEN)) or 0)
    return Section(
        key="authenticity",
        title="Authenticity",
        href="/console/authenticity/stats",
        figures=[
            Figure("Verifications", "/console/authenticity/stats", sum(verifications), verifications[-1]),
            Figure(
                "Suspicious verdicts",
                "/console/authenticity/stats",
                sum(suspicious),
                suspicious[-1],
                warn=suspicious[-1] > 0,
            ),
            Figure(
                "Activations",
                "/console/authenticity/stats",
                sum(activations),
                activations[-1],
                note="bottles verified for the first time",
            ),
            Figure("Open clone alerts", "/console/authenticity/alerts?status=open", open_alerts, warn=open_alerts > 0),
        ],
        series=[Series("Verifications", verifications), Series("Suspicious verdicts", suspicious)],
    )
