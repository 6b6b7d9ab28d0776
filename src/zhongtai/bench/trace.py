"""`zhongtai bench trace`: EPCIS capture throughput, the full trace of one code among N stored events,
and inclusion proofs at N leaves, per tier.

Per tier (embedded: SQLite in a temporary data dir; postgres: a temporary PostgreSQL database when it
answers), in a fresh, migrated database:

1. **capture** — documents of 100 events each through the real capture path
   (`capture.do_receive`: schema validation, canonical form, event hashes, the duplicate check, the
   inserts, the EPC index and the log append), each document in its own committed transaction →
   events/s; beside it the **raw insert** rate of the same rows (the same multi-row INSERTs of the
   events and their EPC rows, prepared before the clock starts, nothing else) in another brand;
2. **trace** — N filler events of one brand (about ten per item, as a brand's history looks) are
   bulk-loaded with their EPC rows and their log leaves (binary COPY on PostgreSQL, executemany on
   SQLite; the log's node table built with `merkle.build_nodes` as `log.append` stores it). Then one
   item's own history (10 events), its packing into a case and the case onto a pallet, and the case's
   and pallet's events are captured through the real path (appending to the bulk-built log, whose
   head is then signed — a consistency check of the load), and `view.trace_of` of the item runs
   `RUNS` times, each in its own transaction → p50/p95 ms;
3. **proof** — the leaf hash and inclusion proof of random leaves at the log's size (N + the captured
   events), as the proof endpoint computes them (`log.inclusion_proof_with_leaf` in a read-only
   session), `RUNS` times → p50/p95 ms; beside it `log.inclusion_proof` in a unit of work (the
   earlier way, with BEGIN and COMMIT round trips) on other random leaves of the same run.
Part 2 also times the trace as the API serves it once the code is looked up (`steps.epc_steps`:
the trace, the latest signed head, the actors and every step's proof from one query).

N is ZT_BENCH_TRACE_EVENTS (both tiers) or 10,000,000 on PostgreSQL and 1,000,000 on the embedded
tier (ZT_BENCH_TRACE_EVENTS_EMBEDDED overrides that one); ZT_BENCH_TRACE_DOCUMENTS documents of
capture (default 100, i.e. 10,000 events). Progress goes to stderr.

ZT_BENCH_TRACE_KEEP=<name> keeps the PostgreSQL database of parts 2 and 3 (`zt_bench_trace_<name>_<N>`)
instead of dropping it, and reuses it on the next run with the same name and N: the 10,000,000-event
load (about 15 minutes) is done once. Drop it by hand afterwards (`DROP DATABASE …`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from rich.console import Console
from sqlalchemy import Table, func, insert, select, text
from stdnum import ean

from zhongtai.bench import servers
from zhongtai.bench.registry import benchmark
from zhongtai.core import accounts
from zhongtai.core.crypto import Crypto
from zhongtai.core.db import Database
from zhongtai.core.models import Tenant
from zhongtai.core.settings import Settings
from zhongtai.trace import capture, checkpoint, log, merkle, models, steps
from zhongtai.trace.log_models import TraceLog, TraceLogNode
from zhongtai.trace.models import TraceEvent, TraceEventEpc
from zhongtai.trace.view import trace_of

TIERS = ("embedded", "postgres")
DEFAULT_EVENTS = {"postgres": 10_000_000, "embedded": 1_000_000}
DEFAULT_DOCUMENTS = 100
DEFAULT_CLIENTS = 4  # concurrent capture clients of the second capture figure (ZT_BENCH_TRACE_CLIENTS)
EVENTS_PER_DOCUMENT = 100
EVENTS_PER_FILLER_ITEM = 10
LOAD_CHUNK = 200_000
RUNS = 200
WARMUP_RUNS = 20
TRACED_OWN_EVENTS = 10  # the traced item's own events; with its case's and pallet's while packed: 16
TRACED_EVENTS = 16
TRACED_LOG_ENTRIES = 19  # every event of the traced item's documents
KEPT_SLUG = "bench-trace-kept"
GTIN = "06901234567892"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
BIZ_STEP = "https://ref.gs1.org/cbv/BizStep-"
START = datetime(2025, 1, 1, tzinfo=UTC)
EVENTS = cast(Table, TraceEvent.__table__)
EVENT_EPCS = cast(Table, TraceEventEpc.__table__)
NODES = cast(Table, TraceLogNode.__table__)
EVENT_COLUMNS = (
    "id",
    "tenant_id",
    "event_id",
    "hash_id",
    "event_type",
    "action",
    "event_time",
    "event_timezone_offset",
    "record_time",
    "biz_step",
    "body",
)
EPC_COLUMNS = ("id", "tenant_id", "event_pk", "role", "epc")
NODE_COLUMNS = ("tenant_id", "level", "node_index", "hash")

progress = Console(stderr=True, soft_wrap=True)


def events_from_env(tier: str) -> int:
    raw = os.environ.get("ZT_BENCH_TRACE_EVENTS_EMBEDDED" if tier == "embedded" else "", "") or os.environ.get(
        "ZT_BENCH_TRACE_EVENTS", ""
    )
    value = raw.replace("_", "").replace(",", "")
    return int(value) if value else DEFAULT_EVENTS[tier]


def clients_from_env() -> int:
    value = os.environ.get("ZT_BENCH_TRACE_CLIENTS", "").replace("_", "")
    return int(value) if value else DEFAULT_CLIENTS


def documents_from_env() -> int:
    value = os.environ.get("ZT_BENCH_TRACE_DOCUMENTS", "").replace("_", "")
    return int(value) if value else DEFAULT_DOCUMENTS


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# Databases and brands.


async def _brand(database: Database, slug: str | None = None) -> uuid.UUID:
    slug = slug or f"bench-{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work(all_tenants=True) as session:
        tenant, _owner = await accounts.do_create_tenant(
            session, slug=slug, name="Bench brand", owner_email=f"owner@{slug}.example", owner_password=uuid.uuid4().hex
        )
    return tenant.id


# Events.


def _item(serial: str) -> str:
    return f"https://id.gs1.org/01/{GTIN}/21/{serial}"


def _sscc(number: int) -> str:
    body = f"0690123{number:010d}"
    return f"https://id.gs1.org/00/{body}{ean.calc_check_digit(body)}"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _object_event(epc: str, moment: datetime, step: str, action: str = "OBSERVE") -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": _time(moment),
        "eventTimeZoneOffset": "+08:00",
        "epcList": [epc],
        "action": action,
        "bizStep": step,
        "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"},
    }


def _aggregation(parent: str, child: str, moment: datetime, action: str) -> dict[str, Any]:
    return {
        "type": "AggregationEvent",
        "eventTime": _time(moment),
        "eventTimeZoneOffset": "+08:00",
        "parentID": parent,
        "childEPCs": [child],
        "action": action,
        "bizStep": "packing" if action == "ADD" else "unpacking",
    }


def _document(event_list: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(START),
        "epcisBody": {"eventList": event_list},
    }


def capture_documents(count: int, run: str) -> list[dict[str, Any]]:
    """`count` documents of 100 distinct ObjectEvents (one item each, a few steps per item)."""
    steps = ("commissioning", "packing", "shipping", "receiving", "storing")
    documents = []
    for d in range(count):
        event_list = [
            _object_event(
                _item(f"{run}{d:05d}{e // 5:04d}"),
                START + timedelta(minutes=d * EVENTS_PER_DOCUMENT + e),
                steps[e % 5],
                "ADD" if e % 5 == 0 else "OBSERVE",
            )
            for e in range(EVENTS_PER_DOCUMENT)
        ]
        documents.append(_document(event_list))
    return documents


# (a) capture throughput vs raw inserts.

# The raw insert on PostgreSQL: the same two statements as the capture path's store step
# (`events._store_unnest`), sent with asyncpg directly — no SQLAlchemy, no session, nothing else.
_RAW_EVENTS_SQL = (
    "INSERT INTO trace_events (tenant_id, event_id, hash_id, event_type, action, event_time,"
    " event_timezone_offset, record_time, biz_step, disposition, read_point, biz_location, body)"
    " SELECT $1, e.event_id, e.hash_id, e.event_type, e.action, e.event_time, e.event_timezone_offset, $2,"
    " e.biz_step, e.disposition, e.read_point, e.biz_location, CAST(e.body AS jsonb)"
    " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[],"
    " $10::text[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY AS e(event_id, hash_id, event_type,"
    " action, event_time, event_timezone_offset, biz_step, disposition, read_point, biz_location, body, position)"
    " ORDER BY e.position RETURNING id, hash_id"
)
_RAW_EPCS_SQL = (
    "INSERT INTO trace_event_epcs (tenant_id, event_pk, role, epc)"
    " SELECT $1, e.event_pk, e.role, e.epc"
    " FROM unnest($2::bigint[], $3::smallint[], $4::text[]) AS e(event_pk, role, epc)"
)


async def _capture(database: Database, tenant_id: uuid.UUID, documents: list[dict[str, Any]]) -> float:
    actor = servers.bench_actor(tenant_id)
    elapsed = 0.0
    for number, document in enumerate(documents, 1):
        started = time.perf_counter()
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            job = await capture.do_receive(session, actor, document)
        elapsed += time.perf_counter() - started
        if job.stored_count != EVENTS_PER_DOCUMENT:
            raise RuntimeError(f"capture stored {job.stored_count} of {EVENTS_PER_DOCUMENT} events: {job.errors}")
        _report("capture", number * EVENTS_PER_DOCUMENT, len(documents) * EVENTS_PER_DOCUMENT, EVENTS_PER_DOCUMENT)
    return elapsed


async def _capture_concurrently(
    database: Database, tenant_id: uuid.UUID, documents: list[dict[str, Any]], clients: int
) -> float:
    """`clients` capture clients at once, each taking the next document as soon as its previous one is
    stored (each document in its own unit of work, as requests are) → wall-clock seconds for all."""
    actor = servers.bench_actor(tenant_id)
    queue = list(reversed(documents))
    done = 0

    async def client() -> None:
        nonlocal done
        while queue:
            document = queue.pop()
            async with database.unit_of_work(tenant_id=tenant_id) as session:
                job = await capture.do_receive(session, actor, document)
            if job.stored_count != EVENTS_PER_DOCUMENT:
                raise RuntimeError(f"capture stored {job.stored_count} of {EVENTS_PER_DOCUMENT} events: {job.errors}")
            done += EVENTS_PER_DOCUMENT
            _report(f"capture ×{clients}", done, len(documents) * EVENTS_PER_DOCUMENT, EVENTS_PER_DOCUMENT)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


def _stored_rows(tenant_id: uuid.UUID, document: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """The rows capture stores for a document's events (hash IDs made up: nothing is hashed here)."""
    rows = []
    for event in document["epcisBody"]["eventList"]:
        hash_id = f"ni:///sha-256;{uuid.uuid4().hex}{uuid.uuid4().hex}?ver=CBV2.0"
        rows.append(
            (
                {
                    "tenant_id": tenant_id,
                    "event_id": hash_id,
                    "hash_id": hash_id,
                    "event_type": event["type"],
                    "action": event["action"],
                    "event_time": datetime.fromisoformat(event["eventTime"]),
                    "event_timezone_offset": event["eventTimeZoneOffset"],
                    "record_time": START,
                    "biz_step": BIZ_STEP + event["bizStep"],
                    "disposition": None,
                    "read_point": event["readPoint"]["id"],
                    "biz_location": None,
                    "body": {**event, "eventID": hash_id},
                },
                list(event["epcList"]),
            )
        )
    return rows


