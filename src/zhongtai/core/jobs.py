"""Transactional outbox and the job runner.

`enqueue` writes a job row in the caller's transaction, so a job exists exactly when the change that
caused it committed. Workers — the in-process one on the embedded tier, any number of
`zhongtai worker` processes in production — claim ready jobs with a lease (`FOR UPDATE SKIP LOCKED`
on PostgreSQL; SQLite serialises writers), run the handler and mark the job done *in the handler's
own transaction*, guarded by the lease owner: if the lease was lost to another worker, the handler's
writes roll back with it. Failures retry with exponential backoff; after `max_attempts` a job is
`dead` and waits for an operator in the console.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from zhongtai.core import sql, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import BadRequest, CrossTenantAccess, NotFound
from zhongtai.core.metrics import JOBS_PENDING, JOBS_PROCESSED
from zhongtai.core.models import OutboxJob

if TYPE_CHECKING:
    from zhongtai.core.db import Database

log = logging.getLogger("zhongtai.jobs")

STATUSES = ("pending", "running", "done", "dead", "cancelled")
LEASE_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600


@dataclass
class JobContext:
    session: AsyncSession
    job_id: int
    tenant_id: uuid.UUID
    topic: str
    payload: dict[str, Any]
    attempt: int
    # For handlers that work in several transactions of their own (e.g. generating millions of codes
    # in committed chunks); everything else uses `session`.
    database: Database | None = None
    max_attempts: int = 8

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[JobContext], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def job_handler(topic: str) -> Callable[[Handler], Handler]:
    """Register the handler of a topic. Handlers must be idempotent: load by id, check state."""

    def register(func: Handler) -> Handler:
        HANDLERS[topic] = func
        return func

    return register


_ENQUEUED_FLAG = "zt_jobs_enqueued"
_wakeups: list[Callable[[], None]] = []


def add_wakeup(callback: Callable[[], None]) -> None:
    _wakeups.append(callback)


def remove_wakeup(callback: Callable[[], None]) -> None:
    if callback in _wakeups:
        _wakeups.remove(callback)


@event.listens_for(Session, "after_commit")
def _wake_workers_after_commit(session: Session) -> None:
    if session.info.pop(_ENQUEUED_FLAG, False):
        for callback in list(_wakeups):
            callback()


async def enqueue(
    session: AsyncSession,
    topic: str,
    payload: dict[str, Any] | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
    delay_seconds: float = 0,
    max_attempts: int = 8,
) -> None:
    """Add a job to the caller's transaction. With `dedupe_key`, a second enqueue is a no-op."""
    if topic not in HANDLERS:
        raise ValueError(f"no handler registered for job topic {topic!r}")
    scope = tenancy.current_scope(session)
    tenant = tenant_id or (scope if isinstance(scope, uuid.UUID) else None)
    if tenant is None:
        raise tenancy.UnscopedTenantQuery("enqueue needs a tenant: scope the session or pass tenant_id")
    if isinstance(scope, uuid.UUID) and tenant != scope:
        raise CrossTenantAccess("enqueue for another tenant from a tenant-scoped session")
    now = utcnow()
    values = {
        "tenant_id": tenant,
        "topic": topic,
        "payload": payload or {},
        "dedupe_key": dedupe_key,
        "status": "pending",
        "attempts": 0,
        "max_attempts": max_attempts,
        "available_at": now + timedelta(seconds=delay_seconds),
        "created_at": now,
    }
    statement = sql.insert(session, OutboxJob).values(**values)
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])
    await session.execute(statement)
    session.sync_session.info[_ENQUEUED_FLAG] = True


async def enqueue_many(
    session: AsyncSession,
    topic: str,
    jobs: list[tuple[dict[str, Any], str | None]],
    *,
    max_attempts: int = 8,
) -> None:
    """`enqueue` for several jobs of one topic in the session's tenant, (payload, dedupe key) each, with
    one INSERT statement."""
    if not jobs:
        return
    if topic not in HANDLERS:
        raise ValueError(f"no handler registered for job topic {topic!r}")
    scope = tenancy.current_scope(session)
    if not isinstance(scope, uuid.UUID):
        raise tenancy.UnscopedTenantQuery("enqueue_many needs a tenant-scoped session")
    now = utcnow()
    rows = [
        {
            "tenant_id": scope,
            "topic": topic,
            "payload": payload,
            "dedupe_key": dedupe_key,
            "status": "pending",
            "attempts": 0,
            "max_attempts": max_attempts,
            "available_at": now,
            "created_at": now,
        }
        for payload, dedupe_key in jobs
    ]
    statement = sql.insert_ignore(session, OutboxJob, "tenant_id", "dedupe_key").values(rows)
    await session.execute(statement)
    session.sync_session.info[_ENQUEUED_FLAG] = True


