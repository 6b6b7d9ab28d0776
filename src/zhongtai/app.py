"""The ASGI application: `create_app()` wires settings, runtime, routers, errors and middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhongtai import __version__, domains
from zhongtai.authenticity import api as authenticity_api
from zhongtai.authenticity import console as authenticity_console
from zhongtai.authenticity import h5 as authenticity_h5
from zhongtai.authenticity import permissions as _authenticity_permissions  # noqa: F401
from zhongtai.authenticity import report_pages, reports_api
from zhongtai.authenticity import service as _authenticity_jobs  # noqa: F401 - registers the clone-alert job
from zhongtai.catalog import api as catalog_api
from zhongtai.catalog import console as catalog_console
from zhongtai.channel import api as channel_api
from zhongtai.channel import console as channel_console
from zhongtai.channel import h5_pages as channel_h5
from zhongtai.codes import api as codes_api
from zhongtai.codes import console as codes_console
from zhongtai.codes import generation as _codes_jobs  # noqa: F401 - registers the generation job
from zhongtai.core import api as core_api
from zhongtai.core import health, jsonsafe
from zhongtai.core.errors import AppError, CrossTenantAccess, HttpError, ValidationFailed
from zhongtai.core.logs import configure_logging, request_id_var
from zhongtai.core.middleware import BodyLimitMiddleware, RequestContextMiddleware, internal_error
from zhongtai.core.runtime import Runtime
from zhongtai.core.schemas import ErrorOut
from zhongtai.core.settings import Settings
from zhongtai.flashsale import api as flashsale_api
from zhongtai.flashsale import console as flashsale_console
from zhongtai.flashsale.fastpath import FlashSaleFastPath, FlashSaleFront
from zhongtai.flashsale.persister import InProcessPersister, make_persister
from zhongtai.ledger import api as ledger_api
from zhongtai.ledger import console as ledger_console
from zhongtai.lottery import api as lottery_api
from zhongtai.lottery import console as lottery_console
from zhongtai.lottery import h5 as lottery_h5
from zhongtai.members import api as members_api
from zhongtai.members import console as members_console
from zhongtai.members import duplicates_api as members_duplicates_api
from zhongtai.members import h5 as members_h5
from zhongtai.members import import_pages as members_import_pages
from zhongtai.members import imports_api as members_imports_api
from zhongtai.members import me_api as members_me_api
from zhongtai.members import points_api as members_points_api
from zhongtai.members import segment_pages as members_segment_pages
from zhongtai.members import segments_api as members_segments_api
from zhongtai.rewards import api as rewards_api
from zhongtai.rewards import console as rewards_console
from zhongtai.rewards import h5_pages as rewards_h5
from zhongtai.sales import api as sales_api
from zhongtai.sales import console as sales_console
from zhongtai.sales import h5 as sales_h5
from zhongtai.trace import console as trace_console
from zhongtai.trace import epcis_api, trace_api
from zhongtai.trace import log_api as trace_log_api
from zhongtai.trace import producers as _trace_producers  # noqa: F401 - registers the custody-step job

log = logging.getLogger("zhongtai.app")

STATIC_DIR = Path(__file__).parent / "static"
HTML_PREFIXES = ("/console", "/h5")


def _wants_html(request: Request) -> bool:
    return request.url.path.startswith(HTML_PREFIXES) and "text/html" in request.headers.get("accept", "")


def _describe_validation(exc: RequestValidationError) -> ValidationFailed:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append({"field": location, "problem": error.get("msg", "invalid")})
    summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems[:5])
    return ValidationFailed(f"The request is not valid — {summary}.", errors=problems)


def _install_error_handlers(app: FastAPI) -> None:
    async def render(request: Request, error: AppError) -> Response:
        if _wants_html(request):
            from zhongtai.console.pages import render_error_page

            page = await render_error_page(request, error)
            if "retry_after_seconds" in error.data:
                page.headers["retry-after"] = str(error.data["retry_after_seconds"])
            return page
        headers = (
            {"retry-after": str(error.data["retry_after_seconds"])} if "retry_after_seconds" in error.data else None
        )
        body = error.to_dict()
        try:
            return JSONResponse(body, status_code=error.status_code, headers=headers)
        except ValueError:  # the error quotes a value JSON cannot carry (NaN, an unpaired surrogate)
            return JSONResponse(jsonsafe.echo_safe(body), status_code=error.status_code, headers=headers)

    @app.exception_handler(AppError)
    async def on_app_error(request: Request, exc: AppError) -> Response:
        if isinstance(exc, CrossTenantAccess):
            log.error("tenant isolation guard tripped", exc_info=exc)
            hidden = AppError("Internal error.", request_id=request_id_var.get())
            hidden.status_code, hidden.code = 500, "internal_error"
            return await render(request, hidden)
        return await render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return await render(request, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        message = "Not found." if exc.status_code == 404 else str(exc.detail)
        return await render(request, HttpError(exc.status_code, message))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(internal_error(request_id_var.get()), status_code=500)


def _describe_errors_as_sent(app: FastAPI) -> None:
    """The API description names the error shape the handlers above send: FastAPI's default 422
    schema (`{"detail": [...]}`) is replaced by `ErrorOut` (`{"error", "detail", "data"}`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        error_out = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
                if "422" in responses:
                    responses["422"] = {"description": "The request is not valid (error shape)", **error_out}
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else Settings())
    configure_logging(settings.log_level, json_lines=settings.log_json)
    domains.load_all()  # every job topic, domain-event subscriber and page panel, in one place
    app = FastAPI(
        title="zhongtai 中台",
        version=__version__,
        description="One item one code, traceability, channel incentives, members, flash sales and lotteries.",
        lifespan=_lifespan(settings, runtime),
        docs_url="/docs",
        redoc_url=None,
    )
    if runtime is not None:
        app.state.runtime = runtime
    _install_error_handlers(app)
    _describe_errors_as_sent(app)
    app.add_middleware(BodyLimitMiddleware)  # inside the request context: its refusals carry the request id
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(FlashSaleFastPath)  # outermost: buys skip the rest of the stack
    _include_api_routers(app)
    _include_page_routers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app


