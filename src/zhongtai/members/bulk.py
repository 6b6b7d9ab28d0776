"""Set-based OneID resolution: millions of identifier links resolved into members in one pass.

`oneid.do_link` decides one link at a time under row locks; an import of a CRM or a marketplace's
member list would take hours that way. Here the whole batch is one graph: records (the identifiers one
source row gives together) and identifier values are nodes, every *verified* link and every identifier
the brand already holds is an edge, and each connected component is one person. The components are
found in memory (integer ids, vectorised union-find), then written in a few set statements: PostgreSQL
`COPY` into staging tables and `INSERT … SELECT … ON CONFLICT DO NOTHING`; SQLite `executemany`.

For verified identifiers the members are those `do_link` would produce one record at a time. The rules:

- blocked values are dropped and counted; they never connect anything;
- a component holding one existing member attaches to it (a second load adds nothing);
- a component that would join two or more existing members is not resolved here: merging members
  moves points, tiers and touches and is logged for undo, so its records are reported
  (`merges_existing`) for the per-link path or an operator;
- a component whose identifiers (with its existing member's) exceed a type's cap is not merged: it
  is split per record in input order, each record a member of its own; an identifier two records
  share goes to the first and is reported for the others; a record over a cap on its own is refused;
- unverified identifiers never connect records: one attaches to its record's member when nobody holds
  it and the member is under the type's cap, else it is reported; a record with only unverified
  identifiers attaches to the one member already holding any of them, or becomes a new member.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Column, MetaData, String, Table, and_, case, exists, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from zhongtai.core import tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.core.sql import insert_ignore
from zhongtai.members import oneid
from zhongtai.members import oneid_rules as r
from zhongtai.members.models import Member, MemberBlockedIdentifier, MemberIdentifier

WRITE_CHUNK = 5_000
_PHONES = tuple(sorted(t.value for t in r.PHONE_CLASS))
_TYPES = tuple(t.value for t in r.IdentifierType)
_CAP_TYPES = tuple(sorted({r.cap_key(t) for t in _TYPES}))
_VALUES = Table(
    "zt_bulk_values",
    MetaData(),
    Column("type", String(30)),
    Column("value_hash", String(64)),
    prefixes=["TEMPORARY"],
)
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Link:
    """One identifier of one source record. `value_hash` is `oneid.identifier_hash` of the normalised
    value (a marketplace hashed phone is its own hash); `value_masked` is what screens show."""

    record: str
    type: str
    value_hash: str
    verified: bool = True
    value_masked: str = ""


@dataclass
class BulkReport:
    records: int = 0
    links: int = 0
    members_created: int = 0
    members_attached: int = 0
    identifiers_added: int = 0
    identifiers_verified: int = 0
    blocked: int = 0
    held_by_another_member: int = 0
    cap_reached: int = 0
    split_records: list[str] = field(default_factory=list)
    refused_records: list[str] = field(default_factory=list)
    merges_existing: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Batch:
    """The links as integer arrays: record number, value node, type code, verified; one per
    (record, type, value)."""

    records: list[str]
    nodes: list[tuple[str, str]]  # (cap type, value hash)
    link_record: Ints
    link_node: Ints
    link_type: Ints
    link_verified: npt.NDArray[np.bool_]
    masked: list[str]  # per link, "" when the caller gave none


@dataclass
class _Existing:
    member_ids: list[uuid.UUID]
    row_node: Ints  # one per identifier row held by a matched member
    row_member: Ints
    row_type: Ints
    row_verified: npt.NDArray[np.bool_]
    blocked: set[int]


def _check_links(links: Iterable[Link]) -> _Batch:
    """Number records and values (the only per-link Python work), then dedupe in numpy."""
    records: dict[str, int] = {}
    nodes: dict[tuple[str, str], int] = {}
    codes = {t: i for i, t in enumerate(_TYPES)}
    cap_of = [r.cap_key(t) for t in _TYPES]
    rec: list[int] = []
    node: list[int] = []
    typ: list[int] = []
    ver: list[bool] = []
    masked: list[str] = []
    for link in links:
        code = codes.get(link.type)
        if code is None:
            r.check_type(link.type)  # refuses it: every type of the platform is in `codes`
            continue
        if not 0 < len(link.value_hash) <= 64:
            raise ValidationFailed("A value hash has 1 to 64 characters.", field="value_hash")
        rec.append(records.setdefault(link.record, len(records)))
        node.append(nodes.setdefault((cap_of[code], link.value_hash), len(nodes)))
        typ.append(code)
        ver.append(link.verified)
        masked.append(link.value_masked)
    link_record, link_node = np.array(rec, dtype=np.int64), np.array(node, dtype=np.int64)
    link_type, link_verified = np.array(typ, dtype=np.int64), np.array(ver, dtype=np.bool_)
    key = (link_record * len(_TYPES) + link_type) * max(1, len(nodes)) + link_node
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    verified = np.zeros(first.size, dtype=np.bool_)
    np.logical_or.at(verified, inverse.ravel(), link_verified)
    keep = np.sort(first)  # input order
    verified = verified[np.argsort(first, kind="stable")]
    return _Batch(
        list(records),
        list(nodes),
        link_record[keep],
        link_node[keep],
        link_type[keep],
        verified,
        [masked[i] for i in keep.tolist()] if any(masked) else [""] * keep.size,
    )


def connected_components(size: int, left: Ints, right: Ints) -> Ints:
    """The smallest node of each node's component, for edges `left[i]`–`right[i]` (vectorised
    union-find: hook each larger root under the smaller, then jump pointers until every node points
    at its root; rounds grow with the longest chain, a handful for identity graphs)."""
    parent = np.arange(size, dtype=np.int64)
    while True:
        a, b = parent[left], parent[right]
        differ = a != b
        if not differ.any():
            return parent
        low, high = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        np.minimum.at(parent, high, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def _tenant_of(session: AsyncSession) -> uuid.UUID:
    scope = tenancy.current_scope(session)
    if not isinstance(scope, uuid.UUID):
        raise ValidationFailed("Bulk resolution runs in one brand's unit of work.", field="tenant")
    return scope


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _copy(session: AsyncSession, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """`COPY` rows into a table through the session's own asyncpg connection (same transaction)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.copy_records_to_table(table, records=rows, columns=columns)