async def take_siblings(ctx: JobContext, limit: int) -> list[dict[str, Any]]:
    """Take up to `limit` other ready jobs of the handler's topic and tenant into its transaction and
    return their payloads, for handlers that do many jobs' work at once with set-based statements.

    The jobs are marked done in the handler's transaction, so they are done exactly when its work
    commits; if it rolls back they stay pending and run on their own. Jobs another worker holds are
    skipped (`SKIP LOCKED` on PostgreSQL; SQLite serialises writers)."""
    if limit <= 0:
        return []
    now = utcnow()
    candidates = (
        select(OutboxJob.id)
        .where(
            OutboxJob.topic == ctx.topic,
            OutboxJob.tenant_id == ctx.tenant_id,
            OutboxJob.id != ctx.job_id,
            OutboxJob.status == "pending",
            OutboxJob.available_at <= now,
        )
        .order_by(OutboxJob.id)
        .limit(limit)
    )
    if ctx.session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    taken = await ctx.session.scalars(
        update(OutboxJob)
        .where(OutboxJob.id.in_(candidates.scalar_subquery()), OutboxJob.status == "pending")
        .values(status="done", attempts=OutboxJob.attempts + 1, finished_at=now, last_error=None)
        .returning(OutboxJob.payload)
        .execution_options(synchronize_session=False)
    )
    return [dict(payload) for payload in taken]


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: ~2s, 4s, 8s … capped at an hour."""
    base: float = min(MAX_BACKOFF_SECONDS, 2.0**attempt)
    return base * (0.75 + random.random() / 2)


class Worker:
    def __init__(self, database: Database, *, name: str | None = None, batch_size: int = 20) -> None:
        self.database = database
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.batch_size = batch_size
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _claim(self) -> list[OutboxJob]:
        now = utcnow()
        async with self.database.unit_of_work(all_tenants=True) as session:
            ready = or_(
                and_(OutboxJob.status == "pending", OutboxJob.available_at <= now),
                and_(OutboxJob.status == "running", OutboxJob.locked_until < now),
            )
            candidates = select(OutboxJob.id).where(ready).order_by(OutboxJob.id).limit(self.batch_size)
            if session.get_bind().dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            claimed = await session.scalars(
                update(OutboxJob)
                .where(OutboxJob.id.in_(candidates.scalar_subquery()))
                .values(
                    status="running",
                    locked_by=self.name,
                    locked_until=now + timedelta(seconds=LEASE_SECONDS),
                    attempts=OutboxJob.attempts + 1,
                )
                .returning(OutboxJob)
                .execution_options(synchronize_session=False)
            )
            jobs = list(claimed)
        return sorted(jobs, key=lambda job: job.id)

    async def run_once(self) -> int:
        """Claim one batch and run it; returns how many jobs were claimed."""
        jobs = await self._claim()
        for job in jobs:
            await self._run(job)
        return len(jobs)

    async def _run(self, job: OutboxJob) -> None:
        if job.attempts > job.max_attempts:
            # Only a reclaimed job gets here: every earlier worker died holding it. Give up as after
            # failures, so that a job which kills its worker cannot be retried forever.
            await self._record_failure(job, LeaseExpired(job.id, job.max_attempts))
            return
        handler = HANDLERS.get(job.topic)
        try:
            if handler is None:
                raise LookupError(f"no handler registered for topic {job.topic!r}")
            async with self.database.unit_of_work(tenant_id=job.tenant_id) as session:
                await handler(
                    JobContext(
                        session,
                        job.id,
                        job.tenant_id,
                        job.topic,
                        dict(job.payload),
                        job.attempts,
                        self.database,
                        job.max_attempts,
                    )
                )
                tenancy.scope_all_tenants(session)
                marked = await session.execute(
                    update(OutboxJob)
                    .where(OutboxJob.id == job.id, OutboxJob.locked_by == self.name)
                    .values(status="done", finished_at=utcnow(), locked_until=None, last_error=None)
                    .execution_options(synchronize_session=False)
                )
                if marked.rowcount != 1:  # type: ignore[attr-defined]
                    raise LeaseLost(job.id)
            JOBS_PROCESSED.labels(job.topic, "done").inc()
        except LeaseLost:
            log.warning("job lease lost; its work was rolled back", extra={"job_id": job.id, "topic": job.topic})
        except Exception as exc:
            await self._record_failure(job, exc)

    async def _record_failure(self, job: OutboxJob, exc: BaseException) -> None:
        is_dead = job.attempts >= job.max_attempts
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
        async with self.database.unit_of_work(all_tenants=True) as session:
            await session.execute(
                update(OutboxJob)
                .where(OutboxJob.id == job.id, OutboxJob.locked_by == self.name)
                .values(
                    status="dead" if is_dead else "pending",
                    available_at=utcnow() + timedelta(seconds=0 if is_dead else backoff_seconds(job.attempts)),
                    locked_until=None,
                    last_error=error,
                    finished_at=utcnow() if is_dead else None,
                )
                .execution_options(synchronize_session=False)
            )
        JOBS_PROCESSED.labels(job.topic, "dead" if is_dead else "retry").inc()
        log.warning(
            "job failed",
            extra={
                "job_id": job.id,
                "topic": job.topic,
                "attempt": job.attempts,
                "dead": is_dead,
                "error": error,
            },
        )

    async def run_forever(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        add_wakeup(self.wake)
        try:
            while not stop.is_set():
                try:
                    claimed = await self.run_once()
                except Exception:  # a database hiccup must not kill the worker
                    log.exception("worker loop error")
                    claimed = 0
                if claimed:
                    continue
                self._wake.clear()
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            remove_wakeup(self.wake)


class LeaseLost(Exception):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"lease of job {job_id} was lost")


class LeaseExpired(Exception):
    def __init__(self, job_id: int, max_attempts: int) -> None:
        super().__init__(f"job {job_id} was claimed {max_attempts} times and its worker never finished it")


# Operator actions on jobs (tenant-scoped sessions).


async def list_jobs(
    session: AsyncSession, *, status: str | None, topic: str | None, limit: int, offset: int
) -> tuple[list[OutboxJob], int]:
    query = select(OutboxJob)
    count = select(func.count()).select_from(OutboxJob)
    if status:
        if status not in STATUSES:
            raise BadRequest(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
        query, count = query.where(OutboxJob.status == status), count.where(OutboxJob.status == status)
    if topic:
        query, count = query.where(OutboxJob.topic == topic), count.where(OutboxJob.topic == topic)
    total = await session.scalar(count)
    rows = await session.scalars(query.order_by(OutboxJob.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(OutboxJob.status, func.count()).group_by(OutboxJob.status))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    JOBS_PENDING.set(counts["pending"])
    return counts


async def get_job(session: AsyncSession, job_id: int) -> OutboxJob:
    job = await session.scalar(select(OutboxJob).where(OutboxJob.id == job_id))
    if job is None:
        raise NotFound(f"Job {job_id} was not found.")
    return job


async def do_retry(session: AsyncSession, job_id: int) -> OutboxJob:
    job = await get_job(session, job_id)
    if job.status not in ("dead", "cancelled"):
        raise BadRequest(f"Only dead or cancelled jobs can be retried; job {job_id} is {job.status}.")
    job.status, job.attempts, job.available_at = "pending", 0, utcnow()
    job.finished_at, job.locked_by = None, None
    session.sync_session.info[_ENQUEUED_FLAG] = True
    await session.flush()
    return job


async def do_cancel(session: AsyncSession, job_id: int) -> OutboxJob:
    job = await get_job(session, job_id)
    if job.status not in ("pending", "dead"):
        raise BadRequest(f"Only pending or dead jobs can be cancelled; job {job_id} is {job.status}.")
    job.status, job.finished_at = "cancelled", utcnow()
    await session.flush()
    return job
