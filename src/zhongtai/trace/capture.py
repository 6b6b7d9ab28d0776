"""EPCIS capture: receive a document, validate it whole, and store its events in a capture job.

`do_receive` refuses a document that does not validate against the EPCIS 2.0 JSON Schema (400,
every problem located by a JSON pointer) or exceeds the capture limits (413). Otherwise it records a
capture job: small documents are stored right away in the request's transaction, large ones by the
outbox job `trace.capture`; either way the client polls `GET /epcis/capture/{captureID}`.

Per-event problems found while storing (a malformed EPC, an eventID already used by another event)
follow `GS1-Capture-Error-Behaviour`: `rollback` (default) stores nothing, `proceed` stores every
event without a problem. Events already stored are skipped, never stored twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.jobs import JobContext
from zhongtai.core.principals import Principal
from zhongtai.trace import epcis_schema, events
from zhongtai.trace.epcis_schema import Problem
from zhongtai.trace.errors import CaptureLimitExceeded, EpcisValidationError, NoSuchResource
from zhongtai.trace.hashing import namespaces_of
from zhongtai.trace.models import CaptureJob

CAPTURE_TOPIC = "trace.capture"
CAPTURE_LIMIT = 10_000  # events per document (GS1-EPCIS-Capture-Limit)
CAPTURE_FILE_SIZE_LIMIT = 20 * 1024 * 1024  # bytes (GS1-EPCIS-Capture-File-Size-Limit)
INLINE_EVENT_LIMIT = 500  # documents up to this many events are stored within the request
ERROR_BEHAVIOURS = ("rollback", "proceed")


def check_document(document: Any) -> list[dict[str, Any]]:
    """The event list of a valid EPCISDocument / EPCISQueryDocument; raises the located problems."""
    if not isinstance(document, dict) or document.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
        raise EpcisValidationError(
            "The body must be an EPCISDocument or an EPCISQueryDocument.",
            errors=[Problem("/type", "must be 'EPCISDocument' or 'EPCISQueryDocument'").as_dict()],
        )
    problems = epcis_schema.validate(document)
    if problems:
        raise validation_error(problems)
    body = document["epcisBody"]
    event_list: list[dict[str, Any]] = (
        body["eventList"] if "eventList" in body else body["queryResults"]["resultsBody"]["eventList"]
    )
    if len(event_list) > CAPTURE_LIMIT:
        raise CaptureLimitExceeded(
            f"The document holds {len(event_list)} events; at most {CAPTURE_LIMIT} are accepted per capture.",
            capture_limit=CAPTURE_LIMIT,
        )
    too_long = [
        problem
        for position, event in enumerate(event_list)
        for problem in events.long_identifiers(event, _event_pointer(document, position))
    ]
    if too_long:
        raise validation_error(too_long[: epcis_schema.MAX_PROBLEMS])
    return event_list


def validation_error(problems: list[Problem]) -> EpcisValidationError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return EpcisValidationError(
        f"{first.pointer or '/'}: {first.message}{more}", errors=[p.as_dict() for p in problems]
    )


def _event_pointer(document: dict[str, Any], position: int) -> str:
    if "eventList" in document["epcisBody"]:
        return f"/epcisBody/eventList/{position}"
    return f"/epcisBody/queryResults/resultsBody/eventList/{position}"


async def do_receive(
    session: AsyncSession, actor: Principal, document: Any, *, error_behaviour: str = "rollback"
) -> CaptureJob:
    event_list = check_document(document)
    if len(event_list) <= INLINE_EVENT_LIMIT and session.get_bind().dialect.name == "postgresql":
        return await _receive_postgres(session, actor, document, event_list, error_behaviour)
    job = CaptureJob(
        tenant_id=actor.tenant_id,
        error_behaviour=error_behaviour,
        event_count=len(event_list),
        created_by=actor.label,
    )
    session.add(job)
    await session.flush()
    if len(event_list) <= INLINE_EVENT_LIMIT:
        await run(session, actor.tenant_id, job, document, event_list)
    else:
        job.document = document
        await jobs.enqueue(session, CAPTURE_TOPIC, {"capture_id": str(job.id)}, dedupe_key=f"{CAPTURE_TOPIC}:{job.id}")
    return job


def _prepare_all(
    document: dict[str, Any], event_list: list[dict[str, Any]]
) -> tuple[list[events.PreparedEvent], list[Problem]]:
    namespaces = namespaces_of(document.get("@context"))
    context = events.extra_context(document.get("@context"))
    prepared: list[events.PreparedEvent] = []
    problems: list[Problem] = []
    for position, event in enumerate(event_list):
        try:
            prepared.append(
                events.prepare(
                    event,
                    position=position,
                    pointer=_event_pointer(document, position),
                    namespaces=namespaces,
                    context=context,
                )
            )
        except events.EventProblem as exc:
            problems.append(exc.problem)
    return prepared, problems


async def _receive_postgres(
    session: AsyncSession,
    actor: Principal,
    document: dict[str, Any],
    event_list: list[dict[str, Any]],
    error_behaviour: str,
) -> CaptureJob:
    """A document stored within the request on PostgreSQL: the events, their EPC rows and the
    finished job in one statement (`events.store_capture`), then the log append."""
    prepared, problems = _prepare_all(document, event_list)
    created_at = utcnow()
    row = {
        "id": new_id(),
        "error_behaviour": error_behaviour,
        "event_count": len(event_list),
        "created_by": actor.label,
        "created_at": created_at,
    }
    outcome = await events.store_capture(session, actor.tenant_id, prepared, problems=problems, job=row)
    await events.record_declarations(
        session, actor.tenant_id, events.accepted(prepared, outcome.problems, error_behaviour)
    )
    # The row as stored, for the caller (not added to the session: it is written already).
    return CaptureJob(
        **row,
        tenant_id=actor.tenant_id,
        is_running=False,
        is_success=not outcome.problems,
        stored_count=outcome.stored,
        duplicate_count=outcome.duplicates,
        errors=events.job_errors(outcome.problems),
        document=None,
        finished_at=created_at,
    )


async def run(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    job: CaptureJob,
    document: dict[str, Any],
    event_list: list[dict[str, Any]] | None = None,
) -> None:
    """Store a document's events and finish its capture job (`event_list` when already checked)."""
    if event_list is None:
        event_list = check_document(document)
    prepared, problems = _prepare_all(document, event_list)
    new, duplicates, conflicts = await events.check_new(session, tenant_id, prepared)
    problems.extend(conflicts)
    job.duplicate_count = duplicates
    if not problems or job.error_behaviour == "proceed":
        result = await events.do_store(session, tenant_id, new, capture_id=job.id)
        job.stored_count = len(result.stored)
        job.duplicate_count += result.duplicates
    await events.record_declarations(session, tenant_id, events.accepted(prepared, problems, job.error_behaviour))
    job.errors = events.job_errors(problems)
    job.is_success = not problems
    job.is_running = False
    job.document = None
    job.finished_at = utcnow()
    await session.flush()


