"""The per-tenant Merkle log on both tiers: appends, past roots, proofs, signed heads, the signing job."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from tests.factories import make_brand
from zhongtai.core import clock, jobs
from zhongtai.core.db import pg_driver
from zhongtai.core.models import OutboxJob
from zhongtai.core.runtime import Runtime
from zhongtai.trace import checkpoint, log, merkle
from zhongtai.trace.log_models import TraceCheckpoint, TraceLogKey, TraceLogNode

PUBLIC_URL = "https://trace.example"


def entries(start: int, count: int) -> list[bytes]:
    return [f"ni:///sha-256;{n:064x}?ver=CBV2.0".encode() for n in range(start, start + count)]


async def append(runtime: Runtime, tenant_id: uuid.UUID, values: list[bytes]) -> int:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return await log.append(session, tenant_id, values)


async def sign(runtime: Runtime, tenant_id: uuid.UUID) -> TraceCheckpoint:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return await checkpoint.do_sign_tree_head(session, runtime.crypto, tenant_id, public_url=PUBLIC_URL)


async def test_appends_give_the_roots_and_proofs_of_the_reference_tree(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    values = entries(0, 45)
    reference = merkle.MemoryTree(values)
    firsts = [await append(runtime, brand.id, values[a:b]) for a, b in [(0, 1), (1, 2), (2, 9), (9, 40), (40, 45)]]
    assert firsts == [0, 1, 2, 9, 40]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await log.size(session, brand.id) == 45
        for size in range(0, 46):
            assert await log.tree_head(session, brand.id, size) == reference.root(size)
        for size in (1, 7, 8, 33, 45):
            for index in range(size):
                assert await log.inclusion_proof(session, brand.id, index, size) == reference.inclusion_proof(
                    index, size
                )
            for first in range(size + 1):
                assert await log.consistency_proof(session, brand.id, first, size) == reference.consistency_proof(
                    first, size
                )
        assert await log.leaf_index_of(session, brand.id, values[17]) == 17
        assert await log.leaf_index_of(session, brand.id, b"ni:///sha-256;unknown") is None
        nodes = await session.scalar(select(func.count()).select_from(TraceLogNode))
        assert nodes == 2 * 45 - bin(45).count("1"), "each perfect subtree stored once"
        with pytest.raises(log.TreeSizeBeyondLog):
            await log.tree_head(session, brand.id, 46)
        with pytest.raises(log.BadProofRequest):
            await log.inclusion_proof(session, brand.id, 45, 45)
        with pytest.raises(log.BadProofRequest):
            await log.consistency_proof(session, brand.id, 9, 8)


async def counted_append(runtime: Runtime, tenant_id: uuid.UUID, values: list[bytes]) -> list[str]:
    """The statements of one append (transaction control left out): SQLAlchemy's, and on PostgreSQL
    those the append sends through the asyncpg connection itself."""
    statements: list[str] = []

    def on_cursor(*args: Any) -> None:
        statements.append(str(args[2]))

    def on_driver(record: Any) -> None:
        statements.append(str(record.query))

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", on_cursor)
    try:
        async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
            driver = await pg_driver(session) if runtime.db.dialect == "postgresql" else None
            if driver is not None:
                driver.add_query_logger(on_driver)
            try:
                await log.append(session, tenant_id, values)
            finally:
                if driver is not None:
                    driver.remove_query_logger(on_driver)
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", on_cursor)
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [s for s in statements if not s.strip().upper().startswith(control)]


def signing_window() -> int:
    return int(clock.utcnow().timestamp() // log.SIGN_INTERVAL_SECONDS)


async def test_an_append_costs_the_same_few_statements_whatever_the_log_size(runtime: Runtime) -> None:
    """No full-tree recomputation: reserve, read the right edge, insert the nodes — 3 statements,
    plus the signing job's enqueue in the first committed append of each signing window."""
    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 1000))
    previous = signing_window()
    for start in (1000, 1001, 1003, 5000):
        before = signing_window()
        statements = await counted_append(runtime, brand.id, entries(start, 1 if start < 1003 else 2 + start // 1000))
        after = signing_window()
        if before == after == previous:
            assert len(statements) == 3, statements
            assert not any("outbox_jobs" in s for s in statements)
        elif before == after:
            assert len(statements) == 4, statements
        else:  # the window turned during the append
            assert len(statements) in (3, 4), statements
        previous = after


async def test_a_rolled_back_append_does_not_count_as_scheduling_the_signing(runtime: Runtime) -> None:
    brand = await make_brand(runtime)

    class Abort(Exception):
        pass

    async def append_then_fail() -> None:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await log.append(session, brand.id, entries(0, 3))
            raise Abort

    with pytest.raises(Abort):
        await append_then_fail()
    statements = await counted_append(runtime, brand.id, entries(0, 3))
    assert any("outbox_jobs" in s for s in statements), statements
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        topics = (await session.scalars(select(OutboxJob.topic).where(OutboxJob.tenant_id == brand.id))).all()
        assert topics.count(log.SIGN_TOPIC) >= 1
        assert await log.size(session, brand.id) == 3


async def test_logs_of_two_tenants_are_separate(runtime: Runtime) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    await append(runtime, first.id, entries(0, 5))
    await append(runtime, second.id, entries(100, 3))
    async with runtime.db.unit_of_work(tenant_id=second.id) as session:
        assert await log.size(session, second.id) == 3
        assert await log.tree_head(session, second.id, 3) == merkle.MemoryTree(entries(100, 3)).root()
        assert await log.leaf_index_of(session, second.id, entries(0, 1)[0]) is None


async def test_concurrent_appends_serialise_and_lose_nothing(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    batches = [entries(i * 10, 10) for i in range(8)]
    firsts = await asyncio.gather(*(append(runtime, brand.id, batch) for batch in batches))
    assert sorted(firsts) == [i * 10 for i in range(8)]
    ordered: list[bytes] = [b""] * 80
    for first, batch in zip(firsts, batches, strict=True):
        ordered[first : first + 10] = batch
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await log.tree_head(session, brand.id, 80) == merkle.MemoryTree(ordered).root()


async def test_a_rolled_back_append_gives_its_indexes_back(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 3))

    async def failing_capture() -> None:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await log.append(session, brand.id, entries(3, 5))
            raise RuntimeError("capture failed")

    with pytest.raises(RuntimeError):
        await failing_capture()
    assert await append(runtime, brand.id, entries(3, 1)) == 3


async def test_signed_heads_verify_and_extend_each_other(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 5))
    first = await sign(runtime, brand.id)
    assert first.tree_size == 5
    assert (await sign(runtime, brand.id)).id == first.id, "an unchanged log is not signed again"
    await append(runtime, brand.id, entries(5, 6))
    second = await sign(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        key = await session.scalar(select(TraceLogKey))
        assert key is not None
        assert key.private_key_ciphertext.startswith("v"), "the private key is encrypted at rest"
        assert key.key_name == f"trace.example/epcis/log/{brand.tenant.slug}"
        proof = await log.consistency_proof(session, brand.id, 5, 11)
    lines = second.note.split("\n")
    assert lines[:3] == [key.key_name, "11", base64.b64encode(merkle.MemoryTree(entries(0, 11)).root()).decode()]
    assert lines[3].startswith("timestamp ")
    assert lines[4] == ""
    assert lines[5].startswith(f"— {key.key_name} ")
    raw = base64.b64decode(lines[5].split(" ")[2])
    assert raw[:4] == checkpoint.key_id(key.key_name, key.public_key)
    parsed = checkpoint.verify_checkpoint(second.note, key.public_key)
    assert parsed.tree_size == 11
    verdict = checkpoint.verify_consistency_bundle(
        first.note,
        second.note,
        key.public_key,
        {"first": 5, "second": 11, "consistency_path": [base64.b64encode(p).decode() for p in proof]},
    )
    assert verdict.ok, verdict.message


async def test_signing_refuses_a_tree_that_was_changed_under_a_signed_head(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 6))
    await sign(runtime, brand.id)
    await append(runtime, brand.id, entries(6, 3))
    # Rewrite leaf 2 and, consistently, every stored node above it — as a forger with database access would.
    forged = entries(0, 9)
    forged[2] = b"ni:///sha-256;forged?ver=CBV2.0"
    rewritten = merkle.MemoryTree(forged).nodes
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for level, index in [(0, 2), (1, 1), (2, 0), (3, 0)]:
            await session.execute(
                update(TraceLogNode)
                .where(TraceLogNode.level == level, TraceLogNode.node_index == index)
                .values(hash=rewritten[(level, index)])
                .execution_options(synchronize_session=False)
            )
    with pytest.raises(log.LogInconsistent):
        await sign(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(TraceCheckpoint)) == 1


async def test_the_log_survives_a_restart(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 20))
    head = await sign(runtime, brand.id)
    again = Runtime(runtime.settings)
    await again.start(with_worker=False)
    try:
        await append(again, brand.id, entries(20, 5))
        later = await sign(again, brand.id)
        async with again.db.unit_of_work(tenant_id=brand.id) as session:
            assert await log.tree_head(session, brand.id, 20) == head.root_hash
            proof = await log.consistency_proof(session, brand.id, 20, 25)
        assert merkle.verify_consistency(20, 25, head.root_hash, later.root_hash, proof)
        assert later.key_version == head.key_version
    finally:
        await again.stop()