def _raw_columns(
    tenant_id: uuid.UUID, documents: list[dict[str, Any]]
) -> list[tuple[list[tuple[dict[str, Any], list[str]]], list[list[Any]], list[str]]]:
    prepared = []
    for document in documents:
        rows = _stored_rows(tenant_id, document)
        columns = [
            [row[name] for row, _ in rows]
            for name in (
                "event_id",
                "hash_id",
                "event_type",
                "action",
                "event_time",
                "event_timezone_offset",
                "biz_step",
                "disposition",
                "read_point",
                "biz_location",
            )
        ]
        bodies = [json.dumps(row["body"]) for row, _ in rows]
        prepared.append((rows, columns, bodies))
    return prepared


async def _raw_insert_one(raw: Any, tenant_id: uuid.UUID, rows: Any, columns: Any, bodies: Any) -> None:
    async with raw.transaction():
        inserted = await raw.fetch(_RAW_EVENTS_SQL, tenant_id, START, *columns, bodies)
        pk_of = {hash_id: pk for pk, hash_id in inserted}
        epcs = [(pk_of[row["hash_id"]], models.EPC, epc) for row, epcs in rows for epc in epcs]
        await raw.execute(_RAW_EPCS_SQL, tenant_id, *(list(column) for column in zip(*epcs, strict=True)))


