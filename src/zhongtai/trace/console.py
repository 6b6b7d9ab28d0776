"""Console page of the trace view: a code's product, lot, custody steps as a timeline with a
"verified" mark per event (its inclusion proof checked here against the brand's signed checkpoint),
and the packing tree over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from zhongtai.catalog.rules import display_gtin
from zhongtai.codes.states import LEVEL_LABELS, STATE_LABELS
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import localize_error, render
from zhongtai.trace import steps as trace_steps
from zhongtai.trace.permissions import TRACE_READ

router = APIRouter(prefix="/console/trace", include_in_schema=False)

TraceReader = Annotated[Principal, require_page(TRACE_READ)]


@router.get("")
async def trace_page(
    request: Request,
    session: DbSession,
    principal: TraceReader,
    code: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    code = code.strip()
    result = None
    error = None
    if code:
        try:
            result = await trace_steps.code_trace(session, principal.tenant_id, code, with_actors=True)
            await trace_steps.verify(session, principal.tenant_id, result)
        except AppError as exc:
            error = localize_error(request, exc)
    return render(
        request,
        "trace/trace.html",
        {
            "code": code,
            "result": result,
            "error": error,
            "state_labels": STATE_LABELS,
            "level_labels": LEVEL_LABELS,
            "display_gtin": display_gtin,
        },
    )
