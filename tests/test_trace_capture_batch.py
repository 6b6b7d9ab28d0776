"""The batched capture path on both tiers: a document stored in one pass gives exactly the events,
hashes, EPC rows and log leaves that capturing its events one by one gives; a duplicate in the middle
of a document is skipped without disturbing the others; on PostgreSQL the array (`unnest`) statement
stores what the multi-row VALUES statement stores; batched inclusion proofs equal single ones."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from sqlalchemy import select, text

from tests.factories import make_brand
from zhongtai.bench.servers import bench_actor
from zhongtai.core.runtime import Runtime
from zhongtai.trace import capture, events, log, merkle
from zhongtai.trace.hashing import namespaces_of
from zhongtai.trace.log_models import TraceLogNode
from zhongtai.trace.models import CaptureJob, TraceEvent, TraceEventEpc

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EXTENSION = {"example": "http://ns.example.com/epcis/"}


def document(event_list: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": [CONTEXT, EXTENSION],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-05-01T00:00:00Z",
        "epcisBody": {"eventList": event_list},
    }


def varied_events() -> list[dict[str, Any]]:
    """Object, aggregation and transformation events: URNs and Digital Links, lists, ILMD, locations,
    an extension field, with and without eventID."""
    out: list[dict[str, Any]] = []
    for n in range(12):
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventTime": f"2024-05-01T08:{n:02d}:00.5+08:00",
            "eventTimeZoneOffset": "+08:00",
            "epcList": [f"urn:epc:id:sgtin:9506000.013435.{n}", f"https://example.com/01/09506000134352/21/x{n}"],
            "action": "ADD" if n % 3 == 0 else "OBSERVE",
            "bizStep": "commissioning" if n % 3 == 0 else "shipping",
            "disposition": "active",
            "readPoint": {"id": "urn:epc:id:sgln:9506000.00001.0"},
            "example:batch": f"B{n}",
        }
        if n % 3 == 0:
            event["ilmd"] = {"example:lot": f"L{n}"}
        if n % 2 == 0:
            event["eventID"] = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
        out.append(event)
    out.append(
        {
            "type": "AggregationEvent",
            "eventTime": "2024-05-01T09:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "parentID": "urn:epc:id:sscc:9506000.0000000001",
            "childEPCs": ["urn:epc:id:sgtin:9506000.013435.1", "urn:epc:id:sgtin:9506000.013435.2"],
            "childQuantityList": [{"epcClass": "urn:epc:class:lgtin:9506000.013435.L1", "quantity": 2}],
            "action": "ADD",
            "bizStep": "packing",
            "bizLocation": {"id": "urn:epc:id:sgln:9506000.00002.0"},
        }
    )
    out.append(
        {
            "type": "TransformationEvent",
            "eventTime": "2024-05-01T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "inputEPCList": ["urn:epc:id:sgtin:9506000.013435.3"],
            "outputEPCList": ["urn:epc:id:sgtin:9506000.013435.1000"],
            "outputQuantityList": [
                {"epcClass": "urn:epc:class:lgtin:9506000.013435.L2", "quantity": 1.5, "uom": "KGM"}
            ],
        }
    )
    return out


async def receive(runtime: Runtime, tenant_id: uuid.UUID, body: dict[str, Any]) -> CaptureJob:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return await capture.do_receive(session, bench_actor(tenant_id), copy.deepcopy(body))


async def stored(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Everything capture stored for a brand, in storage order, without ids and times of recording."""
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        rows = list(await session.scalars(select(TraceEvent).order_by(TraceEvent.id)))
        epc_rows = list(await session.scalars(select(TraceEventEpc).order_by(TraceEventEpc.id)))
        position = {row.id: n for n, row in enumerate(rows)}
        size = await log.size(session, tenant_id)
        leaves = [
            bytes(value)
            for value in await session.scalars(
                select(TraceLogNode.hash).where(TraceLogNode.level == 0).order_by(TraceLogNode.node_index)
            )
        ]
        root = await log.tree_head(session, tenant_id, size)
    return {
        "events": [
            (
                r.event_id,
                r.hash_id,
                r.event_type,
                r.action,
                r.event_time,
                r.event_timezone_offset,
                r.biz_step,
                r.disposition,
                r.read_point,
                r.biz_location,
                r.body,
                r.context,
            )
            for r in rows
        ],
        "epcs": [(position[e.event_pk], e.role, e.epc) for e in epc_rows],
        "size": size,
        "leaves": leaves,
        "root": root,
        "expected_leaves": [merkle.leaf_hash(r.hash_id.encode()) for r in rows],
    }


