"""Lifecycle stages and RFM scores of a brand's members, and the daily job that moves members between
stages.

Stages, from the days since the member's last touch (or since they joined, before any touch), with
the brand's thresholds: `new` (joined less than `new_days` ago), `active`, `at_risk` (≥ `at_risk_days`,
45 by default), `dormant` (≥ `dormant_days`), `churned` (≥ `churned_days`); a member touched again
after being dormant or churned is `won_back` for `new_days`, then `active`. Every change of stage is
recorded with its reason. The job computes everything from the facts and the day, so running it twice
on one day changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.jobs import JobContext, enqueue, job_handler
from zhongtai.members import facts, segments
from zhongtai.members import segment_models as m
from zhongtai.members.segment_models import MemberFacts, MemberLifecycleSettings, MemberStageTransition

LIFECYCLE_TOPIC = "members.lifecycle"
NEW, ACTIVE, AT_RISK, DORMANT, CHURNED, WON_BACK = "new", "active", "at_risk", "dormant", "churned", "won_back"
STAGES = (NEW, ACTIVE, AT_RISK, DORMANT, CHURNED, WON_BACK)
LAPSED = frozenset({DORMANT, CHURNED})


@dataclass(frozen=True)
class Thresholds:
    new_days: int = m.DEFAULT_NEW_DAYS
    at_risk_days: int = m.DEFAULT_AT_RISK_DAYS
    dormant_days: int = m.DEFAULT_DORMANT_DAYS
    churned_days: int = m.DEFAULT_CHURNED_DAYS

    @classmethod
    def of(cls, row: MemberLifecycleSettings) -> Thresholds:
        return cls(row.new_days, row.at_risk_days, row.dormant_days, row.churned_days)


def check_thresholds(t: Thresholds) -> Thresholds:
    if not 1 <= t.new_days <= 3650:
        raise ValidationFailed("new_days is between 1 and 3650.", field="new_days")
    if not 1 <= t.at_risk_days < t.dormant_days < t.churned_days <= 3650:
        raise ValidationFailed(
            "Days must grow: 1 ≤ at_risk_days < dormant_days < churned_days ≤ 3650.", field="at_risk_days"
        )
    return t


@dataclass(frozen=True)
class Stage:
    name: str
    reason: str


def stage_on(*, previous: str, since: date, last_activity: date, joined: date, on: date, t: Thresholds) -> Stage:
    """The stage of a member on a day (pure). `last_activity` is the day of the last touch, or the day
    they joined if they were never touched; `since` the day `previous` began."""
    idle = (on - last_activity).days
    if idle >= t.churned_days:
        return Stage(CHURNED, f"no touch for {t.churned_days} days")
    if idle >= t.dormant_days:
        return Stage(DORMANT, f"no touch for {t.dormant_days} days")
    if idle >= t.at_risk_days:
        return Stage(AT_RISK, f"no touch for {t.at_risk_days} days")
    if previous in LAPSED:
        return Stage(WON_BACK, f"touched again after being {previous}")
    if previous == WON_BACK and (on - since).days < t.new_days:
        return Stage(WON_BACK, "")
    if previous == NEW and (on - joined).days < t.new_days:
        return Stage(NEW, "")
    if previous == AT_RISK:
        return Stage(ACTIVE, "touched again")
    return Stage(ACTIVE, f"{t.new_days} days since {'joining' if previous == NEW else 'being won back'}")


def quintiles(values: Sequence[int]) -> list[int]:
    """Scores 1–5 by rank: 1 + ⌊5·(values strictly below) / n⌋, so equal values score alike."""
    if not values:
        return []
    data = np.asarray(values, dtype=np.int64)
    below = np.searchsorted(np.sort(data), data, side="left")
    return [int(s) for s in 1 + (5 * below) // len(values)]


def _last_activity(row: MemberFacts) -> date:
    return facts.local_date(row.last_touch_at or row.joined_at)


def _move(session: AsyncSession, row: MemberFacts, stage: Stage, on: date, at: datetime) -> None:
    session.add(
        MemberStageTransition(
            tenant_id=row.tenant_id,
            member_id=row.member_id,
            from_stage=row.stage,
            to_stage=stage.name,
            reason=stage.reason,
            at=at,
        )
    )
    row.stage, row.stage_since, row.updated_at = stage.name, on, at


def apply_stage(session: AsyncSession, row: MemberFacts, t: Thresholds, on: date, at: datetime) -> bool:
    """Move the member to their stage on `on` if it changed (recording the transition)."""
    joined = facts.local_date(row.joined_at)
    stage = stage_on(
        previous=row.stage, since=row.stage_since, last_activity=_last_activity(row), joined=joined, on=on, t=t
    )
    if stage.name == row.stage:
        return False
    _move(session, row, stage, on, at)
    return True


def _rfm(rows: list[MemberFacts], on: date, at: datetime) -> None:
    buyers = [r for r in rows if r.purchases > 0 and r.last_purchase_at is not None]
    recency = quintiles([-(on - facts.local_date(r.last_purchase_at)).days for r in buyers])  # type: ignore[arg-type]
    frequency = quintiles([r.purchases for r in buyers])
    monetary = quintiles([r.spend_fen for r in buyers])
    scores: dict[uuid.UUID, tuple[int | None, int | None, int | None]] = {
        row.member_id: (r, f, m) for row, r, f, m in zip(buyers, recency, frequency, monetary, strict=True)
    }
    for row in rows:
        score = scores.get(row.member_id, (None, None, None))
        if (row.recency_score, row.frequency_score, row.monetary_score) != score:
            row.recency_score, row.frequency_score, row.monetary_score = score
            row.updated_at = at


@dataclass(frozen=True)
class LifecycleRun:
    members: int
    transitions: int


async def do_run_lifecycle(
    session: AsyncSession, tenant_id: uuid.UUID, *, on: date | None = None, at: datetime | None = None
) -> LifecycleRun:
    """The daily run for one brand: facts brought up to date, stages moved, RFM scored, computed tags
    refreshed, saved segments refreshed."""
    now = at or utcnow()
    day = on or facts.local_date(now)
    await facts.do_sync_facts(session, tenant_id, at=now)
    settings = await facts.settings_of(session, tenant_id)
    t = Thresholds.of(settings)
    rows = list(
        await session.scalars(select(MemberFacts).where(MemberFacts.is_active.is_(True)).order_by(MemberFacts.seq))
    )
    moved = sum(apply_stage(session, row, t, day, now) for row in rows)
    _rfm(rows, day, now)
    await facts.do_refresh_tags(session, rows, at=now)
    settings.lifecycle_ran_on = day
    await session.flush()
    await segments.do_refresh_all(session, tenant_id, on=day, at=now)
    return LifecycleRun(len(rows), moved)


async def do_set_thresholds(session: AsyncSession, tenant_id: uuid.UUID, t: Thresholds) -> MemberLifecycleSettings:
    check_thresholds(t)
    row = await facts.settings_of(session, tenant_id)
    row.new_days, row.at_risk_days, row.dormant_days, row.churned_days = (
        t.new_days,
        t.at_risk_days,
        t.dormant_days,
        t.churned_days,
    )
    row.updated_at = utcnow()
    await session.flush()
    return row


async def enqueue_daily(session: AsyncSession, tenant_id: uuid.UUID, on: date) -> None:
    """Schedule the day's run for the brand (once per day, whoever asks)."""
    await enqueue(
        session, LIFECYCLE_TOPIC, {"on": on.isoformat()}, tenant_id=tenant_id, dedupe_key=f"{LIFECYCLE_TOPIC}:{on}"
    )


@job_handler(LIFECYCLE_TOPIC)
async def lifecycle_job(ctx: JobContext) -> None:
    await do_run_lifecycle(ctx.session, ctx.tenant_id, on=date.fromisoformat(ctx.payload["on"]))


async def transitions_of(session: AsyncSession, member_id: uuid.UUID) -> list[MemberStageTransition]:
    rows = await session.scalars(
        select(MemberStageTransition)
        .where(MemberStageTransition.member_id == member_id)
        .order_by(MemberStageTransition.at, MemberStageTransition.id)
    )
    return list(rows)


async def stage_counts(session: AsyncSession) -> dict[str, int]:
    """How many active members are in each stage now (every stage listed, zeros included)."""
    rows = await session.execute(
        select(MemberFacts.stage, func.count()).where(MemberFacts.is_active.is_(True)).group_by(MemberFacts.stage)
    )
    found = {stage: int(n) for stage, n in rows.all()}
    return {stage: found.get(stage, 0) for stage in STAGES}