async def _raw_insert_postgres(database: Database, tenant_id: uuid.UUID, documents: list[dict[str, Any]]) -> float:
    """Best effort: asyncpg, two prepared statements of column arrays per document, one transaction each."""
    prepared = _raw_columns(tenant_id, documents)
    elapsed = 0.0
    async with database.engine.connect() as connection:
        raw: Any = (await connection.get_raw_connection()).driver_connection
        for number, (rows, columns, bodies) in enumerate(prepared, 1):
            started = time.perf_counter()
            await _raw_insert_one(raw, tenant_id, rows, columns, bodies)
            elapsed += time.perf_counter() - started
            _report(
                "raw insert", number * EVENTS_PER_DOCUMENT, len(prepared) * EVENTS_PER_DOCUMENT, EVENTS_PER_DOCUMENT
            )
        await connection.rollback()
    return elapsed


async def _raw_insert_concurrently(
    database: Database, tenant_id: uuid.UUID, documents: list[dict[str, Any]], clients: int
) -> float:
    """The raw insert from `clients` connections at once (PostgreSQL) → wall-clock seconds for all."""
    queue = list(reversed(_raw_columns(tenant_id, documents)))

    async def client() -> None:
        async with database.engine.connect() as connection:
            raw: Any = (await connection.get_raw_connection()).driver_connection
            while queue:
                await _raw_insert_one(raw, tenant_id, *queue.pop())
            await connection.rollback()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