def _lifespan(settings: Settings, runtime: Runtime | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start and stop the runtime the app owns (none when one is passed in), and the in-process
    flash-sale persister when the settings ask for it."""
    owns_runtime = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = runtime or Runtime(settings)
        app.state.runtime = active
        persister: InProcessPersister | None = None
        if owns_runtime:
            await active.start()
            if settings.in_process_worker:
                persister = InProcessPersister(make_persister(active.db, active.redis, settings))
                persister.start()
        try:
            yield
        finally:
            if persister is not None:
                await persister.stop()
            if owns_runtime:
                await active.stop()

    return lifespan


def _include_api_routers(app: FastAPI) -> None:
    app.include_router(health.router)
    # First after health: a request walks the routes in order, and the consumer's PIN check is the
    # busiest public endpoint (hundreds of routes follow).
    app.include_router(authenticity_api.router)
    app.include_router(core_api.router)
    app.include_router(catalog_api.router)
    app.include_router(channel_api.router)
    app.include_router(codes_api.router)
    app.include_router(epcis_api.router)
    app.include_router(trace_log_api.router)
    app.include_router(trace_api.router)
    app.include_router(members_segments_api.router)  # before /members/{member_id}
    app.include_router(members_imports_api.router)  # before /members/{member_id}
    app.include_router(members_api.router)
    app.include_router(members_duplicates_api.router)
    app.include_router(members_me_api.router)
    app.include_router(members_points_api.router)
    app.include_router(lottery_api.router)
    app.include_router(flashsale_api.router)
    app.include_router(ledger_api.router)
    app.include_router(rewards_api.router)
    app.include_router(sales_api.router)
    app.include_router(reports_api.router)


def _include_page_routers(app: FastAPI) -> None:
    """The console and H5 pages, after every API route; the Digital Link resolver at the root last."""
    from zhongtai.console.pages import router as console_router
    from zhongtai.h5.pages import router as h5_router

    app.include_router(console_router)
    app.include_router(catalog_console.router)
    app.include_router(channel_console.router)
    app.include_router(channel_h5.router)
    app.include_router(codes_console.router)
    app.include_router(trace_console.router)
    app.include_router(members_segment_pages.router)
    app.include_router(members_import_pages.router)  # before /console/members/{member_id}
    app.include_router(members_console.router)
    app.include_router(ledger_console.router)
    app.include_router(rewards_console.router)
    app.include_router(rewards_h5.router)
    app.include_router(authenticity_console.router)
    app.include_router(lottery_console.router)
    app.include_router(flashsale_console.router)
    app.include_router(h5_router)
    app.include_router(lottery_h5.router)
    app.include_router(members_h5.router)
    app.include_router(sales_console.router)
    app.include_router(sales_h5.router)
    app.include_router(report_pages.router)
    app.include_router(authenticity_h5.router)  # the Digital Link resolver at the root


def app_factory() -> FlashSaleFront:
    """Entry point for granian (`--factory zhongtai.app:app_factory`): the application behind the
    flash-sale front, which answers buys before FastAPI's layers."""
    return FlashSaleFront(create_app())
