"""Member imports over HTTP: one upload route per documented layout
(`POST /api/v1/members/imports/{layout}`) answering the kit's import report, and the import log."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel

from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin, RuntimeDep, require
from zhongtai.kit.crud import ImportReport, check_upload_size, read_upload, report_of
from zhongtai.kit.tabular import ImportHasErrors, ImportMode
from zhongtai.members import imports
from zhongtai.members.import_layouts import LAYOUTS, Layout
from zhongtai.members.import_models import MemberImport
from zhongtai.members.permissions import MEMBERS_IMPORT

router = APIRouter(prefix="/api/v1/members/imports", tags=["members"])

MembersImporter = Annotated[Principal, Depends(require(MEMBERS_IMPORT))]
ImportFile = Annotated[UploadFile, File(description="CSV (UTF-8 or GB18030) or XLSX; first row names the columns")]
ImportModeForm = Annotated[ImportMode, Form(description="`all`: nothing unless every row is valid")]
EarnsPoints = Annotated[bool, Form(description="imported orders earn purchase points by the active rule")]
DryRun = Annotated[bool, Form(description="check only, write nothing")]
IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "the file is larger than 5 MB or has more than 50,000 rows"},
    422: {"description": "some rows have errors and mode is `all`: nothing was imported; `data` is the report"},
}


class MemberImportOut(BaseModel):
    id: uuid.UUID
    layout: str
    file_format: str
    mode: str
    earns_points: bool
    actor_label: str
    rows: int
    created: int
    updated: int
    unchanged: int
    invalid_rows: int
    created_at: datetime

    @classmethod
    def of(cls, row: MemberImport) -> MemberImportOut:
        return cls.model_validate(row, from_attributes=True)


@router.get("", response_model=list[MemberImportOut])
async def list_imports(session: DbSession, _: MembersImporter) -> list[MemberImportOut]:
    """The brand's latest imports, newest first (who, when, which layout, the counts)."""
    return [MemberImportOut.of(row) for row in await imports.recent_imports(session)]


def _endpoint(layout: Layout) -> Callable[..., Awaitable[ImportReport]]:
    async def endpoint(
        session: DbSession,
        actor: MembersImporter,
        runtime: RuntimeDep,
        origin: Origin,
        file: ImportFile,
        mode: ImportModeForm = ImportMode.ALL,
        earns_points: EarnsPoints = False,
        dry_run: DryRun = False,
    ) -> ImportReport:
        result = await imports.do_import(
            session,
            actor,
            runtime.crypto,
            layout_name=layout.name,
            filename=file.filename or "",
            content=await read_upload(file),
            mode=mode,
            earns_points=earns_points,
            dry_run=dry_run,
            origin=origin,
        )
        report = report_of(result)
        if result.errors and mode is ImportMode.ALL and not dry_run:
            raise ImportHasErrors(
                f"{result.invalid_rows} of {result.rows} rows have errors; nothing was imported. "
                "Fix them, or import only the valid rows.",
                **report.model_dump(mode="json"),
            )
        return report

    endpoint.__name__ = f"import_{layout.name}"
    return endpoint


def _description(layout: Layout) -> str:
    lines = [f"{layout.label}: rows matched into OneID. Columns (required marked *):", ""]
    lines += [
        f"- `{name}`{' *' if name in layout.required else ''}: {', '.join(headers)}"
        for name, headers in layout.columns.items()
    ]
    return "\n".join(lines)


for _layout in LAYOUTS.values():
    router.add_api_route(
        f"/{_layout.name}",
        _endpoint(_layout),
        methods=["POST"],
        response_model=ImportReport,
        dependencies=[Depends(check_upload_size)],
        responses=IMPORT_RESPONSES,
        summary=f"Import {_layout.label}",
        description=_description(_layout),
    )
