"""EPCIS 2.0 REST bindings under `/epcis`: capture, capture jobs, event queries, per-resource paths.

Every error of these endpoints is an RFC 7807 problem (`application/problem+json`) with the
bindings' `epcisException:…` type, including authentication and permission refusals.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from zhongtai.core import jsonsafe
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import AppError, CrossTenantAccess, NotFound, PermissionDenied, Unauthenticated
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, RuntimeDep, require
from zhongtai.trace import capture, epcis_schema, events, query
from zhongtai.trace.errors import (
    CaptureLimitExceeded,
    EpcisError,
    EpcisValidationError,
    NoSuchResource,
    QueryParameterError,
    ResourceAlreadyExists,
    UnsupportedMediaType,
)
from zhongtai.trace.hashing import namespaces_of
from zhongtai.trace.permissions import TRACE_CAPTURE, TRACE_READ

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
VERSION_HEADERS = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
PROBLEM_JSON = "application/problem+json"
# Arrays and objects inside one another in a captured document (an event sits at depth 3, its ilmd at 4).
MAX_DEPTH = jsonsafe.MAX_DEPTH


def problem(error: AppError) -> JSONResponse:
    if isinstance(error, EpcisError):
        kind, title = error.epcis_type, error.title
    elif isinstance(error, Unauthenticated | PermissionDenied):
        kind, title = "epcisException:SecurityException", "Access refused"
    elif isinstance(error, NotFound):
        kind, title = NoSuchResource.epcis_type, NoSuchResource.title
    else:
        kind, title = EpcisError.epcis_type, "EPCIS error"
    body: dict[str, Any] = {"type": kind, "title": title, "status": error.status_code, "detail": error.message}
    headers = dict(VERSION_HEADERS)
    if "errors" in error.data:
        body["errors"] = error.data["errors"]
    if "location" in error.data:
        headers["Location"] = str(error.data["location"])
    if "retry_after_seconds" in error.data:
        headers["Retry-After"] = str(error.data["retry_after_seconds"])
    return JSONResponse(body, status_code=error.status_code, media_type=PROBLEM_JSON, headers=headers)


class EpcisRoute(APIRoute):
    """Renders errors raised anywhere in the route (dependencies included) as EPCIS problems."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except CrossTenantAccess:
                raise
            except AppError as error:
                return problem(error)
            except RequestValidationError as error:
                details = "; ".join(str(e.get("msg", "invalid")) for e in error.errors()[:3])
                return problem(QueryParameterError(f"The request is not valid: {details}."))

        return route_handler


router = APIRouter(prefix="/epcis", tags=["epcis"], route_class=EpcisRoute)

Capturer = Annotated[Principal, Depends(require(TRACE_CAPTURE))]
Reader = Annotated[Principal, Depends(require(TRACE_READ))]

CAPTURE_HEADERS = {
    "GS1-EPCIS-Capture-Limit": str(capture.CAPTURE_LIMIT),
    "GS1-EPCIS-Capture-File-Size-Limit": str(capture.CAPTURE_FILE_SIZE_LIMIT),
    "GS1-Capture-Error-Behaviour": "all",
}


