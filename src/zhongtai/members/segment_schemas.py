"""Request and response models of touches, lifecycle, tags and segments (names only masked)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from zhongtai.core.schemas import RequestBody
from zhongtai.members import expressions
from zhongtai.members.segment_models import (
    MemberLifecycleSettings,
    MemberSegment,
    MemberStageTransition,
    MemberTag,
    MemberTagLog,
    MemberTouch,
)

EXPRESSION = Field(min_length=1, max_length=expressions.MAX_EXPRESSION_LENGTH, description="a CEL expression")


class ExpressionIn(RequestBody):
    expression: str = EXPRESSION


class PreviewOut(BaseModel):
    count: int
    sample: list[dict[str, Any]]


class SegmentIn(RequestBody):
    name: str = Field(min_length=1, max_length=80)
    expression: str = EXPRESSION


class SegmentPatch(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    expression: str | None = Field(default=None, min_length=1, max_length=expressions.MAX_EXPRESSION_LENGTH)


class SegmentOut(BaseModel):
    id: uuid.UUID
    name: str
    expression: str
    member_count: int
    refreshed_at: datetime | None
    evaluated_on: date | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: MemberSegment) -> SegmentOut:
        return cls(
            id=row.id,
            name=row.name,
            expression=row.expression,
            member_count=row.member_count,
            refreshed_at=row.refreshed_at,
            evaluated_on=row.evaluated_on,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class RefreshOut(BaseModel):
    segment: SegmentOut
    evaluated: int = Field(description="members evaluated (all of them on a full refresh)")


class TagIn(RequestBody):
    name: str = Field(min_length=1, max_length=40)
    kind: str = Field(pattern="^(manual|computed)$")
    expression: str | None = Field(default=None, max_length=expressions.MAX_EXPRESSION_LENGTH)


class TagOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    expression: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: MemberTag) -> TagOut:
        return cls(id=row.id, name=row.name, kind=row.kind, expression=row.expression, created_at=row.created_at)


class TagChangeOut(BaseModel):
    member_id: uuid.UUID
    tag: str
    changed: bool
    tags: list[str]


class TagLogOut(BaseModel):
    tag: str
    action: str
    actor_label: str
    at: datetime

    @classmethod
    def of(cls, row: MemberTagLog, tag: str) -> TagLogOut:
        return cls(tag=tag, action=row.action, actor_label=row.actor_label, at=row.at)


class TransitionOut(BaseModel):
    from_stage: str | None
    to_stage: str
    reason: str
    at: datetime

    @classmethod
    def of(cls, row: MemberStageTransition) -> TransitionOut:
        return cls(from_stage=row.from_stage, to_stage=row.to_stage, reason=row.reason, at=row.at)


class TouchOut(BaseModel):
    kind: str
    ref: str
    channel: str | None
    amount_fen: int
    at: datetime

    @classmethod
    def of(cls, row: MemberTouch) -> TouchOut:
        return cls(kind=row.kind, ref=row.ref, channel=row.channel, amount_fen=row.amount_fen, at=row.at)


class TouchIn(RequestBody):
    kind: str = Field(description="purchase, scan, guide_call, message or app_visit")
    ref: str = Field(min_length=1, max_length=120, description="the producer's reference; one touch per kind and ref")
    at: datetime | None = Field(default=None, description="when it happened (now if left out)")
    channel: str | None = Field(default=None, max_length=30)
    amount_fen: int = Field(default=0, ge=0)


class TouchRecordedOut(BaseModel):
    is_new: bool
    touch: TouchOut


class FactsOut(BaseModel):
    member_id: uuid.UUID
    facts: dict[str, Any] = Field(description="the facts expressions see today (missing ones left out)")
    stage_since: date | None
    transitions: list[TransitionOut]
    touches: list[TouchOut]
    tag_log: list[TagLogOut]


class ThresholdsIn(RequestBody):
    new_days: int = Field(ge=1, le=3650)
    at_risk_days: int = Field(ge=1, le=3650)
    dormant_days: int = Field(ge=1, le=3650)
    churned_days: int = Field(ge=1, le=3650)


class ThresholdsOut(BaseModel):
    new_days: int
    at_risk_days: int
    dormant_days: int
    churned_days: int
    lifecycle_ran_on: date | None

    @classmethod
    def of(cls, row: MemberLifecycleSettings) -> ThresholdsOut:
        """The brand's row, or one with the defaults (not stored) when the brand never set any."""
        return cls(
            new_days=row.new_days,
            at_risk_days=row.at_risk_days,
            dormant_days=row.dormant_days,
            churned_days=row.churned_days,
            lifecycle_ran_on=row.lifecycle_ran_on,
        )


class LifecycleRunOut(BaseModel):
    members: int
    transitions: int