async def _stage_values(session: AsyncSession, batch: _Batch) -> None:
    """The batch's values as (type, hash) in a temporary table; a phone is staged under both phone types."""
    rows: list[tuple[str, str]] = []
    for kind, digest in batch.nodes:
        if kind == r.IdentifierType.PHONE:
            rows.extend((t, digest) for t in _PHONES)
        else:
            rows.append((kind, digest))
    await session.execute(text("DROP TABLE IF EXISTS zt_bulk_values"))
    connection = await session.connection()
    await connection.run_sync(_VALUES.create)
    if _is_postgres(session):
        # Joins of millions of staged rows: hashed in memory rather than sorted on disk; no JIT warm-up.
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
        await session.execute(text("SET LOCAL jit = off"))
        await _copy(session, "zt_bulk_values", ["type", "value_hash"], rows)
        await session.execute(text("ANALYZE zt_bulk_values"))
    else:
        for low in range(0, len(rows), WRITE_CHUNK):
            chunk = rows[low : low + WRITE_CHUNK]
            await session.execute(insert(_VALUES), [{"type": t, "value_hash": h} for t, h in chunk])


async def _read_existing(session: AsyncSession, tenant_id: uuid.UUID, batch: _Batch) -> _Existing:
    """Blocked values of the batch, and every identifier of each active member holding a batch value."""
    v = _VALUES.c
    blocked_rows = await session.execute(
        select(MemberBlockedIdentifier.type, MemberBlockedIdentifier.value_hash)
        .join(_VALUES, and_(MemberBlockedIdentifier.type == v.type, MemberBlockedIdentifier.value_hash == v.value_hash))
        .where(MemberBlockedIdentifier.tenant_id == tenant_id)
    )
    index = {key: n for n, key in enumerate(batch.nodes)}
    blocked = {index[(kind, digest)] for kind, digest in blocked_rows.all() if (kind, digest) in index}
    held = aliased(MemberIdentifier)
    hits = (
        select(held.member_id)
        .join(_VALUES, and_(held.type == v.type, held.value_hash == v.value_hash))
        .where(
            held.tenant_id == tenant_id,
            ~exists().where(
                MemberBlockedIdentifier.tenant_id == tenant_id,
                MemberBlockedIdentifier.value_hash == v.value_hash,
                MemberBlockedIdentifier.type == case((v.type.in_(_PHONES), r.IdentifierType.PHONE.value), else_=v.type),
            ),
        )
        .distinct()
        .subquery()
    )
    # Core execution (tenant filtered by hand above): no ORM bookkeeping for millions of result rows.
    connection = await session.connection()
    rows = await connection.execute(
        select(
            MemberIdentifier.member_id, MemberIdentifier.type, MemberIdentifier.value_hash, MemberIdentifier.verified
        )
        .join(hits, hits.c.member_id == MemberIdentifier.member_id)
        .join(Member, Member.id == MemberIdentifier.member_id)
        .where(MemberIdentifier.tenant_id == tenant_id, Member.tenant_id == tenant_id, Member.status == oneid.ACTIVE)
    )
    members: dict[uuid.UUID, int] = {}
    row_node: list[int] = []
    row_member: list[int] = []
    row_type: list[int] = []
    row_verified: list[bool] = []
    codes = {t: i for i, t in enumerate(_TYPES)}
    cap_of = {t: r.cap_key(t) for t in _TYPES}
    for member_id, kind, digest, verified in rows.all():
        key = (cap_of[kind], digest)
        node = index.get(key)
        if node is None:  # a value of the member outside the batch: counts for its caps only
            node = index[key] = len(batch.nodes)
            batch.nodes.append(key)
        row_node.append(node)
        row_member.append(members.setdefault(member_id, len(members)))
        row_type.append(codes[kind])
        row_verified.append(bool(verified))
    return _Existing(
        list(members),
        np.array(row_node, dtype=np.int64),
        np.array(row_member, dtype=np.int64),
        np.array(row_type, dtype=np.int64),
        np.array(row_verified, dtype=np.bool_),
        blocked,
    )