async def _raw_insert(database: Database, tenant_id: uuid.UUID, documents: list[dict[str, Any]]) -> float:
    if database.dialect == "postgresql":
        return await _raw_insert_postgres(database, tenant_id, documents)
    elapsed = 0.0
    for number, document in enumerate(documents, 1):
        rows = _stored_rows(tenant_id, document)
        started = time.perf_counter()
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            inserted = await session.execute(
                insert(EVENTS).values([row for row, _ in rows]).returning(EVENTS.c.id, EVENTS.c.hash_id)
            )
            pk_of = {hash_id: pk for pk, hash_id in inserted}
            await session.execute(
                insert(EVENT_EPCS),
                [
                    {"tenant_id": tenant_id, "event_pk": pk_of[row["hash_id"]], "role": models.EPC, "epc": epc}
                    for row, epcs in rows
                    for epc in epcs
                ],
            )
        elapsed += time.perf_counter() - started
        _report("raw insert", number * EVENTS_PER_DOCUMENT, len(documents) * EVENTS_PER_DOCUMENT, EVENTS_PER_DOCUMENT)
    return elapsed


# (b) and (c): bulk-loaded filler, a traced item, timings.


def _filler_chunk(
    tenant_id: uuid.UUID, first: int, count: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[bytes]]:
    """Events first … first + count - 1 (0-based): ten per item, their EPC rows and their leaf hashes."""
    events_rows: list[tuple[Any, ...]] = []
    epc_rows: list[tuple[Any, ...]] = []
    leaves: list[bytes] = []
    for i in range(first, first + count):
        hash_id = f"ni:///sha-256;{i:064x}?ver=CBV2.0"
        epc = _item(f"F{i // EVENTS_PER_FILLER_ITEM:015d}")
        moment = START + timedelta(seconds=i)
        step = BIZ_STEP + ("commissioning" if i % EVENTS_PER_FILLER_ITEM == 0 else "shipping")
        body = json.dumps(
            {
                "type": "ObjectEvent",
                "eventTime": _time(moment),
                "eventTimeZoneOffset": "+08:00",
                "epcList": [epc],
                "action": "OBSERVE",
                "bizStep": step,
                "eventID": hash_id,
            },
            separators=(",", ":"),
        )
        events_rows.append(
            (i + 1, tenant_id, hash_id, hash_id, "ObjectEvent", "OBSERVE", moment, "+08:00", moment, step, body)
        )
        epc_rows.append((i + 1, tenant_id, i + 1, models.EPC, epc))
        leaves.append(merkle.leaf_hash(hash_id.encode()))
    return events_rows, epc_rows, leaves