async def _json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", "application/ld+json"):
        raise UnsupportedMediaType(
            f"Send EPCIS documents as application/json or application/ld+json, not {content_type}."
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > capture.CAPTURE_FILE_SIZE_LIMIT:
        raise CaptureLimitExceeded(
            f"The document is larger than {capture.CAPTURE_FILE_SIZE_LIMIT} bytes.",
            file_size_limit=capture.CAPTURE_FILE_SIZE_LIMIT,
        )
    raw = await request.body()
    if len(raw) > capture.CAPTURE_FILE_SIZE_LIMIT:
        raise CaptureLimitExceeded(
            f"The document is larger than {capture.CAPTURE_FILE_SIZE_LIMIT} bytes.",
            file_size_limit=capture.CAPTURE_FILE_SIZE_LIMIT,
        )
    try:
        return jsonsafe.loads(raw, max_depth=MAX_DEPTH)
    except jsonsafe.JsonRefused as exc:
        raise EpcisValidationError(
            f"{exc.pointer or '/'}: {exc.message}.", errors=[{"pointer": exc.pointer, "message": exc.message}]
        ) from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise EpcisValidationError(
            f"The body is not JSON: {exc}.", errors=[{"pointer": "", "message": str(exc)}]
        ) from None


def _document_response(content: Any, headers: dict[str, str]) -> JSONResponse:
    """A query answer; a non-finite number stored before capture refused them is sent as its text."""
    try:
        return JSONResponse(content, headers=headers)
    except ValueError:
        return JSONResponse(jsonsafe.echo_safe(content), headers=headers)


@router.options("/capture", status_code=204)
async def capture_options(_: Capturer) -> Response:
    return Response(status_code=204, headers={"Allow": "OPTIONS, POST, GET", **VERSION_HEADERS, **CAPTURE_HEADERS})


@router.post("/capture", status_code=202)
async def capture_document(
    request: Request,
    session: DbSession,
    actor: Capturer,
    gs1_capture_error_behaviour: Annotated[str, Header(alias="GS1-Capture-Error-Behaviour")] = "rollback",
) -> Response:
    """Capture an EPCISDocument: 202 with the capture job's address in `Location`."""
    behaviour = gs1_capture_error_behaviour.strip().lower()
    if behaviour not in capture.ERROR_BEHAVIOURS:
        raise EpcisValidationError(
            "GS1-Capture-Error-Behaviour must be 'rollback' or 'proceed'.",
            errors=[{"pointer": "", "message": f"unknown capture error behaviour {behaviour!r}"}],
        )
    document = await _json_body(request)
    job = await capture.do_receive(session, actor, document, error_behaviour=behaviour)
    return Response(
        status_code=202,
        headers={"Location": f"/epcis/capture/{job.id}", **VERSION_HEADERS, **CAPTURE_HEADERS},
    )


@router.get("/capture")
async def list_capture_jobs(
    session: DbSession,
    actor: Reader,
    runtime: RuntimeDep,
    perPage: int = 30,  # noqa: N803 - the bindings' names
    nextPageToken: str = "",  # noqa: N803
) -> Response:
    """Capture jobs of the brand, newest first."""
    if not 1 <= perPage <= query.MAX_PER_PAGE:
        raise QueryParameterError(f"perPage must be a whole number from 1 to {query.MAX_PER_PAGE}.")
    before = None
    if nextPageToken:
        before = await capture.get_job(session, _verify_job_token(runtime, nextPageToken, actor.tenant_id))
    jobs = await capture.list_jobs(session, limit=perPage + 1, before=before.id if before else None)
    headers = dict(VERSION_HEADERS)
    if len(jobs) > perPage:
        jobs = jobs[:perPage]
        token = f"{jobs[-1].id}.{runtime.crypto.sign(str(jobs[-1].id), purpose=f'epcis.jobs:{actor.tenant_id}')[:32]}"
        headers["Link"] = f'</epcis/capture?{urlencode({"perPage": perPage, "nextPageToken": token})}>; rel="next"'
    return JSONResponse([capture.job_document(job) for job in jobs], headers=headers)


def _verify_job_token(runtime: Any, token: str, tenant_id: Any) -> str:
    value, _, signature = token.partition(".")
    if signature != runtime.crypto.sign(value, purpose=f"epcis.jobs:{tenant_id}")[:32]:
        raise QueryParameterError("nextPageToken is not valid.", parameter="nextPageToken")
    return value


@router.get("/capture/{captureID}")
async def get_capture_job(captureID: str, session: DbSession, _: Reader) -> Response:  # noqa: N803 - the bindings' name
    job = await capture.get_job(session, captureID)
    return JSONResponse(capture.job_document(job), headers=VERSION_HEADERS)


@router.post("/events", status_code=201)
async def capture_event(request: Request, session: DbSession, actor: Capturer) -> Response:
    """Capture one event synchronously: 201 with the event's address, 409 when it is already stored
    (an error declaration it carries that was not recorded yet is recorded: 201)."""
    event = await _json_body(request)
    if not isinstance(event, dict) or event.get("type") in ("EPCISDocument", "EPCISQueryDocument"):
        raise EpcisValidationError(
            "POST /epcis/events takes a single event; send documents to /epcis/capture.",
            errors=[{"pointer": "/type", "message": "must be an EPCIS event type"}],
        )
    problems = events.long_identifiers(event, "") or epcis_schema.validate(event)
    if problems:
        raise capture.validation_error(problems)
    try:
        prepared = events.prepare(
            event,
            position=0,
            pointer="",
            namespaces=namespaces_of(event.get("@context")),
            context=events.extra_context(event.get("@context")),
        )
    except events.EventProblem as exc:
        raise capture.validation_error([exc.problem]) from None
    new, _, conflicts = await events.check_new(session, actor.tenant_id, [prepared])
    if conflicts:
        raise capture.validation_error(conflicts)
    location = f"/epcis/events/{quote(prepared.event_id, safe='')}"
    stored = bool(new) and bool((await events.do_store(session, actor.tenant_id, new, capture_id=None)).stored)
    declared = await events.record_declarations(session, actor.tenant_id, [prepared])
    if not stored and not declared:
        raise ResourceAlreadyExists(f"The event {prepared.event_id} is already stored.", location=location)
    return Response(status_code=201, headers={"Location": location, **VERSION_HEADERS})


def _query_document(rows: list[Any], declarations: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": [query.render_event(row, declarations.get(row.id)) for row in rows]},
            }
        },
    }