# A record's or an identifier's member: k >= 0 is the k-th new member, -1 - i the i-th existing one.
UNRESOLVED = np.iinfo(np.int64).min


@dataclass
class _Plan:
    new_members: int
    record_target: Ints
    id_target: list[int] = field(default_factory=list)
    id_type: list[int] = field(default_factory=list)
    id_node: list[int] = field(default_factory=list)
    id_verified: list[bool] = field(default_factory=list)
    id_link: list[int] = field(default_factory=list)  # the link it came from (its mask)
    upgrades: list[tuple[int, int]] = field(default_factory=list)  # (type, node) held unverified, now verified

    def add(self, target: int, kind: int, node: int, verified: bool, link: int) -> None:
        self.id_target.append(target)
        self.id_type.append(kind)
        self.id_node.append(node)
        self.id_verified.append(verified)
        self.id_link.append(link)

    def new_member(self) -> int:
        self.new_members += 1
        return self.new_members - 1


@dataclass
class _Graph:
    """The components and what the rules need of them."""

    comp_record: Ints
    members_per: Ints  # existing members per component label
    owner: Ints  # the existing member of a component label (when it has one)
    over: npt.NDArray[np.bool_]  # component labels over a cap
    usable: npt.NDArray[np.bool_]  # links not blocked


