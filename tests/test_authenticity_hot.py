"""PIN checks under concurrency and the production tier's write-behind (authenticity/hot.py, persist.py):
exactly one "genuine" and one `consumer_open` event per code on both tiers, no scan lost or doubled when
the stream worker dies mid-batch or before acknowledging, and cached code facts dropped when a code is
voided."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from tests.test_authenticity_scan import SHANGHAI, other_client, scene, settle, verify, wrong
from zhongtai.authenticity import hot, persist, service
from zhongtai.authenticity.models import Scan
from zhongtai.codes.events import ItemEvent
from zhongtai.core import domain_events
from zhongtai.core.runtime import Runtime


@pytest.fixture
def opened() -> Any:
    """A dummy subscriber that records every ItemEvent whose transaction commits."""
    seen: list[ItemEvent] = []

    async def record(session: Any, item: ItemEvent) -> str:
        event.listen(session.sync_session, "after_commit", lambda _s: seen.append(item), once=True)
        return "recorded"

    domain_events.subscribe(ItemEvent, "test-recorder", record)
    yield seen
    domain_events.unsubscribe(ItemEvent, "test-recorder")


async def _scans(runtime: Runtime, tenant_id: Any, code_id: int) -> list[Scan]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return await service.scan_history(session, code_id, limit=500)


async def test_concurrent_first_verifications_one_genuine_one_event(
    client: httpx.AsyncClient, runtime: Runtime, opened: list[ItemEvent]
) -> None:
    s = await scene(client, runtime)
    serial = s.items[0]
    responses = await asyncio.gather(*(verify(client, serial, s.pins[serial], **SHANGHAI) for _ in range(12)))
    answers = [response.json() for response in responses]
    assert sorted(answer["verification_number"] for answer in answers) == list(range(1, 13))
    assert [answer["verdict"] for answer in answers].count("genuine") == 1
    assert [answer["verdict"] for answer in answers].count("verified_before") == 11
    await settle(runtime)
    await settle(runtime)  # a second pass finds nothing to write or publish again
    (genuine,) = [answer for answer in answers if answer["verdict"] == "genuine"]
    async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
        code_id = (await session.scalar(select(Scan.code_id).where(Scan.serial == serial).limit(1))) or 0
        summary = await service.summary_of(session, code_id)
    scans = await _scans(runtime, s.line.brand.id, code_id)
    assert sorted(scan.verification_number or 0 for scan in scans) == list(range(1, 13))
    first = next(scan for scan in scans if scan.verification_number == 1)
    assert first.verdict == "genuine"
    assert summary is not None
    assert (summary.verify_count, summary.first_scan_id) == (12, first.id)
    assert genuine["first_verified_at"] is not None
    assert len(opened) == 1
    event = opened[0]
    assert (event.kind, event.code_id, event.source_ref) == ("consumer_open", code_id, f"consumer-verify:{code_id}")
    assert (event.tenant_id, event.latitude, event.longitude) == (s.line.brand.id, 31.2304, 121.4737)
    assert event.device_hash == first.client_hash
    assert event.device_hash is not None
    assert event.product_id == first.product_id
    assert event.product_id is not None
    assert event.consumer_id is None


async def test_wrong_pins_and_verdicts_reach_the_database(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[1]
    assert (await verify(client, serial, wrong(s.pins[serial]))).json()["verdict"] == "wrong_pin"
    assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "genuine"
    assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "verified_before"
    await settle(runtime)
    async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
        code_id = (await session.scalar(select(Scan.code_id).where(Scan.serial == serial).limit(1))) or 0
        summary = await service.summary_of(session, code_id)
    assert summary is not None
    assert (summary.verify_count, summary.wrong_pin_count) == (2, 1)
    kinds = [(scan.kind, scan.verdict) for scan in await _scans(runtime, s.line.brand.id, code_id)]
    assert sorted(kinds) == sorted([("pin_bad", "wrong_pin"), ("pin_ok", "genuine"), ("pin_ok", "verified_before")])


def _needs_write_behind(runtime: Runtime) -> None:
    if not hot.enabled(runtime):
        pytest.skip("the write-behind path needs PostgreSQL + Redis")


async def test_worker_killed_mid_batch_loses_no_scan(
    client: httpx.AsyncClient, runtime: Runtime, opened: list[ItemEvent]
) -> None:
    _needs_write_behind(runtime)
    s = await scene(client, runtime)
    for serial in s.items[:4]:
        assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "genuine"
        assert (await verify(client, serial, wrong(s.pins[serial]))).json()["verdict"] == "wrong_pin"
    inside = asyncio.Event()

    async def hang(_session: Any, _event: ItemEvent) -> None:
        inside.set()
        await asyncio.sleep(3600)  # the worker is killed here, inside its transaction

    domain_events.subscribe(ItemEvent, "test-hang", hang)
    try:
        doomed = persist.ScanPersister(runtime, consumer="doomed")
        task = asyncio.create_task(doomed.run_once())
        await asyncio.wait_for(inside.wait(), timeout=30)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        domain_events.unsubscribe(ItemEvent, "test-hang")
    async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(Scan)) == 0  # rolled back
    assert opened == []
    # Another worker claims what the dead one never acknowledged.
    rescuer = persist.ScanPersister(runtime, consumer="rescuer", claim_idle_ms=0)
    assert await rescuer.drain() == 8
    async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
        kinds = list(await session.scalars(select(Scan.kind).order_by(Scan.id)))
    assert sorted(kinds) == ["pin_bad"] * 4 + ["pin_ok"] * 4
    assert len(opened) == 4
    assert await rescuer.drain() == 0


async def test_worker_dying_before_acknowledging_writes_nothing_twice(
    client: httpx.AsyncClient, runtime: Runtime, opened: list[ItemEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_write_behind(runtime)
    s = await scene(client, runtime)
    serial = s.items[2]
    assert (await verify(client, serial, wrong(s.pins[serial]))).json()["verdict"] == "wrong_pin"
    assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "genuine"
    assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "verified_before"
    first = persist.ScanPersister(runtime, consumer="first")

    def lost_connection(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("the worker died after its commit")

    monkeypatch.setattr(first.redis, "pipeline", lost_connection)
    with pytest.raises(ConnectionError):
        await first.run_once()
    monkeypatch.undo()
    assert len(opened) == 1
    again = persist.ScanPersister(runtime, consumer="again", claim_idle_ms=0)
    assert await again.drain() == 3  # delivered again …
    async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
        code_id = (await session.scalar(select(Scan.code_id).where(Scan.serial == serial).limit(1))) or 0
        summary = await service.summary_of(session, code_id)
        count = await session.scalar(select(func.count()).select_from(Scan))
    assert count == 3  # … and written once
    assert summary is not None
    assert (summary.verify_count, summary.wrong_pin_count) == (2, 1)
    assert len(opened) == 1


async def test_voided_code_is_judged_voided_from_the_next_check(client: httpx.AsyncClient, runtime: Runtime) -> None:
    s = await scene(client, runtime)
    serial = s.items[3]
    assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "genuine"
    assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "verified_before"  # facts cached
    index = s.items.index(serial) + 1
    voided = await client.post(
        f"/api/v1/codes/batches/{s.line.batches['item']['id']}/void",
        json={"from_index": index, "to_index": index, "reason": "leaked"},
        headers=s.line.auth,
    )
    assert voided.status_code == 200, voided.text
    answer = (await verify(client, serial, s.pins[serial])).json()
    assert (answer["verdict"], answer["reason"], answer["code"]["state"]) == ("suspicious", "voided", "voided")
    async with other_client(runtime, "10.9.9.9") as elsewhere:  # another client, same process caches
        again = (await verify(elsewhere, serial, s.pins[serial])).json()
    assert (again["verdict"], again["reason"]) == ("suspicious", "voided")


async def test_hot_summary_continues_from_the_database(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _needs_write_behind(runtime)
    s = await scene(client, runtime)
    serial = s.items[5]
    runtime.settings.scan_write_behind = False  # checked the old way: only the database knows
    try:
        assert (await verify(client, serial, s.pins[serial], **SHANGHAI)).json()["verdict"] == "genuine"
    finally:
        runtime.settings.scan_write_behind = True
    answer = (await verify(client, serial, s.pins[serial])).json()
    assert (answer["verdict"], answer["verification_number"]) == ("verified_before", 2)
    assert answer["first_verified_at"] is not None


async def test_running_worker_persists_checks_as_they_come(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _needs_write_behind(runtime)
    s = await scene(client, runtime)
    stop = asyncio.Event()
    worker = asyncio.create_task(persist.run_in_process(runtime, stop))
    try:
        for serial in s.items[:3]:
            assert (await verify(client, serial, s.pins[serial])).json()["verdict"] == "genuine"
        count = 0
        for _ in range(300):  # wait for the worker (up to 30 s on a busy machine)
            async with runtime.db.unit_of_work(tenant_id=s.line.brand.id) as session:
                count = await session.scalar(select(func.count()).select_from(Scan)) or 0
            if count == 3:
                break
            await asyncio.sleep(0.1)
        assert count == 3
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    assert worker.done()
    assert worker.exception() is None
