"""The tamper-evident log: one append-only RFC 9162 Merkle tree per tenant.

**Leaves.** For each stored EPCIS event the trace module appends one entry: the UTF-8 bytes of the
event's hash ID, e.g. `ni:///sha-256;1f2e…9a?ver=CBV2.0`. Its leaf hash is
`SHA-256(0x00 ‖ entry)`, so anyone holding the event can recompute the hash ID (GS1 CBV 2.0 event
hash), then the leaf, then check an inclusion proof against a signed checkpoint.

**Appending** (`append`) happens in the caller's transaction: one
`UPDATE trace_logs SET size = size + :n … RETURNING` reserves the leaf indexes — on PostgreSQL it also
locks the tenant's row until commit, so appends of one tenant serialise (SQLite serialises every
writer); a rolled-back transaction gives its indexes back. Then the old tree's right edge (at most
log₂ n nodes) is read in one query and the new leaves and every subtree they complete are inserted:
O(k + log n) for k entries, whatever the size of the log.

**Signing.** Each append schedules the `trace.log.sign` outbox job, at most one per tenant per
`SIGN_INTERVAL_SECONDS` window and due at the window's end: every leaf is covered by a signed
checkpoint within that interval (`trace.checkpoint` signs, and handles the job). Once a transaction
that scheduled a window's job has committed, later appends of that window in the same process skip the
enqueue (it would be a no-op: the job's dedupe key is the window).

On PostgreSQL the append's statements go through the session's asyncpg connection directly (fixed
texts, prepared once per connection): reserve, right edge, nodes — three round trips.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    LargeBinary,
    SmallInteger,
    Table,
    TextClause,
    Uuid,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from zhongtai.core import jobs, sql
from zhongtai.core.clock import utcnow
from zhongtai.core.db import pg_driver
from zhongtai.core.errors import BadRequest, Conflict, NotFound
from zhongtai.trace import merkle
from zhongtai.trace.log_models import TraceLog, TraceLogNode

SIGN_TOPIC = "trace.log.sign"
SIGN_INTERVAL_SECONDS = 60
MAX_APPEND = 100_000
TRACE_LOG_NODES = cast(Table, TraceLogNode.__table__)
_PG_FETCH = text(
    "SELECT n.level, n.node_index, n.hash"
    " FROM unnest(CAST(:levels AS smallint[]), CAST(:indexes AS bigint[])) AS wanted(level, node_index)"
    " JOIN trace_log_nodes AS n"
    " ON n.tenant_id = :tenant_id AND n.level = wanted.level AND n.node_index = wanted.node_index"
).bindparams(
    bindparam("levels", type_=ARRAY(SmallInteger)),
    bindparam("indexes", type_=ARRAY(BigInteger)),
    bindparam("tenant_id", type_=Uuid),
)


# The same statements for the asyncpg connection itself (the append's hot path on PostgreSQL).
_PG_RESERVE_SQL = "UPDATE trace_logs SET size = size + $2 WHERE tenant_id = $1 RETURNING size"
_PG_FETCH_SQL = (
    "SELECT n.level, n.node_index, n.hash FROM unnest($2::smallint[], $3::bigint[]) AS wanted(level, node_index)"
    " JOIN trace_log_nodes AS n ON n.tenant_id = $1 AND n.level = wanted.level AND n.node_index = wanted.node_index"
)
_PG_INSERT_NODES_SQL = (
    "INSERT INTO trace_log_nodes (tenant_id, level, node_index, hash)"
    " SELECT $1, n.level, n.node_index, n.hash FROM unnest($2::smallint[], $3::bigint[], $4::bytea[])"
    " AS n(level, node_index, hash)"
)

# tenant → the signing window whose job a committed transaction of this process enqueued.
_signing_scheduled: dict[uuid.UUID, int] = {}
_PENDING_SIGNING = "zt_trace_signing_windows"


@sa_event.listens_for(Session, "after_commit")
def _remember_scheduled_signing(session: Session) -> None:
    _signing_scheduled.update(session.info.pop(_PENDING_SIGNING, {}))


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_pending_signing(session: Session, _previous: Any) -> None:
    # Any rollback, a savepoint's too: the next append enqueues again (a no-op if the job exists).
    session.info.pop(_PENDING_SIGNING, None)


class TreeSizeBeyondLog(BadRequest):
    code = "tree_size_beyond_log"


class BadProofRequest(BadRequest):
    code = "bad_proof_request"


class UnknownLeaf(NotFound):
    code = "unknown_leaf"
    default_message = "No such entry in this log."


class LogInconsistent(Conflict):
    """The stored tree does not extend the last signed head: refuse to sign (invariant 6)."""

    code = "log_inconsistent"


async def _reserve(session: AsyncSession, tenant_id: uuid.UUID, count: int) -> int:
    statement = (
        update(TraceLog)
        .where(TraceLog.tenant_id == tenant_id)
        .values(size=TraceLog.size + count)
        .returning(TraceLog.size)
        .execution_options(synchronize_session=False)
    )
    new_size = (await session.execute(statement)).scalar_one_or_none()
    if new_size is None:
        await session.execute(
            sql.insert_ignore(session, TraceLog, "tenant_id").values(tenant_id=tenant_id, size=0, created_at=utcnow())
        )
        new_size = (await session.execute(statement)).scalar_one()
    return int(new_size) - count


def _sqlite_fetch(tenant_id: uuid.UUID, nodes: list[merkle.NodeId]) -> tuple[TextClause, dict[str, object]]:
    """The wanted ids as a VALUES list joined on the primary key: SQLite probes the index per node
    (with `level = … AND node_index IN (…) OR …` its planner scans the brand's whole tree)."""
    values = ", ".join(f"(:l{n}, :i{n})" for n in range(len(nodes)))
    statement = text(
        f"WITH wanted(level, node_index) AS (VALUES {values})"  # noqa: S608 - placeholders only
        " SELECT n.level, n.node_index, n.hash FROM wanted JOIN trace_log_nodes AS n"
        " ON n.tenant_id = :tenant_id AND n.level = wanted.level AND n.node_index = wanted.node_index"
    ).bindparams(bindparam("tenant_id", type_=Uuid))
    params: dict[str, object] = {"tenant_id": tenant_id}
    for n, (level, index) in enumerate(nodes):
        params[f"l{n}"], params[f"i{n}"] = level, index
    return statement, params


async def _fetch(
    session: AsyncSession, tenant_id: uuid.UUID, wanted: Iterable[merkle.NodeId]
) -> dict[merkle.NodeId, bytes]:
    nodes = sorted(set(wanted))
    if not nodes:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # One statement text whatever the nodes (asyncpg prepares it once), a primary-key probe per node.
        # Core SQL: the tenancy guard does not rewrite it, so the tenant is filtered here.
        rows = await session.execute(
            _PG_FETCH,
            {"tenant_id": tenant_id, "levels": [lvl for lvl, _ in nodes], "indexes": [ix for _, ix in nodes]},
        )
    else:
        rows = await session.execute(*_sqlite_fetch(tenant_id, nodes))
    found = {(int(level), int(index)): bytes(value) for level, index, value in rows}
    missing = set(nodes) - found.keys()
    if missing:
        # A node exists once the log covers it, so a missing one means a size beyond the log — or a
        # damaged log. Checked only now, to spare every proof a query for the size.
        current = await size(session, tenant_id)
        _check_size(max((index + 1) << level for level, index in missing), current)
        raise LogInconsistent(f"the log is missing {len(missing)} stored node(s)", missing=sorted(missing)[:5])
    return found


async def append(session: AsyncSession, tenant_id: uuid.UUID, entries: Sequence[bytes]) -> int:
    """Append entries to the tenant's log in the caller's transaction; returns the first leaf index."""
    if not entries:
        raise ValueError("nothing to append")
    if len(entries) > MAX_APPEND:
        raise ValueError(f"append at most {MAX_APPEND} entries at once")
    if session.get_bind().dialect.name == "postgresql":
        return await _append_postgres(session, tenant_id, entries)
    first = await _reserve(session, tenant_id, len(entries))
    frontier = await _fetch(session, tenant_id, merkle.root_nodes(first))
    created = merkle.build_nodes(first, [merkle.leaf_hash(entry) for entry in entries], frontier)
    await session.execute(
        insert(TRACE_LOG_NODES),
        [
            {"tenant_id": tenant_id, "level": level, "node_index": index, "hash": value}
            for (level, index), value in created.items()
        ],
    )
    await _schedule_signing(session, tenant_id)
    return first


async def _append_postgres(session: AsyncSession, tenant_id: uuid.UUID, entries: Sequence[bytes]) -> int:
    """`append` through the asyncpg connection: the same statements without SQLAlchemy's per-call work."""
    driver = await pg_driver(session)
    new_size = await driver.fetchval(_PG_RESERVE_SQL, tenant_id, len(entries))
    if new_size is None:  # the tenant's first append: create its log row the portable way
        first = await _reserve(session, tenant_id, len(entries))
    else:
        first = int(new_size) - len(entries)
    wanted = merkle.root_nodes(first)
    frontier: dict[merkle.NodeId, bytes] = {}
    if wanted:
        rows = await driver.fetch(_PG_FETCH_SQL, tenant_id, [lvl for lvl, _ in wanted], [ix for _, ix in wanted])
        frontier = {(int(level), int(index)): bytes(value) for level, index, value in rows}
        if len(frontier) != len(wanted):
            missing = sorted(set(wanted) - frontier.keys())
            raise LogInconsistent(f"the log is missing {len(missing)} stored node(s)", missing=missing[:5])
    created = merkle.build_nodes(first, [merkle.leaf_hash(entry) for entry in entries], frontier)
    await driver.execute(
        _PG_INSERT_NODES_SQL,
        tenant_id,
        [level for level, _ in created],
        [index for _, index in created],
        list(created.values()),
    )
    await _schedule_signing(session, tenant_id)
    return first


async def _schedule_signing(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    now = utcnow().timestamp()
    window = math.floor(now / SIGN_INTERVAL_SECONDS)
    if _signing_scheduled.get(tenant_id) == window:
        return  # a committed transaction of this window enqueued it: enqueueing again would change nothing
    due_in = (window + 1) * SIGN_INTERVAL_SECONDS - now
    await jobs.enqueue(
        session, SIGN_TOPIC, {}, tenant_id=tenant_id, dedupe_key=f"{SIGN_TOPIC}:{window}", delay_seconds=due_in
    )
    session.sync_session.info.setdefault(_PENDING_SIGNING, {})[tenant_id] = window


async def size(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    value = await session.scalar(select(TraceLog.size).where(TraceLog.tenant_id == tenant_id))
    return int(value or 0)


async def lock_size(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """The current size, holding the log row until commit (appends wait) — for signing."""
    return await _reserve(session, tenant_id, 0)


def _check_size(tree_size: int, current: int) -> None:
    if tree_size < 0:
        raise BadProofRequest("A tree size is a whole number of leaves, 0 or more.")
    if tree_size > current:
        raise TreeSizeBeyondLog(
            f"The log has {current} entries; tree size {tree_size} is beyond it.", tree_size=tree_size, size=current
        )


async def tree_head(session: AsyncSession, tenant_id: uuid.UUID, tree_size: int) -> bytes:
    """MTH of the first `tree_size` leaves — the root at any size the log has had."""
    if tree_size <= 0:
        _check_size(tree_size, await size(session, tenant_id))
    return merkle.root_from_nodes(tree_size, await _fetch(session, tenant_id, merkle.root_nodes(tree_size)))


async def inclusion_proof(session: AsyncSession, tenant_id: uuid.UUID, leaf_index: int, tree_size: int) -> list[bytes]:
    if not 0 <= leaf_index < tree_size:
        raise BadProofRequest(
            f"Leaf {leaf_index} is not in a tree of size {tree_size}.", leaf_index=leaf_index, tree_size=tree_size
        )
    ranges = merkle.inclusion_ranges(leaf_index, tree_size)
    nodes = await _fetch(session, tenant_id, merkle.nodes_for(ranges))
    return [merkle.range_hash(start, end, nodes) for start, end in ranges]


async def inclusion_proof_with_leaf(
    session: AsyncSession, tenant_id: uuid.UUID, leaf_index: int, tree_size: int
) -> tuple[bytes, list[bytes]]:
    """The leaf's hash and its inclusion proof, from one query."""
    if not 0 <= leaf_index < tree_size:
        raise BadProofRequest(
            f"Leaf {leaf_index} is not in a tree of size {tree_size}.", leaf_index=leaf_index, tree_size=tree_size
        )
    ranges = merkle.inclusion_ranges(leaf_index, tree_size)
    nodes = await _fetch(session, tenant_id, [*merkle.nodes_for(ranges), (0, leaf_index)])
    return nodes[(0, leaf_index)], [merkle.range_hash(start, end, nodes) for start, end in ranges]


async def inclusion_proofs(
    session: AsyncSession, tenant_id: uuid.UUID, leaf_indexes: Iterable[int], tree_size: int
) -> dict[int, list[bytes]]:
    """Inclusion proofs of several leaves at one tree size, with one query for all their nodes (a
    trace's steps share most of theirs: the upper levels of neighbouring leaves coincide)."""
    wanted = sorted(set(leaf_indexes))
    for leaf_index in wanted:
        if not 0 <= leaf_index < tree_size:
            raise BadProofRequest(
                f"Leaf {leaf_index} is not in a tree of size {tree_size}.", leaf_index=leaf_index, tree_size=tree_size
            )
    ranges = {leaf_index: merkle.inclusion_ranges(leaf_index, tree_size) for leaf_index in wanted}
    nodes = await _fetch(session, tenant_id, merkle.nodes_for(r for each in ranges.values() for r in each))
    return {
        leaf_index: [merkle.range_hash(start, end, nodes) for start, end in each] for leaf_index, each in ranges.items()
    }


async def consistency_proof(session: AsyncSession, tenant_id: uuid.UUID, first: int, second: int) -> list[bytes]:
    if not 0 <= first <= second:
        raise BadProofRequest(
            f"A consistency proof goes from a smaller tree to a larger one; {first} > {second}.",
            first=first,
            second=second,
        )
    ranges = merkle.consistency_ranges(first, second)
    if not ranges:  # nothing to prove, nothing fetched: check the size itself
        _check_size(second, await size(session, tenant_id))
    nodes = await _fetch(session, tenant_id, merkle.nodes_for(ranges))
    return [merkle.range_hash(start, end, nodes) for start, end in ranges]


async def leaf_index_of(session: AsyncSession, tenant_id: uuid.UUID, entry: bytes) -> int | None:
    """The first leaf index holding `entry`, or None."""
    # `level = 0` literally, so that the partial index applies to every plan; SQLite's planner prefers
    # the primary key (a scan of the brand's leaves) unless told. Core SQL: the tenant is filtered here.
    hint = " INDEXED BY ix_trace_log_nodes_leaf_hash" if session.get_bind().dialect.name == "sqlite" else ""
    statement = text(
        f"SELECT min(node_index) FROM trace_log_nodes{hint}"  # noqa: S608 - a fixed index name
        " WHERE tenant_id = :tenant_id AND level = 0 AND hash = :hash"
    ).bindparams(bindparam("tenant_id", type_=Uuid), bindparam("hash", type_=LargeBinary))
    index = await session.scalar(statement, {"tenant_id": tenant_id, "hash": merkle.leaf_hash(entry)})
    return None if index is None else int(index)


async def leaf_hash_at(session: AsyncSession, tenant_id: uuid.UUID, leaf_index: int) -> bytes:
    if leaf_index < 0 or leaf_index >= await size(session, tenant_id):
        raise UnknownLeaf(f"The log has no leaf {leaf_index}.")
    return (await _fetch(session, tenant_id, [(0, leaf_index)]))[(0, leaf_index)]