async def test_one_document_stores_what_one_event_at_a_time_stores(runtime: Runtime) -> None:
    batched, single = await make_brand(runtime), await make_brand(runtime)
    event_list = varied_events()
    job = await receive(runtime, batched.id, document(event_list))
    assert (job.is_success, job.stored_count, job.duplicate_count) == (True, len(event_list), 0), job.errors
    for event in event_list:
        one = await receive(runtime, single.id, document([event]))
        assert (one.is_success, one.stored_count) == (True, 1), one.errors

    got, expected = await stored(runtime, batched.id), await stored(runtime, single.id)
    assert got["events"] == expected["events"]
    assert got["epcs"] == expected["epcs"]
    assert len(got["epcs"]) == 2 * 12 + 4 + 3  # two per object event, the aggregation's 4, the transformation's 3
    assert got["leaves"] == expected["leaves"] == got["expected_leaves"]
    assert got["size"] == expected["size"] == len(event_list)
    assert got["root"] == expected["root"]


async def test_a_duplicate_in_the_middle_of_a_document_is_skipped(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    event_list = varied_events()
    first = await receive(runtime, brand.id, document([event_list[5]]))
    assert first.stored_count == 1
    # The same event again in the middle (under another eventID: its hash is what makes it the same),
    # and one event given twice within the document.
    again = {**event_list[5], "eventID": "urn:uuid:11111111-1111-4111-8111-111111111111"}
    body = document([*event_list[:5], again, *event_list[6:], event_list[0]])
    job = await receive(runtime, brand.id, body)
    assert job.is_success, job.errors
    assert (job.event_count, job.stored_count, job.duplicate_count) == (len(event_list) + 1, len(event_list) - 1, 2)
    got = await stored(runtime, brand.id)
    assert got["size"] == len(event_list)
    assert got["leaves"] == got["expected_leaves"]
    hash_ids = [row[1] for row in got["events"]]
    assert len(set(hash_ids)) == len(event_list)
    # Storage (and log) order: the first capture's event, then the document's new ones in document order.
    reference = await make_brand(runtime)
    for event in [event_list[5], *event_list[:5], *event_list[6:]]:
        await receive(runtime, reference.id, document([event]))
    expected = await stored(runtime, reference.id)
    assert got["events"] == expected["events"]
    assert got["epcs"] == expected["epcs"]
    assert got["root"] == expected["root"]

    # A concurrent capture's event (stored between the check and the insert) is counted, not stored twice.
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        prepared = [
            events.prepare(e, position=n, pointer=f"/{n}", namespaces=namespaces_of(EXTENSION), context=None)
            for n, e in enumerate(event_list[:2])
        ]
        result = await events.do_store(session, brand.id, prepared, capture_id=None)
    assert (len(result.stored), result.duplicates) == (0, 2)
    assert (await stored(runtime, brand.id))["size"] == len(event_list)


async def test_the_array_statement_stores_what_the_values_statement_stores(runtime: Runtime, tier: str) -> None:
    """PostgreSQL stores through `unnest` (one statement); the multi-row VALUES statement (SQLite's
    path) is the reference. On SQLite both calls take the VALUES path."""
    by_values, by_arrays = await make_brand(runtime), await make_brand(runtime)
    body = document(varied_events())
    namespaces = namespaces_of(body["@context"])
    context = events.extra_context(body["@context"])
    prepared = [
        events.prepare(e, position=n, pointer=f"/{n}", namespaces=namespaces, context=context if n % 2 else None)
        for n, e in enumerate(body["epcisBody"]["eventList"])
    ]
    async with runtime.db.unit_of_work(tenant_id=by_values.id) as session:
        result = events.StoreResult()
        await events._store_values(session, by_values.id, prepared, None, prepared[0].event_time, result)
        await events._append_to_log(session, by_values.id, [e.hash_id for e in result.stored])
    async with runtime.db.unit_of_work(tenant_id=by_arrays.id) as session:
        await events.do_store(session, by_arrays.id, prepared, capture_id=None)
    got, expected = await stored(runtime, by_arrays.id), await stored(runtime, by_values.id)
    assert got["events"] == expected["events"]
    assert got["epcs"] == expected["epcs"]
    assert got["leaves"] == expected["leaves"]
    if tier == "postgres":
        # The JSON columns hold the same JSON (a missing context is JSON null in both).
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            rows = await session.execute(
                text(
                    "SELECT tenant_id, body::text, context::text, context IS NULL FROM trace_events"
                    " WHERE tenant_id IN (:a, :b) ORDER BY id"
                ),
                {"a": by_values.id, "b": by_arrays.id},
            )
            columns: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
            for tenant_id, *rest in rows:
                columns.setdefault(uuid.UUID(str(tenant_id)), []).append(tuple(rest))
        assert columns[by_arrays.id] == columns[by_values.id]


async def test_batched_inclusion_proofs_equal_single_proofs(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    values = [f"ni:///sha-256;{n:064x}?ver=CBV2.0".encode() for n in range(37)]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await log.append(session, brand.id, values)
    reference = merkle.MemoryTree(values)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for size in (1, 2, 16, 37):
            wanted = [*range(size), 0]  # every leaf, one twice
            proofs = await log.inclusion_proofs(session, brand.id, wanted, size)
            assert sorted(proofs) == list(range(size))
            for index, path in proofs.items():
                assert path == reference.inclusion_proof(index, size)
                assert path == await log.inclusion_proof(session, brand.id, index, size)
        assert await log.inclusion_proofs(session, brand.id, [], 37) == {}
