"""The members section of the console home: members who joined per day, and how many are active or at
risk now (lifecycle stages of the last facts refresh)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.kit.home import Figure, Section, Series, Window, per_day
from zhongtai.members import lifecycle, oneid
from zhongtai.members.models import Member


async def home_section(session: AsyncSession, window: Window) -> Section:
    joined = await per_day(session, window, Member.created_at, Member.status == oneid.ACTIVE)
    stages = await lifecycle.stage_counts(session)
    at_risk = stages[lifecycle.AT_RISK]
    return Section(
        key="members",
        title="Members",
        href="/console/members",
        figures=[
            Figure("New members", "/console/members", sum(joined), joined[-1]),
            Figure("Members in the active stage", "/console/members/segments", stages[lifecycle.ACTIVE]),
            Figure("Members at risk", "/console/members/segments", at_risk, warn=at_risk > 0),
        ],
        series=[Series("New members", joined)],
    )
