"""The transactional outbox and the job runner (core/jobs.py) on both tiers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import bearer, make_brand, make_token
from zhongtai.core import clock, jobs, tenancy
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.jobs import LEASE_SECONDS, JobContext, Worker, job_handler
from zhongtai.core.models import AuditEvent, OutboxJob, SandboxMessage
from zhongtai.core.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parent.parent
EFFECT_TOPIC = "test.effect"
FLAKY_TOPIC = "test.flaky"
RUN_LOG_ENV = "ZT_TEST_JOB_RUN_LOG"

# Handler invocations in this process (including ones whose writes were rolled back).
handler_runs: Counter[int] = Counter()
flaky_state = {"fail": True}


@job_handler(EFFECT_TOPIC)
async def _effect(ctx: JobContext) -> None:
    """Writes one row per run and logs every invocation, so that a double run shows."""
    handler_runs[ctx.job_id] += 1
    log_path = os.environ.get(RUN_LOG_ENV)
    if log_path:
        with open(log_path, "a") as handle:  # noqa: ASYNC230 - one short append
            handle.write(f"{os.getpid()} {ctx.job_id}\n")
    await asyncio.sleep(float(ctx.payload.get("sleep", 0)))
    ctx.session.add(SandboxMessage(channel="job", recipient=str(ctx.job_id), body=f"attempt {ctx.attempt}"))
    await ctx.session.flush()


@job_handler(FLAKY_TOPIC)
async def _flaky(ctx: JobContext) -> None:
    handler_runs[ctx.job_id] += 1
    ctx.session.add(SandboxMessage(channel="job", recipient=str(ctx.job_id), body=f"attempt {ctx.attempt}"))
    await ctx.session.flush()
    if flaky_state["fail"]:
        raise RuntimeError("flaky failure")


@pytest.fixture(autouse=True)
def _reset_handlers() -> None:
    handler_runs.clear()
    flaky_state["fail"] = True


async def _enqueue(runtime: Runtime, tenant_id: object, count: int = 1, **payload: object) -> list[int]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:  # type: ignore[arg-type]
        for _ in range(count):
            await jobs.enqueue(session, EFFECT_TOPIC, dict(payload))
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:  # type: ignore[arg-type]
        return list(await session.scalars(select(OutboxJob.id).order_by(OutboxJob.id)))


async def _job(runtime: Runtime, job_id: int) -> OutboxJob:
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        job = await session.get(OutboxJob, job_id)
        assert job is not None
        return job


async def _effects(runtime: Runtime) -> Counter[str]:
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        return Counter(await session.scalars(select(SandboxMessage.recipient).where(SandboxMessage.channel == "job")))


async def _drain(worker: Worker) -> int:
    total = 0
    while claimed := await worker.run_once():
        total += claimed
    return total


async def test_enqueue_belongs_to_the_transaction(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    wakeups: list[int] = []

    def wake() -> None:
        wakeups.append(1)

    jobs.add_wakeup(wake)
    try:

        async def failing_change() -> None:
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await jobs.enqueue(session, EFFECT_TOPIC, {"n": 1})
                raise RuntimeError("business rule failed")

        with pytest.raises(RuntimeError, match="business rule failed"):
            await failing_change()
        assert wakeups == []
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 0
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await jobs.enqueue(session, EFFECT_TOPIC, {"n": 2})
        assert wakeups == [1]
    finally:
        jobs.remove_wakeup(wake)
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        rows = list(await session.scalars(select(OutboxJob)))
    assert [(j.tenant_id, j.topic, j.payload, j.status, j.attempts) for j in rows] == [
        (brand.id, EFFECT_TOPIC, {"n": 2}, "pending", 0)
    ]


async def test_enqueue_checks_topic_and_tenant(runtime: Runtime) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        with pytest.raises(ValueError, match="no handler"):
            await jobs.enqueue(session, "no.such.topic")
        with pytest.raises(CrossTenantAccess):
            await jobs.enqueue(session, EFFECT_TOPIC, tenant_id=second.id)
    async with runtime.db.unit_of_work() as session:
        with pytest.raises(tenancy.UnscopedTenantQuery):
            await jobs.enqueue(session, EFFECT_TOPIC)
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        with pytest.raises(tenancy.UnscopedTenantQuery):
            await jobs.enqueue(session, EFFECT_TOPIC)
        await jobs.enqueue(session, EFFECT_TOPIC, tenant_id=second.id)
        assert list(await session.scalars(select(OutboxJob.tenant_id))) == [second.id]


async def test_dedupe_key_makes_one_job(runtime: Runtime) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        await jobs.enqueue(session, EFFECT_TOPIC, {"v": 1}, dedupe_key="order:42")
        await jobs.enqueue(session, EFFECT_TOPIC, {"v": 2}, dedupe_key="order:42")
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        await jobs.enqueue(session, EFFECT_TOPIC, {"v": 3}, dedupe_key="order:42")

    async def enqueue_concurrently(index: int) -> None:
        async with runtime.db.unit_of_work(tenant_id=first.id) as session:
            await jobs.enqueue(session, EFFECT_TOPIC, {"v": 10 + index}, dedupe_key="order:43")
            await asyncio.sleep(0.01)  # hold the transaction open while the others try

    await asyncio.gather(*(enqueue_concurrently(i) for i in range(6)))
    # The key is per tenant.
    async with runtime.db.unit_of_work(tenant_id=second.id) as session:
        await jobs.enqueue(session, EFFECT_TOPIC, {"v": 4}, dedupe_key="order:42")
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        rows = (
            await session.execute(
                select(OutboxJob.tenant_id, OutboxJob.dedupe_key, OutboxJob.payload).order_by(OutboxJob.id)
            )
        ).all()
    assert [(t, k) for t, k, _ in rows] == [(first.id, "order:42"), (first.id, "order:43"), (second.id, "order:42")]
    assert rows[0][2] == {"v": 1}
    assert rows[1][2]["v"] in range(10, 16)


async def test_success_marks_done_with_the_handlers_writes(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    [job_id] = await _enqueue(runtime, brand.id)
    worker = Worker(runtime.db, name="w1")
    assert await worker.run_once() == 1
    job = await _job(runtime, job_id)
    assert (job.status, job.attempts, job.locked_until, job.last_error) == ("done", 1, None, None)
    assert job.finished_at is not None
    assert await _effects(runtime) == Counter({str(job_id): 1})
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        effect = await session.scalar(select(SandboxMessage).where(SandboxMessage.recipient == str(job_id)))
        assert effect is not None
        assert effect.tenant_id == brand.id  # the handler's session is scoped to the job's tenant
    assert await worker.run_once() == 0
    assert handler_runs == Counter({job_id: 1})


async def test_failure_retries_with_backoff_then_dies_and_an_operator_retries(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    brand, other = await make_brand(runtime), await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await jobs.enqueue(session, FLAKY_TOPIC, max_attempts=3)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        job_id = int(await session.scalar(select(OutboxJob.id)) or 0)
    worker = Worker(runtime.db, name="w1")
    expected_delays = {1: 2.0, 2: 4.0}
    for attempt in (1, 2):
        before = clock.utcnow()
        assert await worker.run_once() == 1
        after = clock.utcnow()
        job = await _job(runtime, job_id)
        assert (job.status, job.attempts, job.locked_until, job.finished_at) == ("pending", attempt, None, None)
        assert job.last_error == "RuntimeError: flaky failure"
        delay = expected_delays[attempt]
        assert before + timedelta(seconds=delay * 0.75) <= job.available_at <= after + timedelta(seconds=delay * 1.25)
        assert await worker.run_once() == 0, "not before its backoff has passed"
        assert await _effects(runtime) == Counter(), "a failed handler's writes roll back"
        clock.advance(delay * 1.25 + 0.1)
    assert await worker.run_once() == 1
    dead = await _job(runtime, job_id)
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 3, "RuntimeError: flaky failure")
    assert dead.finished_at is not None
    clock.advance(10 * 3600)
    assert await worker.run_once() == 0, "a dead job waits for an operator"
    assert handler_runs == Counter({job_id: 3})

    listed = await client.get(
        "/api/v1/jobs", params={"status": "dead"}, headers=bearer(await make_token(runtime, brand))
    )
    assert [(j["id"], j["attempts"]) for j in listed.json()["items"]] == [(job_id, 3)]
    foreign = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=bearer(await make_token(runtime, other)))
    assert foreign.status_code == 404
    token = await make_token(runtime, brand, ["jobs.read", "jobs.write"])
    retried = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=bearer(token))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
    again = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=bearer(token))
    assert (again.status_code, again.json()["error"]) == (400, "bad_request")
    flaky_state["fail"] = False
    assert await worker.run_once() == 1
    done = await _job(runtime, job_id)
    assert (done.status, done.attempts, done.last_error) == ("done", 1, None)
    assert await _effects(runtime) == Counter({str(job_id): 1})
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actions = list(await session.scalars(select(AuditEvent.target_id).where(AuditEvent.action == "job.retry")))
    assert actions == [str(job_id)]


async def test_cancelled_job_is_not_run(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    [job_id] = await _enqueue(runtime, brand.id)
    token = await make_token(runtime, brand, ["jobs.write"])
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(token))
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert await Worker(runtime.db).run_once() == 0
    assert handler_runs == Counter()


async def test_concurrent_workers_never_run_a_job_twice(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    job_ids = await _enqueue(runtime, brand.id, count=120, sleep=0.002)
    workers = [Worker(runtime.db, name=f"w{i}", batch_size=7) for i in range(5)]
    claimed = await asyncio.gather(*(_drain(worker) for worker in workers))
    assert sum(claimed) == 120
    assert handler_runs == Counter(dict.fromkeys(job_ids, 1))
    assert await _effects(runtime) == Counter({str(job_id): 1 for job_id in job_ids})
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        states = Counter((await session.execute(select(OutboxJob.status, OutboxJob.attempts))).all())
        owners = set(await session.scalars(select(OutboxJob.locked_by)))
    assert states == Counter({("done", 1): 120})
    assert len(owners) > 1, "the workers shared the work"


@pytest.mark.slow
async def test_worker_processes_never_run_a_job_twice(runtime: Runtime, tmp_path: Path) -> None:
    brand = await make_brand(runtime)
    job_ids = await _enqueue(runtime, brand.id, count=100, sleep=0.02)
    run_log = tmp_path / "runs.log"
    env = {
        **os.environ,
        "ZT_ENV": "test",
        "ZT_DATABASE_URL": str(runtime.settings.database_url),
        "ZT_DATA_DIR": str(runtime.settings.data_dir),
        "ZT_LOG_LEVEL": "WARNING",
        RUN_LOG_ENV: str(run_log),
    }
    env.pop("ZT_REDIS_URL", None)
    # `zhongtai worker --once`, with this module imported first so that the test topics have handlers.
    code = "import tests.test_core_jobs; from zhongtai.cli.main import app; app(['worker', '--once'])"
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - the processes must run in parallel with each other
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [await asyncio.to_thread(process.communicate, timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    processed = sum(int(out.split("processed ")[1].split(" ")[0]) for out, _ in outputs)
    assert processed == 100
    runs = [line.split() for line in run_log.read_text().splitlines()]
    assert Counter(int(job_id) for _, job_id in runs) == Counter(dict.fromkeys(job_ids, 1))
    assert len({pid for pid, _ in runs}) > 1, "more than one process took jobs"
    assert await _effects(runtime) == Counter({str(job_id): 1 for job_id in job_ids})
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        states = Counter((await session.execute(select(OutboxJob.status, OutboxJob.attempts))).all())
    assert states == Counter({("done", 1): 100})


async def test_job_of_a_dead_worker_is_reclaimed_and_the_late_finish_rolls_back(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    [job_id] = await _enqueue(runtime, brand.id)
    crashed = Worker(runtime.db, name="crashed")
    [claimed] = await crashed._claim()
    assert (claimed.id, claimed.status, claimed.locked_by, claimed.attempts) == (job_id, "running", "crashed", 1)
    rescuer = Worker(runtime.db, name="rescuer")
    assert await rescuer.run_once() == 0, "a live lease is respected"
    clock.advance(LEASE_SECONDS - 1)
    assert await rescuer.run_once() == 0
    clock.advance(2)
    assert await rescuer.run_once() == 1
    job = await _job(runtime, job_id)
    assert (job.status, job.attempts, job.locked_by) == ("done", 2, "rescuer")
    assert await _effects(runtime) == Counter({str(job_id): 1})
    # The first worker was only slow: it finishes late, loses the lease check and its writes roll back.
    await crashed._run(claimed)
    assert handler_runs == Counter({job_id: 2})
    assert await _effects(runtime) == Counter({str(job_id): 1})
    job = await _job(runtime, job_id)
    assert (job.status, job.attempts, job.locked_by, job.last_error) == ("done", 2, "rescuer", None)


async def test_lease_lost_before_the_new_owner_runs(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    [job_id] = await _enqueue(runtime, brand.id)
    slow, fast = Worker(runtime.db, name="slow"), Worker(runtime.db, name="fast")
    [slow_claim] = await slow._claim()
    clock.advance(LEASE_SECONDS + 1)
    [fast_claim] = await fast._claim()
    await slow._run(slow_claim)
    job = await _job(runtime, job_id)
    assert (job.status, job.locked_by, job.attempts, job.last_error) == ("running", "fast", 2, None)
    assert await _effects(runtime) == Counter()
    await fast._run(fast_claim)
    job = await _job(runtime, job_id)
    assert (job.status, job.locked_by) == ("done", "fast")
    assert await _effects(runtime) == Counter({str(job_id): 1})
    assert handler_runs == Counter({job_id: 2})


async def test_job_whose_workers_keep_dying_ends_dead(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await jobs.enqueue(session, EFFECT_TOPIC, max_attempts=2)
    for attempt in (1, 2):
        [claim] = await Worker(runtime.db, name=f"doomed-{attempt}")._claim()
        assert claim.attempts == attempt
        clock.advance(LEASE_SECONDS + 1)
    assert await Worker(runtime.db, name="last").run_once() == 1
    job = await _job(runtime, claim.id)
    assert (job.status, job.attempts) == ("dead", 3)
    assert job.last_error is not None
    assert "its worker never finished it" in job.last_error
    assert handler_runs == Counter(), "the handler is not run a third time"
    assert await _effects(runtime) == Counter()