async def _copy(session: Any, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    await raw.copy_records_to_table(table, records=records, columns=list(columns))


async def _insert_many(session: Any, table: Table, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
    json_column = "body" in columns
    rows = [dict(zip(columns, record, strict=True)) for record in records]
    if json_column:
        for row in rows:
            row["body"] = json.loads(row["body"])
    await session.execute(insert(table), rows)


async def _bulk_load(database: Database, tenant_id: uuid.UUID, total: int) -> float:
    """Load `total` filler events, their EPC rows and the log's nodes; returns seconds."""
    is_pg = database.dialect == "postgresql"
    started = time.perf_counter()
    frontier: dict[merkle.NodeId, bytes] = {}
    done = 0
    while done < total:
        count = min(LOAD_CHUNK, total - done)
        event_rows, epc_rows, leaves = _filler_chunk(tenant_id, done, count)
        created = merkle.build_nodes(done, leaves, frontier)
        node_rows = [(tenant_id, level, index, value) for (level, index), value in created.items()]
        known = {**frontier, **created}
        frontier = {node: known[node] for node in merkle.root_nodes(done + count)}
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            if is_pg:
                await session.execute(text("SET LOCAL synchronous_commit = off"))
                await _copy(session, EVENTS.name, EVENT_COLUMNS, event_rows)
                await _copy(session, EVENT_EPCS.name, EPC_COLUMNS, epc_rows)
                await _copy(session, NODES.name, NODE_COLUMNS, node_rows)
            else:
                await _insert_many(session, EVENTS, EVENT_COLUMNS, event_rows)
                await _insert_many(session, EVENT_EPCS, EPC_COLUMNS, epc_rows)
                await _insert_many(session, NODES, NODE_COLUMNS, node_rows)
        done += count
        _report("bulk load", done, total, count)
    async with database.unit_of_work(tenant_id=tenant_id) as session:
        session.add(TraceLog(tenant_id=tenant_id, size=total))
        if is_pg:
            for table in (EVENTS.name, EVENT_EPCS.name):
                await session.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :last)"),
                    {"last": total},
                )
    if is_pg:
        async with database.engine.connect() as connection:
            await connection.execute(text("COMMIT"))
            for table in (EVENTS.name, EVENT_EPCS.name, NODES.name):
                await connection.execute(text(f"VACUUM ANALYZE {table}"))
    return time.perf_counter() - started


def traced_item_documents() -> tuple[str, list[dict[str, Any]]]:
    """The traced item's history: 10 own events, packed into a case, the case onto a pallet, events of
    the case and the pallet while packed, and one of the case after the item was taken out."""
    item, case, pallet = _item("TRACEDITEM000001"), _sscc(1), _sscc(2)
    at = START + timedelta(days=400)
    hour = timedelta(hours=1)
    event_list = [
        _object_event(item, at, "commissioning", "ADD"),
        _object_event(case, at, "commissioning", "ADD"),
        _object_event(pallet, at, "commissioning", "ADD"),
        *[_object_event(item, at + hour * (1 + n) / 10, "inspecting") for n in range(4)],
        _aggregation(case, item, at + hour * 1, "ADD"),
        _aggregation(pallet, case, at + hour * 2, "ADD"),
        _object_event(pallet, at + hour * 3, "shipping"),
        _object_event(case, at + hour * 4, "receiving"),
        _object_event(pallet, at + hour * 5, "storing"),
        _aggregation(pallet, case, at + hour * 6, "DELETE"),
        _object_event(case, at + hour * 7, "shipping"),
        _aggregation(case, item, at + hour * 8, "DELETE"),
        *[_object_event(item, at + hour * (9 + n), "retail_selling" if n == 2 else "inspecting") for n in range(3)],
        _object_event(case, at + hour * 13, "storing"),
    ]
    return item, [_document(event_list)]


async def _explain(database: Database, tenant_id: uuid.UUID, epc: str) -> list[str]:
    """The PostgreSQL plan of the trace's main query (the EPC index → events by primary key)."""
    statement = (
        select(TraceEventEpc.epc, TraceEventEpc.role, TraceEvent)
        .join(TraceEvent, TraceEvent.id == TraceEventEpc.event_pk)
        .where(
            TraceEventEpc.tenant_id == tenant_id,
            TraceEventEpc.epc.in_([epc]),
            TraceEventEpc.role.in_(models.INSTANCE_ROLES),
        )
    )
    async with database.engine.connect() as connection:
        compiled = statement.compile(connection.engine, compile_kwargs={"literal_binds": True})
        rows = await connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
        return [str(row[0]) for row in rows]


async def _kept_brand(database: Database, total: int) -> uuid.UUID | None:
    """The kept database's brand when it holds the log of `total` filler events and the traced item."""
    async with database.unit_of_work(all_tenants=True) as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == KEPT_SLUG))
    if tenant_id is None:
        return None
    async with database.unit_of_work(tenant_id=tenant_id) as session:
        size = await log.size(session, tenant_id)
    if size != total + TRACED_LOG_ENTRIES:
        raise RuntimeError(
            f"the kept database holds a log of {size} entries, not {total + TRACED_LOG_ENTRIES}: "
            "drop it (or use another ZT_BENCH_TRACE_KEEP name) to load it again"
        )
    return tenant_id


