"""The console's and the API's shared pattern for master data (catalog products, channel dealers,
stores and guides): uploads refused early by size, the per-row import report (API model and page
rows), the operator's wording of an import failure, and archive / unarchive routes.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhongtai.core.errors import AppError
from zhongtai.core.web import DbSession, Origin
from zhongtai.kit import tabular
from zhongtai.kit.rendering import localize_error, redirect_with_flash, tr

UPLOAD_SLACK_BYTES = 64 * 1024  # multipart boundaries and form fields around the file


def _too_large() -> tabular.ImportTooLarge:
    megabytes = tabular.MAX_BYTES // (1024 * 1024)
    return tabular.ImportTooLarge(f"The file is larger than {megabytes} MB; split it into smaller files.")


def check_upload_size(request: Request) -> None:
    """Dependency: refuse an oversized upload from its Content-Length before reading it (413)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > tabular.MAX_BYTES + UPLOAD_SLACK_BYTES:
        raise _too_large()


async def read_upload(upload: UploadFile) -> bytes:
    """The uploaded file, read no further than one byte past the limit (413 past it)."""
    content = await upload.read(tabular.MAX_BYTES + 1)
    if len(content) > tabular.MAX_BYTES:
        raise _too_large()
    return content


class ImportRowError(BaseModel):
    row: int = Field(description="row number in the file; the header is row 1")
    column: str = Field(description="the column as named in the file; empty for a problem of the whole row")
    message: str


class ImportReport(BaseModel):
    file_format: str
    mode: str
    rows: int = Field(description="data rows read (blank rows skipped)")
    valid_rows: int
    invalid_rows: int
    imported: bool
    created: int
    updated: int
    unchanged: int
    ignored_columns: list[str]
    error_count: int
    errors: list[ImportRowError] = Field(description="the first 1,000 problems, in file order")


def report_of(result: tabular.ImportResult) -> ImportReport:
    return ImportReport(
        file_format=result.file_format,
        mode=str(result.mode),
        rows=result.rows,
        valid_rows=result.valid_rows,
        invalid_rows=result.invalid_rows,
        imported=result.imported,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        ignored_columns=result.ignored_columns,
        error_count=len(result.errors),
        errors=[ImportRowError(row=e.row, column=e.column, message=e.message) for e in result.reported_errors],
    )


def report_rows(request: Request, result: tabular.ImportResult | None) -> list[dict[str, Any]]:
    """The reported problems of an import as page rows, each message in the operator's language."""
    if result is None:
        return []
    return [
        {"row": e.row, "column": e.column, "message": tr(request, e.template, **e.values)}
        for e in result.reported_errors
    ]


def import_limits() -> dict[str, int]:
    """What an import page tells the operator before they upload."""
    return {
        "max_rows": tabular.MAX_ROWS,
        "max_megabytes": tabular.MAX_BYTES // (1024 * 1024),
        "max_reported": tabular.MAX_REPORTED_ERRORS,
    }


def import_error(request: Request, error: AppError) -> str:
    """An import that failed as a whole (no header, unreadable, too large), in the operator's words."""
    if "missing_columns" in error.data:
        return tr(
            request,
            "The first row must name the columns; missing: {columns}.",
            columns=", ".join(error.data["missing_columns"]),
        )
    if error.code != tabular.ImportTooLarge.code:
        return localize_error(request, error)
    if error.message.startswith("The file has more than"):
        return tr(
            request, "The file has more than {rows} rows; split it into smaller files.", rows=f"{tabular.MAX_ROWS:,}"
        )
    return tr(
        request,
        "The file is larger than {megabytes} MB; split it into smaller files.",
        megabytes=tabular.MAX_BYTES // (1024 * 1024),
    )


Archiver = Callable[..., Awaitable[Any]]


def add_archive_routes(
    router: APIRouter,
    path: str,
    *,
    id_name: str,
    archive: Archiver,
    permission: Any,
    archived_message: str,
    restored_message: str,
    back: Callable[[Any], str],
) -> None:
    """POST `{path}/archive` and `{path}/unarchive` for a master-data page.

    `path` names the record's id as `{id_name}` (a UUID, e.g. "/dealers/{dealer_id}"). `archive(session,
    principal, id, archived=…, origin=…)` is the domain's service call and returns the record (with a
    `name`); the operator is sent to `back(record)` with `archived_message` or `restored_message`
    (English templates with `{name}`), translated. `permission` is the page's principal type
    (`Annotated[Principal, require_page(...)]`).
    """
    for archived, message in ((True, archived_message), (False, restored_message)):
        endpoint = _archive_endpoint(archive, archived=archived, message=message, back=back, id_name=id_name)
        endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
                inspect.Parameter("session", inspect.Parameter.KEYWORD_ONLY, annotation=DbSession),
                inspect.Parameter("origin", inspect.Parameter.KEYWORD_ONLY, annotation=Origin),
                inspect.Parameter("principal", inspect.Parameter.KEYWORD_ONLY, annotation=permission),
                inspect.Parameter(id_name, inspect.Parameter.KEYWORD_ONLY, annotation=uuid.UUID),
            ],
            return_annotation=Response,
        )
        suffix = "archive" if archived else "unarchive"
        endpoint.__name__ = f"{suffix}_{id_name.removesuffix('_id')}"
        router.add_api_route(f"{path}/{suffix}", endpoint, methods=["POST"])


def _archive_endpoint(
    archive: Archiver, *, archived: bool, message: str, back: Callable[[Any], str], id_name: str
) -> Callable[..., Awaitable[Response]]:
    async def endpoint(request: Request, session: Any, origin: Any, principal: Any, **ids: uuid.UUID) -> Response:
        record = await archive(session, principal, ids[id_name], archived=archived, origin=origin)
        return redirect_with_flash(request, back(record), tr(request, message, name=record.name))

    return endpoint
