"""Segments, tags and lifecycle REST API: the builder's live count, saved segments (CRUD, refresh, CSV
export of member ids), tags (computed and manual, with their log), a member's facts, stage history
and touches, and the brand's lifecycle thresholds."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from zhongtai.core.clock import utcnow
from zhongtai.core.errors import NotFound
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, require
from zhongtai.members import facts, lifecycle, oneid, segments, tags, touches
from zhongtai.members.segment_permissions import SEGMENTS_EXPORT, SEGMENTS_READ, SEGMENTS_WRITE
from zhongtai.members.segment_schemas import (
    ExpressionIn,
    FactsOut,
    LifecycleRunOut,
    PreviewOut,
    RefreshOut,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
    TagChangeOut,
    TagIn,
    TagLogOut,
    TagOut,
    ThresholdsIn,
    ThresholdsOut,
    TouchIn,
    TouchOut,
    TouchRecordedOut,
    TransitionOut,
)

router = APIRouter(prefix="/api/v1/members", tags=["members"])
CSV_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
}

SegmentsReader = Annotated[Principal, Depends(require(SEGMENTS_READ))]
SegmentsWriter = Annotated[Principal, Depends(require(SEGMENTS_WRITE))]
SegmentsExporter = Annotated[Principal, Depends(require(SEGMENTS_EXPORT))]


@router.post("/segments/preview", response_model=PreviewOut)
async def preview_segment(body: ExpressionIn, session: DbSession, _: SegmentsReader) -> PreviewOut:
    """The builder's live count: how many members the expression selects now, and a few (masked)."""
    found = await segments.preview(session, body.expression)
    return PreviewOut(count=found.count, sample=found.sample)


@router.get("/segments", response_model=list[SegmentOut])
async def list_segments(session: DbSession, _: SegmentsReader) -> list[SegmentOut]:
    return [SegmentOut.of(s) for s in await segments.list_segments(session)]


@router.post("/segments", response_model=SegmentOut, status_code=201)
async def create_segment(body: SegmentIn, session: DbSession, principal: SegmentsWriter) -> SegmentOut:
    """Save a segment; it is evaluated at once."""
    row = await segments.do_create_segment(session, principal.tenant_id, body.name, body.expression)
    return SegmentOut.of(row)