async def _trace_and_proofs(settings: Settings, total: int, *, keep: bool = False) -> dict[str, Any]:
    database = Database(settings)
    crypto = Crypto(settings.secrets)
    try:
        item, documents = traced_item_documents()
        tenant_id = await _kept_brand(database, total) if keep else None
        if tenant_id is not None:
            load_seconds = 0.0
            progress.print(f"  reusing the kept database's {total:,} events")
        else:
            tenant_id = await _brand(database, KEPT_SLUG if keep else None)
            load_seconds = await _bulk_load(database, tenant_id, total)
            progress.print(f"  bulk load: {total / load_seconds:,.0f} events/s ({load_seconds:.0f} s)")
            async with database.unit_of_work(tenant_id=tenant_id) as session:
                for document in documents:
                    job = await capture.do_receive(session, servers.bench_actor(tenant_id), document)
                    if not job.is_success or job.stored_count != job.event_count:
                        raise RuntimeError(f"the traced item's events were not all stored: {job.errors}")
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            signed = await checkpoint.do_sign_tree_head(session, crypto, tenant_id, public_url=settings.public_url)
            size = await log.size(session, tenant_id)
            stored = int(await session.scalar(select(func.count()).select_from(TraceEvent)) or 0)
        if signed.tree_size != size or size != stored:
            raise RuntimeError(f"log size {size}, signed {signed.tree_size}, events {stored}")
        plan = await _explain(database, tenant_id, item) if database.dialect == "postgresql" else []
        for line in plan:
            progress.print(f"    {line}")

        trace_ms, entries, own = await _time_trace(database, tenant_id, item)
        steps_ms = await _time_steps(database, tenant_id, item)
        proof_ms, in_transaction_ms = await _time_proofs(database, tenant_id, size, total)
        return {
            "load_seconds": load_seconds,
            "log_size": size,
            "trace_entries": entries,
            "trace_own_entries": own,
            "trace_ms": trace_ms,
            "steps_ms": steps_ms,
            "proof_ms": proof_ms,
            "proof_in_transaction_ms": in_transaction_ms,
            "plan": plan,
        }
    finally:
        await database.dispose()


async def _time_trace(database: Database, tenant_id: uuid.UUID, item: str) -> tuple[list[float], int, int]:
    """The traced item's trace, timed; checked against the entries (and its own) it must have."""
    trace_ms: list[float] = []
    entries = 0
    for run in range(WARMUP_RUNS + RUNS):
        started = time.perf_counter()
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            trace = await trace_of(session, tenant_id, item)
        if run >= WARMUP_RUNS:
            trace_ms.append((time.perf_counter() - started) * 1000)
        entries = len(trace.entries)
    own = sum(1 for e in trace.entries if e.via is None)
    if own != TRACED_OWN_EVENTS or entries != TRACED_EVENTS or any(e.leaf_index is None for e in trace.entries):
        raise RuntimeError(
            f"the traced item has {entries} entries ({own} own): expected {TRACED_EVENTS} ({TRACED_OWN_EVENTS} own)"
        )
    return trace_ms, entries, own


async def _time_steps(database: Database, tenant_id: uuid.UUID, item: str) -> list[float]:
    # What the trace API and the consumer page do for the code once it is looked up: the trace,
    # the latest signed head, the actors, and every step's inclusion proof (one query for all).
    steps_ms: list[float] = []
    for run in range(WARMUP_RUNS + RUNS):
        started = time.perf_counter()
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            found = await steps.epc_steps(session, tenant_id, item, with_actors=True)
        if run >= WARMUP_RUNS:
            steps_ms.append((time.perf_counter() - started) * 1000)
    head = found.checkpoint
    if head is None or len(found.steps) != TRACED_EVENTS:
        raise RuntimeError(f"the traced item has {len(found.steps)} steps, expected {TRACED_EVENTS}")
    for step in found.steps:
        if step.proof is None or not merkle.verify_inclusion(
            merkle.leaf_hash(step.entry.hash_id.encode()),
            step.proof.leaf_index,
            step.proof.tree_size,
            step.proof.path,
            head.root_hash,
        ):
            raise RuntimeError(f"the proof of step {step.entry.hash_id} does not verify")
    return steps_ms


