"""Console pages of segments and lifecycle: the builder with a live count (htmx), saved segments with
refresh and export, and the lifecycle funnel (ECharts)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import localize_error, redirect_with_flash, render, tr
from zhongtai.members import expressions, lifecycle, segments
from zhongtai.members.console import STAGE_LABELS
from zhongtai.members.segment_permissions import SEGMENTS_EXPORT, SEGMENTS_READ, SEGMENTS_WRITE

router = APIRouter(prefix="/console/members/segments", include_in_schema=False)

SegmentsReader = Annotated[Principal, require_page(SEGMENTS_READ)]
SegmentsWriter = Annotated[Principal, require_page(SEGMENTS_WRITE)]
SegmentsExporter = Annotated[Principal, require_page(SEGMENTS_EXPORT)]
Expression = Annotated[str, Form(max_length=2000)]
Name = Annotated[str, Form(max_length=80)]

EXAMPLES = (
    'city == "杭州" && stage in ["active", "won_back"]',
    "scans >= 3 && days_since_touch > 45",
    '"vip" in tags || spend_fen >= 100000',
    "recency_score >= 4 && frequency_score >= 4 && monetary_score >= 4",
)


@router.get("")
async def segments_page(request: Request, session: DbSession, principal: SegmentsReader) -> Response:
    counts = await lifecycle.stage_counts(session)
    funnel = [{"name": tr(request, STAGE_LABELS[stage]), "value": n, "stage": stage} for stage, n in counts.items()]
    return render(
        request,
        "members/segments.html",
        {
            "segments": await segments.list_segments(session),
            "stage_counts": counts,
            "stage_labels": STAGE_LABELS,
            "funnel": funnel,
            "examples": EXAMPLES,
            "facts": expressions.FACTS,
            "can_write": principal.can(SEGMENTS_WRITE),
            "can_export": principal.can(SEGMENTS_EXPORT),
        },
    )


@router.post("/preview")
async def preview(request: Request, session: DbSession, _: SegmentsReader, expression: Expression = "") -> Response:
    """The builder's live count (an htmx fragment): members the expression selects now, a few masked."""
    if not expression.strip():
        return HTMLResponse("")
    try:
        found = await segments.preview(session, expression)
    except AppError as exc:
        return render(request, "members/_segment_preview.html", {"error": localize_error(request, exc)})
    return render(request, "members/_segment_preview.html", {"found": found, "stage_labels": STAGE_LABELS})


@router.post("")
async def create_segment(
    request: Request, session: DbSession, principal: SegmentsWriter, name: Name = "", expression: Expression = ""
) -> Response:
    try:
        row = await segments.do_create_segment(session, principal.tenant_id, name, expression)
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, "/console/members/segments", localize_error(request, exc), kind="error")
    return redirect_with_flash(
        request,
        "/console/members/segments",
        tr(request, "Segment {name} saved: {count} members.", name=row.name, count=row.member_count),
    )


@router.post("/{segment_id}/refresh")
async def refresh_segment(request: Request, session: DbSession, _: SegmentsWriter, segment_id: uuid.UUID) -> Response:
    row = await segments.get_segment(session, segment_id)
    await segments.do_refresh(session, row)
    return redirect_with_flash(
        request,
        "/console/members/segments",
        tr(request, "Segment {name} refreshed: {count} members.", name=row.name, count=row.member_count),
    )


@router.post("/{segment_id}/delete")
async def delete_segment(request: Request, session: DbSession, _: SegmentsWriter, segment_id: uuid.UUID) -> Response:
    row = await segments.get_segment(session, segment_id)
    name = row.name
    await segments.do_delete_segment(session, segment_id)
    return redirect_with_flash(request, "/console/members/segments", tr(request, "Segment {name} deleted.", name=name))


@router.get("/{segment_id}/export.csv")
async def export_segment(session: DbSession, _: SegmentsExporter, segment_id: uuid.UUID) -> Response:
    """The segment's member ids (no personal data), for a campaign tool or a message send."""
    row = await segments.get_segment(session, segment_id)
    chunks: list[str] = ["member_id\r\n"]  # read while the page's session is open
    async for ids in segments.member_ids(session, row):
        buffer = io.StringIO()
        csv.writer(buffer).writerows([str(i)] for i in ids)
        chunks.append(buffer.getvalue())
    return StreamingResponse(
        iter(chunks),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="segment-{row.id}.csv"'},
    )