async def _events_response(
    request: Request,
    session: DbSession,
    actor: Principal,
    runtime: RuntimeDep,
    fixed: list[tuple[str, str]],
    *,
    resource: str | None = None,
) -> Response:
    params = list(request.query_params.multi_items())
    clash = {name for name, _ in fixed} & {name for name, _ in params}
    if clash:
        raise QueryParameterError(f"{clash.pop()} is already given by the path.")
    parsed = query.parse([*params, *fixed])
    rows, token = await query.run(session, runtime.crypto, actor.tenant_id, parsed)
    if resource is not None and not rows and parsed.page_token is None:
        # A per-resource path names a resource (an EPC, a location…): with no event it does not exist here.
        raise NoSuchResource(f"No events for {resource}.")
    headers = dict(VERSION_HEADERS)
    if token is not None:
        kept = [(k, v) for k, v in params if k != "nextPageToken"]
        if not any(k == "perPage" for k, _ in kept):
            kept.append(("perPage", str(parsed.per_page)))
        headers["Link"] = f'<{request.url.path}?{urlencode([*kept, ("nextPageToken", token)])}>; rel="next"'
    declarations = await query.declarations_of(session, [row.id for row in rows])
    return _document_response(_query_document(rows, declarations), headers)


@router.get("/events")
async def query_events(request: Request, session: DbSession, actor: Reader, runtime: RuntimeDep) -> Response:
    """Events matching the SimpleEventQuery parameters, as an EPCISQueryDocument (paged)."""
    return await _events_response(request, session, actor, runtime, [])


@router.get("/events/{eventID:path}")
async def get_event(eventID: str, session: DbSession, actor: Reader) -> Response:  # noqa: N803
    row = await query.get_event(session, actor.tenant_id, eventID)
    if row is None:
        raise NoSuchResource(f"No event {eventID}.")
    declarations = await query.declarations_of(session, [row.id])
    return _document_response(_query_document([row], declarations), dict(VERSION_HEADERS))


def _per_resource(parameter: str) -> Callable[..., Coroutine[Any, Any, Response]]:
    async def endpoint(
        request: Request, value: str, session: DbSession, actor: Reader, runtime: RuntimeDep
    ) -> Response:
        return await _events_response(request, session, actor, runtime, [(parameter, value)], resource=value)

    return endpoint


def _register(path: str, parameter: str, name: str) -> None:
    endpoint = _per_resource(parameter)

    async def route(request: Request, session: DbSession, actor: Reader, runtime: RuntimeDep) -> Response:
        return await endpoint(request, request.path_params[name], session, actor, runtime)

    route.__name__ = f"events_by_{name}"
    router.add_api_route(path, route, methods=["GET"], summary=f"Events by {name} ({parameter})")


_register("/eventTypes/{eventType}/events", "eventType", "eventType")
_register("/epcs/{epc:path}/events", "MATCH_anyEPC", "epc")
_register("/bizSteps/{bizStep:path}/events", "EQ_bizStep", "bizStep")
_register("/bizLocations/{bizLocation:path}/events", "EQ_bizLocation", "bizLocation")
_register("/readPoints/{readPoint:path}/events", "EQ_readPoint", "readPoint")
_register("/dispositions/{disposition:path}/events", "EQ_disposition", "disposition")