@router.get("/segments/{segment_id}", response_model=SegmentOut)
async def get_segment(segment_id: uuid.UUID, session: DbSession, _: SegmentsReader) -> SegmentOut:
    return SegmentOut.of(await segments.get_segment(session, segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentOut)
async def update_segment(
    segment_id: uuid.UUID, body: SegmentPatch, session: DbSession, principal: SegmentsWriter
) -> SegmentOut:
    row = await segments.do_update_segment(
        session, principal.tenant_id, segment_id, name=body.name, expression=body.expression
    )
    return SegmentOut.of(row)


@router.delete("/segments/{segment_id}", status_code=204)
async def delete_segment(segment_id: uuid.UUID, session: DbSession, _: SegmentsWriter) -> Response:
    await segments.do_delete_segment(session, segment_id)
    return Response(status_code=204)


@router.post("/segments/{segment_id}/refresh", response_model=RefreshOut)
async def refresh_segment(
    segment_id: uuid.UUID,
    session: DbSession,
    principal: SegmentsWriter,
    full: Annotated[bool, Query(description="evaluate every member instead of the changed ones")] = False,
) -> RefreshOut:
    """Refresh a segment: members whose facts changed since the last refresh are evaluated again."""
    segment = await segments.get_segment(session, segment_id)
    await facts.do_sync_facts(session, principal.tenant_id)
    result = await segments.do_refresh(session, segment, full=full)
    return RefreshOut(segment=SegmentOut.of(segment), evaluated=result.evaluated)


@router.get("/segments/{segment_id}/export", response_class=StreamingResponse, responses=CSV_DOWNLOAD)
async def export_segment(segment_id: uuid.UUID, session: DbSession, _: SegmentsExporter) -> StreamingResponse:
    """The segment's member ids as CSV (ids only: no personal data)."""
    segment = await segments.get_segment(session, segment_id)
    chunks: list[str] = ["member_id\r\n"]
    async for ids in segments.member_ids(session, segment):
        buffer = io.StringIO()
        csv.writer(buffer).writerows([str(i)] for i in ids)
        chunks.append(buffer.getvalue())
    return StreamingResponse(
        iter(chunks),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="segment-{segment.id}.csv"'},
    )


# --- tags ------------------------------------------------------------------------------------------


@router.get("/tags", response_model=list[TagOut])
async def list_tags(session: DbSession, _: SegmentsReader) -> list[TagOut]:
    return [TagOut.of(t) for t in await tags.list_tags(session)]


@router.post("/tags", response_model=TagOut, status_code=201)
async def create_tag(body: TagIn, session: DbSession, _: SegmentsWriter) -> TagOut:
    """A manual tag, or a computed one (a CEL expression over facts, applied to every member at once)."""
    return TagOut.of(await tags.do_create_tag(session, body.name, body.kind, body.expression))


async def _tag_change(session: DbSession, member_id: uuid.UUID, tag: str, changed: bool) -> TagChangeOut:
    row = await touches.facts_of(session, member_id)
    return TagChangeOut(member_id=member_id, tag=tag, changed=changed, tags=list(row.tags) if row else [])


@router.put("/{member_id:uuid}/tags/{tag}", response_model=TagChangeOut)
async def assign_tag(member_id: uuid.UUID, tag: str, session: DbSession, principal: SegmentsWriter) -> TagChangeOut:
    """Put a manual tag on a member (logged; assigning it again changes nothing)."""
    changed = await tags.do_assign(session, principal, tag, member_id)
    return await _tag_change(session, member_id, tag, changed)


@router.delete("/{member_id:uuid}/tags/{tag}", response_model=TagChangeOut)
async def unassign_tag(member_id: uuid.UUID, tag: str, session: DbSession, principal: SegmentsWriter) -> TagChangeOut:
    """Remove a manual tag from a member (logged)."""
    changed = await tags.do_unassign(session, principal, tag, member_id)
    return await _tag_change(session, member_id, tag, changed)


# --- a member's facts and the lifecycle -----------------------------------------------------------


@router.get("/{member_id:uuid}/facts", response_model=FactsOut)
async def member_facts(member_id: uuid.UUID, session: DbSession, _: SegmentsReader) -> FactsOut:
    """What segments see of a member today, their stage history, latest touches and tag log."""
    member = await oneid.get_member(session, member_id)
    row = await touches.facts_of(session, member.id)
    if row is None:
        raise NotFound("No facts are kept for this member yet; they appear with the first touch or refresh.")
    return FactsOut(
        member_id=member.id,
        facts=facts.fact_values(row, facts.today()),
        stage_since=row.stage_since,
        transitions=[TransitionOut.of(t) for t in await lifecycle.transitions_of(session, member.id)],
        touches=[TouchOut.of(t) for t in await touches.touches_of(session, member.id)],
        tag_log=[TagLogOut.of(log, name) for log, name in await tags.log_of(session, member.id)],
    )


@router.post(
    "/{member_id:uuid}/touches",
    response_model=TouchRecordedOut,
    status_code=201,
    responses={200: {"model": TouchRecordedOut, "description": "this kind and ref was recorded before"}},
)
async def record_touch(
    member_id: uuid.UUID, body: TouchIn, session: DbSession, _: SegmentsWriter, response: Response
) -> TouchRecordedOut:
    """Record a touch from outside the platform (a guide's call, a message sent, an app visit)."""
    member = await oneid.get_member(session, member_id)
    is_new = await touches.record_touch(
        session,
        member.id,
        body.kind,
        body.at or utcnow(),
        body.ref,
        channel=body.channel,
        amount_fen=body.amount_fen,
    )
    if not is_new:
        response.status_code = 200
    touch = await touches.touch_by_ref(session, body.kind, body.ref)
    return TouchRecordedOut(is_new=is_new, touch=TouchOut.of(touch))


@router.get("/lifecycle/settings", response_model=ThresholdsOut)
async def get_thresholds(session: DbSession, _: SegmentsReader) -> ThresholdsOut:
    return ThresholdsOut.of(await facts.read_settings(session))


@router.put("/lifecycle/settings", response_model=ThresholdsOut)
async def set_thresholds(body: ThresholdsIn, session: DbSession, principal: SegmentsWriter) -> ThresholdsOut:
    """The brand's days without a touch before a member is at risk, dormant, churned; and how long new lasts."""
    thresholds = lifecycle.Thresholds(body.new_days, body.at_risk_days, body.dormant_days, body.churned_days)
    return ThresholdsOut.of(await lifecycle.do_set_thresholds(session, principal.tenant_id, thresholds))


@router.post("/lifecycle/run", response_model=LifecycleRunOut)
async def run_lifecycle(session: DbSession, principal: SegmentsWriter) -> LifecycleRunOut:
    """Run today's lifecycle now (stages, RFM, computed tags, segments); the same day again changes nothing."""
    done = await lifecycle.do_run_lifecycle(session, principal.tenant_id)
    return LifecycleRunOut(members=done.members, transitions=done.transitions)