def _components(batch: _Batch, existing: _Existing, caps: dict[str, int], report: BulkReport) -> _Graph:
    n_rec, n_node, n_mem = len(batch.records), len(batch.nodes), len(existing.member_ids)
    blocked = np.fromiter(existing.blocked, dtype=np.int64, count=len(existing.blocked))
    usable = ~np.isin(batch.link_node, blocked)
    report.blocked = int((~usable).sum())
    edge = usable & batch.link_verified
    left = np.concatenate([batch.link_record[edge], n_rec + existing.row_node])
    right = np.concatenate([n_rec + batch.link_node[edge], n_rec + n_node + existing.row_member])
    labels = connected_components(n_rec + n_node + n_mem, left, right)
    comp_member = labels[n_rec + n_node :]
    members_per = np.bincount(comp_member, minlength=labels.size)
    owner = np.full(labels.size, -1, dtype=np.int64)
    owner[comp_member] = np.arange(n_mem)
    # Distinct values per (component, cap type): the verified links' and the existing members'.
    cap_of_type = np.array([_CAP_TYPES.index(r.cap_key(t)) for t in _TYPES], dtype=np.int64)
    nodes = np.concatenate([batch.link_node[edge], existing.row_node])
    kinds = cap_of_type[np.concatenate([batch.link_type[edge], existing.row_type])]
    node_kind = np.unique(nodes * len(_CAP_TYPES) + kinds)
    comp_kind, counts = np.unique(
        labels[n_rec + node_kind // len(_CAP_TYPES)] * len(_CAP_TYPES) + node_kind % len(_CAP_TYPES),
        return_counts=True,
    )
    limit = np.array([caps.get(t, 1) for t in _CAP_TYPES], dtype=np.int64)
    over = np.zeros(labels.size, dtype=np.bool_)
    over[comp_kind[counts > limit[comp_kind % len(_CAP_TYPES)]] // len(_CAP_TYPES)] = True
    return _Graph(labels[:n_rec], members_per, owner, over, usable)


def _resolve(batch: _Batch, existing: _Existing, caps: dict[str, int], report: BulkReport) -> _Plan:
    """A member per component by the rules in the module docstring: vectorised for records with verified
    identifiers in ordinary components, one by one for split components and unverified identifiers."""
    graph = _components(batch, existing, caps, report)
    n_rec, n_node = len(batch.records), len(batch.nodes)
    verified_links = graph.usable & batch.link_verified
    has_verified = np.zeros(n_rec, dtype=np.bool_)
    has_verified[batch.link_record[verified_links]] = True
    comp = graph.comp_record
    deferred = has_verified & (graph.members_per[comp] >= 2)
    report.merges_existing = [batch.records[i] for i in np.flatnonzero(deferred).tolist()]
    ordinary = has_verified & ~deferred & ~graph.over[comp]
    comps = np.unique(comp[ordinary])
    attached = graph.members_per[comps] == 1
    report.members_attached = int(attached.sum())
    comp_target = np.where(attached, -1 - graph.owner[comps], np.cumsum(~attached) - 1)
    plan = _Plan(int((~attached).sum()), np.full(n_rec, UNRESOLVED, dtype=np.int64))
    plan.record_target[ordinary] = comp_target[np.searchsorted(comps, comp[ordinary])]
    # Verified links of ordinary records: each (type, value) once, to its component's member.
    chosen = np.flatnonzero(verified_links & ordinary[batch.link_record])
    key = batch.link_type[chosen] * n_node + batch.link_node[chosen]
    _, first = np.unique(key, return_index=True)
    chosen, key = chosen[np.sort(first)], key[np.sort(first)]
    held_keys = existing.row_type * n_node + existing.row_node
    held = np.isin(key, held_keys)
    for kind_node in key[np.isin(key, held_keys[~existing.row_verified])].tolist():
        plan.upgrades.append((kind_node // n_node, kind_node % n_node))
    fresh = chosen[~held]
    plan.id_target = plan.record_target[batch.link_record[fresh]].tolist()
    plan.id_type = batch.link_type[fresh].tolist()
    plan.id_node = batch.link_node[fresh].tolist()
    plan.id_verified = [True] * fresh.size
    plan.id_link = fresh.tolist()
    split = has_verified & ~deferred & graph.over[comp]
    unverified = graph.usable & ~batch.link_verified
    if split.any() or unverified.any():
        owners = _owners(existing, plan)
        _split_over_cap(batch, plan, split, verified_links, owners, caps, report)
        _place_unverified(batch, plan, unverified, has_verified, owners, _held_counts(batch, owners), caps, report)
    return plan


def _owners(existing: _Existing, plan: _Plan) -> dict[int, int]:
    """Value node → the member (target) holding it, after the vectorised pass."""
    owners = dict(zip(existing.row_node.tolist(), (-1 - existing.row_member).tolist(), strict=True))
    owners.update(zip(plan.id_node, plan.id_target, strict=True))
    return owners


def _held_counts(batch: _Batch, owners: dict[int, int]) -> dict[tuple[int, str], int]:
    """Distinct values per (member, cap type)."""
    counts: dict[tuple[int, str], int] = {}
    for node, target in owners.items():
        key = (target, batch.nodes[node][0])
        counts[key] = counts.get(key, 0) + 1
    return counts


def _links_by_record(batch: _Batch, wanted: npt.NDArray[np.bool_]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for i in np.flatnonzero(wanted).tolist():
        grouped.setdefault(int(batch.link_record[i]), []).append(i)
    return grouped


def _split_over_cap(
    batch: _Batch,
    plan: _Plan,
    split: npt.NDArray[np.bool_],
    verified_links: npt.NDArray[np.bool_],
    owners: dict[int, int],
    caps: dict[str, int],
    report: BulkReport,
) -> None:
    """Records of an over-cap component, one member each in input order; a shared value goes first-come."""
    grouped = _links_by_record(batch, verified_links & split[batch.link_record])
    for record in sorted(grouped):
        links = grouped[record]
        per_kind: dict[str, set[int]] = {}
        for i in links:
            per_kind.setdefault(batch.nodes[int(batch.link_node[i])][0], set()).add(int(batch.link_node[i]))
        if any(len(nodes) > caps.get(kind, 1) for kind, nodes in per_kind.items()):
            report.refused_records.append(batch.records[record])
            continue
        report.split_records.append(batch.records[record])
        free = [i for i in links if int(batch.link_node[i]) not in owners]
        report.held_by_another_member += len(links) - len(free)
        if not free:
            continue
        target = plan.new_member()
        plan.record_target[record] = target
        for i in free:
            owners[int(batch.link_node[i])] = target
            plan.add(target, int(batch.link_type[i]), int(batch.link_node[i]), True, i)


def _place_unverified(
    batch: _Batch,
    plan: _Plan,
    unverified: npt.NDArray[np.bool_],
    has_verified: npt.NDArray[np.bool_],
    owners: dict[int, int],
    counts: dict[tuple[int, str], int],
    caps: dict[str, int],
    report: BulkReport,
) -> None:
    """Unverified links, in input order: they attach where nothing conflicts and never connect."""
    grouped = _links_by_record(batch, unverified)
    for record in sorted(grouped):
        links = grouped[record]
        target = int(plan.record_target[record])
        if target == UNRESOLVED and has_verified[record]:
            continue  # its component was left for review, or the record refused
        if target == UNRESOLVED:
            holders = {owners[int(batch.link_node[i])] for i in links if int(batch.link_node[i]) in owners}
            if len(holders) == 1:
                target = holders.pop()
                report.members_attached += 1
        placed: list[int] = []
        for i in links:
            node = int(batch.link_node[i])
            kind = batch.nodes[node][0]
            holder = owners.get(node)
            if holder is not None:
                report.held_by_another_member += holder != target
                continue
            if target != UNRESOLVED and counts.get((target, kind), 0) >= caps.get(kind, 1):
                report.cap_reached += 1
                continue
            if node not in {int(batch.link_node[j]) for j in placed}:
                placed.append(i)
        if not placed:
            continue
        if target == UNRESOLVED:
            target = plan.new_member()
        plan.record_target[record] = target
        for i in placed:
            node = int(batch.link_node[i])
            owners[node] = target
            counts[(target, batch.nodes[node][0])] = counts.get((target, batch.nodes[node][0]), 0) + 1
            plan.add(target, int(batch.link_type[i]), node, False, i)


def _table(model: type[Member] | type[MemberIdentifier]) -> Table:
    """The model's table, for Core statements that skip ORM bookkeeping."""
    return cast(Table, model.__table__)


# --- writing ---------------------------------------------------------------------------------------

# A UUIDv7 made by PostgreSQL (the statement's millisecond, then random bits): ids of rows written in
# bulk are generated next to the data instead of built one by one in Python.
_PG_UUID7 = (
    "(substr(lpad(to_hex(CAST(:ms AS bigint)), 12, '0'), 1, 8) || '-' || "
    "substr(lpad(to_hex(CAST(:ms AS bigint)), 12, '0'), 9, 4) || '-7' || "
    "substr(CAST(gen_random_uuid() AS text), 16, 3) || substr(CAST(gen_random_uuid() AS text), 19))::uuid"
)
_PG_MASK = (
    "COALESCE(NULLIF(s.value_masked, ''), CASE WHEN length(n.value_hash) <= 8 "
    "THEN left(n.value_hash, 2) || repeat('*', greatest(1, length(n.value_hash) - 2)) "
    "ELSE left(n.value_hash, 4) || '****' || right(n.value_hash, 4) END)"
)


async def _write_postgres(
    session: AsyncSession, tenant_id: uuid.UUID, batch: _Batch, existing: _Existing, plan: _Plan, source: str
) -> int:
    """New members are numbered 0…n-1 and existing ones -1-i; their ids meet the identifiers in SQL."""
    now, ms = utcnow(), time.time_ns() // 1_000_000
    for table in ("zt_bulk_members", "zt_bulk_nodes", "zt_bulk_identifiers"):
        await session.execute(text(f"DROP TABLE IF EXISTS {table}"))
    await session.execute(text("CREATE TEMP TABLE zt_bulk_members (n bigint, id uuid)"))
    await session.execute(
        text(
            f"INSERT INTO zt_bulk_members SELECT n, {_PG_UUID7} "  # noqa: S608 - constants only
            "FROM generate_series(0, CAST(:count AS bigint) - 1) AS n"
        ),
        {"ms": ms, "count": plan.new_members},
    )
    await session.execute(text("CREATE TEMP TABLE zt_bulk_nodes (n bigint, value_hash varchar(64))"))
    await session.execute(
        text(
            "CREATE TEMP TABLE zt_bulk_identifiers "
            "(target bigint, type smallint, node bigint, verified boolean, value_masked varchar(40))"
        )
    )
    await _copy(session, "zt_bulk_members", ["n", "id"], ((-1 - i, m) for i, m in enumerate(existing.member_ids)))
    await _copy(session, "zt_bulk_nodes", ["n", "value_hash"], ((n, h) for n, (_k, h) in enumerate(batch.nodes)))
    masks = [batch.masked[i][:40] for i in plan.id_link]
    await _copy(
        session,
        "zt_bulk_identifiers",
        ["target", "type", "node", "verified", "value_masked"],
        zip(plan.id_target, plan.id_type, plan.id_node, plan.id_verified, masks, strict=True),
    )
    for table in ("zt_bulk_members", "zt_bulk_nodes", "zt_bulk_identifiers"):
        await session.execute(text(f"ANALYZE {table}"))  # temporary tables have no statistics otherwise
    params = {"t": tenant_id, "now": now, "ms": ms, "source": source, "types": list(_TYPES)}
    await session.execute(
        text(
            "INSERT INTO members (id, tenant_id, status, profile, created_at, updated_at) "
            "SELECT id, CAST(:t AS uuid), 'active', '{}', CAST(:now AS timestamptz), CAST(:now AS timestamptz) "
            "FROM zt_bulk_members WHERE n >= 0"
        ),
        params,
    )
    done = await session.execute(
        text(
            "INSERT INTO member_identifiers (id, tenant_id, member_id, type, value_hash, value_masked, verified, "  # noqa: S608 - constants only
            "source, first_seen_at, last_seen_at) "
            f"SELECT {_PG_UUID7}, CAST(:t AS uuid), m.id, (CAST(:types AS text[]))[s.type + 1], n.value_hash, "
            f"{_PG_MASK}, s.verified, CAST(:source AS text), CAST(:now AS timestamptz), CAST(:now AS timestamptz) "
            "FROM zt_bulk_identifiers s "
            "JOIN zt_bulk_members m ON m.n = s.target JOIN zt_bulk_nodes n ON n.n = s.node "
            "ON CONFLICT (tenant_id, type, value_hash) DO NOTHING"
        ),
        params,
    )
    for table in ("zt_bulk_members", "zt_bulk_nodes", "zt_bulk_identifiers"):
        await session.execute(text(f"DROP TABLE {table}"))
    return int(done.rowcount)  # type: ignore[attr-defined]


async def _write_sqlite(
    session: AsyncSession, tenant_id: uuid.UUID, batch: _Batch, existing: _Existing, plan: _Plan, source: str
) -> int:
    now = utcnow()
    new_members = [new_id() for _ in range(plan.new_members)]

    def member_of(target: int) -> uuid.UUID:
        return new_members[target] if target >= 0 else existing.member_ids[-1 - target]

    members = [
        {"id": m, "tenant_id": tenant_id, "status": oneid.ACTIVE, "profile": {}, "created_at": now, "updated_at": now}
        for m in new_members
    ]
    identifiers = [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "member_id": member_of(target),
            "type": _TYPES[kind],
            "value_hash": batch.nodes[node][1],
            "value_masked": batch.masked[link][:40] or r.mask_token(batch.nodes[node][1]),
            "verified": verified,
            "source": source,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for target, kind, node, verified, link in zip(
            plan.id_target, plan.id_type, plan.id_node, plan.id_verified, plan.id_link, strict=True
        )
    ]
    added = 0
    statement = insert_ignore(session, MemberIdentifier.__table__, "tenant_id", "type", "value_hash")
    for low in range(0, max(len(members), len(identifiers)), WRITE_CHUNK):
        if chunk := members[low : low + WRITE_CHUNK]:
            await session.execute(insert(_table(Member)), chunk)
    for low in range(0, len(identifiers), WRITE_CHUNK):
        done = await session.execute(statement, identifiers[low : low + WRITE_CHUNK])
        added += int(done.rowcount)  # type: ignore[attr-defined]
    return added


async def _write(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    batch: _Batch,
    existing: _Existing,
    plan: _Plan,
    source: str,
    report: BulkReport,
) -> None:
    writer = _write_postgres if _is_postgres(session) else _write_sqlite
    report.identifiers_added = await writer(session, tenant_id, batch, existing, plan, source)
    report.members_created = plan.new_members
    for kind, node in plan.upgrades:
        await session.execute(
            update(_table(MemberIdentifier))
            .where(
                MemberIdentifier.tenant_id == tenant_id,
                MemberIdentifier.type == _TYPES[kind],
                MemberIdentifier.value_hash == batch.nodes[node][1],
            )
            .values(verified=True, last_seen_at=utcnow())
        )
    report.identifiers_verified = len(plan.upgrades)


async def resolve_links(session: AsyncSession, links: Iterable[Link], *, source: str) -> BulkReport:
    """Resolve a batch of links into the brand's members (see the module docstring for the rules).

    Runs in the caller's unit of work and never commits. Loading the same links again creates nothing.
    """
    source = r.check_source(source)
    tenant_id = _tenant_of(session)
    report = BulkReport()
    started = time.perf_counter()
    batch = _check_links(links)
    report.records, report.links = len(batch.records), int(batch.link_record.size)
    report.seconds["prepare"] = time.perf_counter() - started
    mark = time.perf_counter()
    await session.flush()
    await _stage_values(session, batch)
    existing = await _read_existing(session, tenant_id, batch)
    caps = await oneid.caps_for(session)
    report.seconds["read_existing"] = time.perf_counter() - mark
    mark = time.perf_counter()
    plan = _resolve(batch, existing, caps, report)
    report.seconds["resolve"] = time.perf_counter() - mark
    mark = time.perf_counter()
    await _write(session, tenant_id, batch, existing, plan, source, report)
    await session.execute(text("DROP TABLE IF EXISTS zt_bulk_values"))
    report.seconds["write"] = time.perf_counter() - mark
    report.seconds = {k: round(v, 3) for k, v in report.seconds.items()}
    return report