@jobs.job_handler(CAPTURE_TOPIC)
async def capture_job(ctx: JobContext) -> None:
    job = await ctx.session.scalar(select(CaptureJob).where(CaptureJob.id == uuid.UUID(ctx.payload["capture_id"])))
    if job is None or not job.is_running or job.document is None:
        return  # already finished: the job is idempotent
    await run(ctx.session, ctx.tenant_id, job, job.document)


async def get_job(session: AsyncSession, capture_id: str) -> CaptureJob:
    try:
        key = uuid.UUID(capture_id)
    except ValueError:
        raise NoSuchResource(f"No capture job {capture_id}.") from None
    job = await session.scalar(select(CaptureJob).where(CaptureJob.id == key))
    if job is None:
        raise NoSuchResource(f"No capture job {capture_id}.")
    return job


async def list_jobs(session: AsyncSession, *, limit: int, before: uuid.UUID | None) -> list[CaptureJob]:
    query = select(CaptureJob).order_by(CaptureJob.id.desc()).limit(limit)
    if before is not None:
        query = query.where(CaptureJob.id < before)
    return list(await session.scalars(query))


def job_document(job: CaptureJob) -> dict[str, Any]:
    """A capture job as the REST bindings show it (CaptureJob schema)."""
    shown: dict[str, Any] = {
        "captureID": str(job.id),
        "createdAt": job.created_at.isoformat().replace("+00:00", "Z"),
        "running": job.is_running,
        "success": job.is_success,
        "captureErrorBehaviour": job.error_behaviour,
        "errors": list(job.errors or []),
        "eventCount": job.event_count,
        "storedCount": job.stored_count,
        "duplicateCount": job.duplicate_count,
    }
    if job.finished_at is not None:
        shown["finishedAt"] = job.finished_at.isoformat().replace("+00:00", "Z")
    return shown