async def _time_proofs(
    database: Database, tenant_id: uuid.UUID, size: int, total: int
) -> tuple[list[float], list[float]]:
    proof_ms: list[float] = []
    chooser = random.Random(7)
    async with database.unit_of_work(tenant_id=tenant_id) as session:
        root = await log.tree_head(session, tenant_id, size)
    # As the proof endpoint runs it: a read-only session (no transaction round trips on PostgreSQL),
    # the leaf's hash and its path from one query. Beside it, in the same run and on other random
    # leaves, the earlier way: a unit of work (BEGIN … COMMIT) around the path's query.
    in_transaction_ms: list[float] = []
    for run in range(WARMUP_RUNS + RUNS):
        leaf = chooser.randrange(size)
        started = time.perf_counter()
        async with database.read_only(tenant_id=tenant_id) as session:
            leaf_hash, path = await log.inclusion_proof_with_leaf(session, tenant_id, leaf, size)
        if run >= WARMUP_RUNS:
            proof_ms.append((time.perf_counter() - started) * 1000)
        if run < WARMUP_RUNS and not merkle.verify_inclusion(leaf_hash, leaf, size, path, root):
            raise RuntimeError(f"the proof of leaf {leaf} does not verify")
        loaded = merkle.leaf_hash(f"ni:///sha-256;{leaf:064x}?ver=CBV2.0".encode())
        if run < WARMUP_RUNS and leaf < total and leaf_hash != loaded:
            raise RuntimeError(f"leaf {leaf} is not the loaded entry")
        leaf = chooser.randrange(size)
        started = time.perf_counter()
        async with database.unit_of_work(tenant_id=tenant_id) as session:
            await log.inclusion_proof(session, tenant_id, leaf, size)
        if run >= WARMUP_RUNS:
            in_transaction_ms.append((time.perf_counter() - started) * 1000)
    return proof_ms, in_transaction_ms


def _report(label: str, done: int, total: int, increment: int) -> None:
    """Print progress at every tenth of the way (and at the end)."""
    if done == total or done * 10 // total != (done - increment) * 10 // total:
        progress.print(f"  {label:10} {done:>12,} / {total:,}")


def _capture_figures(tier: str, documents: int, clients: int) -> dict[str, Any]:
    events = documents * EVENTS_PER_DOCUMENT
    progress.print(f"[bold]{tier} tier[/bold]: capture of {documents} documents of {EVENTS_PER_DOCUMENT} events")
    with servers.migrated_database(tier, "trace") as settings:
        seconds = asyncio.run(_raw_insert_then_capture(settings, documents, clients))
    capture_seconds, raw_seconds = seconds["capture"], seconds["raw"]
    progress.print(f"  capture {events / capture_seconds:,.0f} events/s, raw insert {events / raw_seconds:,.0f} rows/s")
    figures: dict[str, Any] = {
        f"{tier}_capture_events": events,
        f"{tier}_capture_events_per_s": round(events / capture_seconds),
        f"{tier}_capture_seconds": round(capture_seconds, 2),
        f"{tier}_raw_insert_events_per_s": round(events / raw_seconds),
        f"{tier}_raw_insert_seconds": round(raw_seconds, 2),
        f"{tier}_capture_ratio_to_raw_insert": round(raw_seconds / capture_seconds, 3),
    }
    if "capture_concurrent" in seconds:
        concurrent, raw_concurrent = seconds["capture_concurrent"], seconds["raw_concurrent"]
        progress.print(
            f"  {clients} clients: capture {events / concurrent:,.0f} events/s,"
            f" raw insert {events / raw_concurrent:,.0f} rows/s"
        )
        figures.update(
            {
                f"{tier}_capture_clients": clients,
                f"{tier}_capture_concurrent_events_per_s": round(events / concurrent),
                f"{tier}_raw_insert_concurrent_events_per_s": round(events / raw_concurrent),
                f"{tier}_capture_concurrent_ratio_to_raw_insert": round(raw_concurrent / concurrent, 3),
            }
        )
    return figures


