"""Console page of member imports: pick a layout, upload a marketplace, POS or CRM file, read the
per-row report; the documented columns of every layout and the latest imports are listed below."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, RuntimeDep
from zhongtai.kit import crud
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import render
from zhongtai.kit.tabular import ImportMode, ImportResult
from zhongtai.members import imports
from zhongtai.members.import_layouts import LAYOUTS
from zhongtai.members.permissions import MEMBERS_IMPORT

router = APIRouter(prefix="/console/members/import", include_in_schema=False)

MembersImporter = Annotated[Principal, require_page(MEMBERS_IMPORT)]
Text = Annotated[str, Form(max_length=40)]
DEFAULT_LAYOUT = "crm_members"


async def _import_page(
    request: Request,
    session: DbSession,
    *,
    layout: str = DEFAULT_LAYOUT,
    result: ImportResult | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "members/import.html",
        {
            "layout": layout,
            "layouts": LAYOUTS,
            "result": result,
            "report": crud.report_rows(request, result),
            "error": error,
            "recent": await imports.recent_imports(session, limit=10),
            **crud.import_limits(),
        },
        status_code=status_code,
    )


@router.get("")
async def import_page(request: Request, session: DbSession, _: MembersImporter) -> Response:
    return await _import_page(request, session)


@router.post("", dependencies=[Depends(crud.check_upload_size)])
async def import_upload(
    request: Request,
    session: DbSession,
    principal: MembersImporter,
    runtime: RuntimeDep,
    origin: Origin,
    file: Annotated[UploadFile, File()],
    layout: Text = DEFAULT_LAYOUT,
    mode: Text = "all",
    earns_points: Text = "",
    dry_run: Text = "",
) -> Response:
    """Import the file; a refused file (all or nothing with errors) answers 422 with the report."""
    layout = layout if layout in LAYOUTS else DEFAULT_LAYOUT
    chosen = ImportMode.VALID_ROWS if mode == ImportMode.VALID_ROWS else ImportMode.ALL
    try:
        result = await imports.do_import(
            session,
            principal,
            runtime.crypto,
            layout_name=layout,
            filename=file.filename or "",
            content=await crud.read_upload(file),
            mode=chosen,
            earns_points=earns_points == "1",
            dry_run=dry_run == "1",
            origin=origin,
        )
    except AppError as exc:
        await session.rollback()
        message = crud.import_error(request, exc)
        return await _import_page(request, session, layout=layout, error=message, status_code=exc.status_code)
    refused = bool(result.errors) and chosen is ImportMode.ALL and dry_run != "1"
    return await _import_page(request, session, layout=layout, result=result, status_code=422 if refused else 200)