async def test_appends_schedule_one_signing_job_per_interval(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 2))
    await append(runtime, brand.id, entries(2, 2))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        pending = list(await session.scalars(select(OutboxJob).where(OutboxJob.topic == log.SIGN_TOPIC)))
    assert len(pending) in (1, 2), "one job per window (two only when the appends straddle a window's end)"
    worker = jobs.Worker(runtime.db)
    assert await worker.run_once() == 0, "not due before the window ends"
    clock.advance(log.SIGN_INTERVAL_SECONDS + 1)
    await worker.run_once()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        head = await checkpoint.latest_checkpoint(session, brand.id)
        states = set(await session.scalars(select(OutboxJob.status).where(OutboxJob.topic == log.SIGN_TOPIC)))
    assert head is not None
    assert head.tree_size == 4
    assert states == {"done"}


async def test_node_and_leaf_lookups_probe_indexes_not_the_whole_tree(runtime: Runtime) -> None:
    """A planner that scans a brand's tree makes appends and proofs O(n); check the plans on each tier."""
    from sqlalchemy import BigInteger, LargeBinary, SmallInteger, Uuid, bindparam, text
    from sqlalchemy.dialects.postgresql import ARRAY

    brand = await make_brand(runtime)
    await append(runtime, brand.id, entries(0, 300))
    nodes = sorted(merkle.nodes_for(merkle.inclusion_ranges(123, 300)))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        if runtime.db.dialect == "sqlite":
            statement, params = log._sqlite_fetch(brand.id, nodes)
            fetch_plan = await session.execute(
                text("EXPLAIN QUERY PLAN " + statement.text).bindparams(bindparam("tenant_id", type_=Uuid)), params
            )
            assert any("USING INDEX" in row[-1] and "node_index=?" in row[-1] for row in fetch_plan)
            leaf_plan = await session.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT min(node_index) FROM trace_log_nodes INDEXED BY"
                    " ix_trace_log_nodes_leaf_hash WHERE tenant_id = :t AND level = 0 AND hash = :h"
                ).bindparams(bindparam("t", type_=Uuid), bindparam("h", type_=LargeBinary)),
                {"t": brand.id, "h": merkle.leaf_hash(b"x")},
            )
            assert any("ix_trace_log_nodes_leaf_hash" in row[-1] for row in leaf_plan)
        else:
            plan = await session.execute(
                text("EXPLAIN " + log._PG_FETCH.text).bindparams(
                    bindparam("levels", type_=ARRAY(SmallInteger)),
                    bindparam("indexes", type_=ARRAY(BigInteger)),
                    bindparam("tenant_id", type_=Uuid),
                ),
                {"tenant_id": brand.id, "levels": [n[0] for n in nodes], "indexes": [n[1] for n in nodes]},
            )
            assert any("pk_trace_log_nodes" in row[0] for row in plan)
        assert await log.leaf_index_of(session, brand.id, entries(77, 1)[0]) == 77
