"""Capture's idempotency where it is hardest, on both tiers: the same and overlapping documents
captured concurrently (separate transactions at once), an eventID clash found only by the insert
under `rollback` (nothing stays) and under `proceed` (the others stay), and the log consistent with
the stored events after each."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

from sqlalchemy import func, select

from tests.factories import make_brand
from tests.test_trace_capture_batch import document, receive, stored, varied_events
from zhongtai.bench.servers import bench_actor
from zhongtai.core.runtime import Runtime
from zhongtai.trace import capture
from zhongtai.trace.models import CaptureJob, TraceEvent, TraceEventEpc


def numbered_events(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "ObjectEvent",
            "eventTime": f"2024-06-01T08:00:{n % 60:02d}.{n // 60:03d}Z",
            "eventTimeZoneOffset": "+08:00",
            "epcList": [f"https://id.gs1.org/01/09506000134352/21/c{n}"],
            "action": "OBSERVE",
            "bizStep": "shipping",
        }
        for n in range(first, first + count)
    ]


async def capture_at_once(runtime: Runtime, tenant_id: uuid.UUID, bodies: list[dict[str, Any]]) -> list[CaptureJob]:
    """Every document in its own transaction, all started together."""

    async def one(body: dict[str, Any]) -> CaptureJob:
        async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
            return await capture.do_receive(session, bench_actor(tenant_id), copy.deepcopy(body))

    return list(await asyncio.gather(*(one(body) for body in bodies)))


async def counts(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[int, int]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        events = await session.scalar(select(func.count()).select_from(TraceEvent))
        epcs = await session.scalar(select(func.count()).select_from(TraceEventEpc))
    return int(events or 0), int(epcs or 0)


async def test_the_same_document_captured_at_once_is_stored_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    body = document(numbered_events(0, 40))
    jobs = await capture_at_once(runtime, brand.id, [body] * 4)
    assert all(job.is_success for job in jobs), [job.errors for job in jobs]
    assert sorted(job.stored_count for job in jobs) == [0, 0, 0, 40]
    assert sorted(job.duplicate_count for job in jobs) == [0, 40, 40, 40]
    got = await stored(runtime, brand.id)
    assert len(got["events"]) == got["size"] == 40
    assert got["leaves"] == got["expected_leaves"]  # one transaction stored them all, in document order
    assert await counts(runtime, brand.id) == (40, 40)


async def test_overlapping_documents_captured_at_once_store_each_event_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    # Four documents over 70 events: each overlaps its neighbours by 10, in the same order.
    bodies = [document(numbered_events(start, 25)) for start in (0, 15, 30, 45)]
    jobs = await capture_at_once(runtime, brand.id, bodies)
    assert all(job.is_success for job in jobs), [job.errors for job in jobs]
    assert sum(job.stored_count for job in jobs) == 70
    assert sum(job.duplicate_count for job in jobs) == 4 * 25 - 70
    got = await stored(runtime, brand.id)
    assert len(got["events"]) == got["size"] == 70
    assert len({row[1] for row in got["events"]}) == 70
    # Each stored event is one leaf. (Across transactions the log's order is the order in which they
    # reserved their leaves, not that of the events' row ids.)
    assert sorted(got["leaves"]) == sorted(got["expected_leaves"])
    assert len(set(got["leaves"])) == 70
    assert await counts(runtime, brand.id) == (70, 70)


def clashing_document() -> tuple[dict[str, Any], dict[str, Any]]:
    """A first document with one event under an eventID, and a second of new events with, in the
    middle, a different event under that same eventID, then the first event again without its
    eventID (a duplicate by its hash). Nothing within the second document gives either away: only
    the database does."""
    event_list = varied_events()
    first = document([event_list[0]])  # has eventID …000000000000
    clash = {**event_list[1], "eventID": event_list[0]["eventID"]}
    again = {k: v for k, v in event_list[0].items() if k != "eventID"}
    second = document([*event_list[2:6], clash, again, *event_list[6:9]])
    return first, second


async def test_an_event_id_clash_found_by_the_insert_stores_nothing_under_rollback(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    first, second = clashing_document()
    assert (await receive(runtime, brand.id, first)).stored_count == 1
    before = await stored(runtime, brand.id)
    job = await receive(runtime, brand.id, second)
    assert (job.is_success, job.stored_count, job.duplicate_count) == (False, 0, 1)
    assert [e["pointer"] for e in job.errors] == ["/epcisBody/eventList/4"]
    assert "already used by a different event" in job.errors[0]["detail"]
    after = await stored(runtime, brand.id)
    assert after == before
    assert await counts(runtime, brand.id) == (1, 2)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(CaptureJob).where(CaptureJob.id == job.id))
        assert row is not None
        assert (row.is_running, row.is_success, row.stored_count, row.duplicate_count) == (False, False, 0, 1)
        assert row.errors == job.errors


async def test_an_event_id_clash_found_by_the_insert_keeps_the_others_under_proceed(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    first, second = clashing_document()
    await receive(runtime, brand.id, first)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        job = await capture.do_receive(session, bench_actor(brand.id), copy.deepcopy(second), error_behaviour="proceed")
    assert (job.is_success, job.stored_count, job.duplicate_count) == (False, 7, 1)
    assert [e["pointer"] for e in job.errors] == ["/epcisBody/eventList/4"]
    got = await stored(runtime, brand.id)
    assert len(got["events"]) == got["size"] == 8
    assert got["leaves"] == got["expected_leaves"]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(CaptureJob).where(CaptureJob.id == job.id))
        assert row is not None
        assert (row.is_success, row.stored_count, row.duplicate_count) == (False, 7, 1)