def _run_tier(tier: str, total: int, documents: int, clients: int = DEFAULT_CLIENTS) -> dict[str, Any]:
    capture_figures = _capture_figures(tier, documents, clients)
    progress.print(f"[bold]{tier} tier[/bold]: trace and proofs among {total:,} stored events")
    keep = os.environ.get("ZT_BENCH_TRACE_KEEP", "") if tier == "postgres" else ""
    if keep:
        with servers.kept_postgres_database(f"zt_bench_trace_{keep}_{total}", "trace") as settings:
            result = asyncio.run(_trace_and_proofs(settings, total, keep=True))
    else:
        with servers.migrated_database(tier, "trace") as settings:
            result = asyncio.run(_trace_and_proofs(settings, total))
    trace_ms, steps_ms, proof_ms = result["trace_ms"], result["steps_ms"], result["proof_ms"]
    progress.print(
        f"  trace p50 {statistics.median(trace_ms):.2f} ms, p95 {percentile(trace_ms, 0.95):.2f} ms; "
        f"trace with proofs p50 {statistics.median(steps_ms):.2f} ms, p95 {percentile(steps_ms, 0.95):.2f} ms; "
        f"proof p50 {statistics.median(proof_ms):.2f} ms, p95 {percentile(proof_ms, 0.95):.2f} ms"
    )
    return {
        **capture_figures,
        f"{tier}_stored_events": result["log_size"],
        f"{tier}_bulk_load_seconds": round(result["load_seconds"], 1),
        f"{tier}_trace_entries": result["trace_entries"],
        f"{tier}_trace_runs": len(trace_ms),
        f"{tier}_trace_p50_ms": round(statistics.median(trace_ms), 3),
        f"{tier}_trace_p95_ms": round(percentile(trace_ms, 0.95), 3),
        f"{tier}_trace_max_ms": round(max(trace_ms), 3),
        f"{tier}_trace_with_proofs_p50_ms": round(statistics.median(steps_ms), 3),
        f"{tier}_trace_with_proofs_p95_ms": round(percentile(steps_ms, 0.95), 3),
        f"{tier}_trace_with_proofs_max_ms": round(max(steps_ms), 3),
        f"{tier}_proof_runs": len(proof_ms),
        f"{tier}_proof_p50_ms": round(statistics.median(proof_ms), 3),
        f"{tier}_proof_p95_ms": round(percentile(proof_ms, 0.95), 3),
        f"{tier}_proof_in_transaction_p50_ms": round(statistics.median(result["proof_in_transaction_ms"]), 3),
        f"{tier}_proof_in_transaction_p95_ms": round(percentile(result["proof_in_transaction_ms"], 0.95), 3),
        **({f"{tier}_trace_plan": result["plan"]} if result["plan"] else {}),
    }


async def _raw_insert_then_capture(settings: Settings, documents: int, clients: int = 1) -> dict[str, float]:
    """Two brands of one database: the raw inserts, then the capture path — one document at a time,
    then (with `clients` > 1) from `clients` concurrent clients, each way beside its raw insert.
    One untimed document each first, then ANALYZE (as autovacuum would have done on any database in
    use), so that the planner knows the tables hold one brand's rows rather than guessing from an
    empty catalogue. Seconds per part."""
    database = Database(settings)
    seconds: dict[str, float] = {}
    try:
        raw_brand, capture_brand = await _brand(database), await _brand(database)
        await _raw_insert(database, raw_brand, capture_documents(1, "r"))
        await _capture(database, capture_brand, capture_documents(1, "c"))
        if database.dialect == "postgresql":
            async with database.engine.connect() as connection:
                await connection.execute(text("COMMIT"))
                for table in (EVENTS.name, EVENT_EPCS.name, NODES.name):
                    await connection.execute(text(f"ANALYZE {table}"))
        seconds["raw"] = await _raw_insert(database, raw_brand, capture_documents(documents, "R"))
        seconds["capture"] = await _capture(database, capture_brand, capture_documents(documents, "C"))
        if clients > 1 and database.dialect == "postgresql":
            seconds["raw_concurrent"] = await _raw_insert_concurrently(
                database, raw_brand, capture_documents(documents, "S"), clients
            )
            seconds["capture_concurrent"] = await _capture_concurrently(
                database, capture_brand, capture_documents(documents, "D"), clients
            )
    finally:
        await database.dispose()
    return seconds


@benchmark("trace", "EPCIS capture vs raw inserts, the full trace of one code and inclusion proofs among N events")
def run_trace_benchmark(
    events: int | None = None,
    *,
    tiers: Sequence[str] | None = None,
    documents: int | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    """Measure every tier that can run here (or `tiers`). `--seconds`/`--connections` do not apply."""
    wanted = list(tiers) if tiers is not None else list(TIERS)
    skipped: dict[str, str] = {}
    if "postgres" in wanted and not servers.postgres_answers():
        wanted.remove("postgres")
        skipped["postgres"] = "PostgreSQL does not answer"
        progress.print("[yellow]postgres tier skipped:[/yellow] PostgreSQL does not answer")
    document_count = documents if documents is not None else documents_from_env()
    load_at_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for tier in wanted:
        sizes[tier] = events if events is not None else events_from_env(tier)
        if sizes[tier] < 1:
            raise ValueError("the number of stored events must be at least 1")
        figures.update(_run_tier(tier, sizes[tier], document_count, clients_from_env()))
    return {
        "filler_events": sizes,
        "documents": document_count,
        "events_per_document": EVENTS_PER_DOCUMENT,
        "capture_clients": clients_from_env(),
        "runs": RUNS,
        "tiers": wanted,
        **({"skipped_tiers": skipped} if skipped else {}),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
