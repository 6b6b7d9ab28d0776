"""Probable duplicates: members who are probably one person, found by a Splink model on DuckDB and
offered to an operator — never merged automatically.

Deterministic OneID merges only on verified identifiers. People also come back with a new phone, a
second marketplace account or a POS card: same name, same birthday, same city, a similar address. A
scan scores pairs of active members with Splink (Fellegi–Sunter, DuckDB backend, in memory):

- blocking: pairs sharing a birthday, or a name and a city — never all n² pairs;
- comparisons: name (exact / Jaro–Winkler ≥ 0.92), birthday (exact), city (exact), address (exact /
  Jaro–Winkler ≥ 0.9 / ≥ 0.7), each with fixed m and u probabilities (`COMPARISONS`) — a brand's
  member base is too small and too unlabelled to train them, and fixed values keep a score explainable;
- a pair at or above `threshold` (0.95 by default) becomes an open suggestion — unless the two hold
  identifiers that together exceed the brand's caps (two different phones): OneID would refuse that
  merge, so the pair is counted (`over_caps`) and not queued.

Names and addresses are decrypted only in the scan's memory and its in-memory DuckDB, which is closed
when the scan ends; a suggestion stores the two member ids, the score and how each field agreed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from zhongtai.core import audit, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import CrossTenantAccess, NotFound, ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.core.principals import Principal
from zhongtai.core.sql import insert_ignore
from zhongtai.members import oneid
from zhongtai.members import oneid_rules as r
from zhongtai.members.duplicate_models import MemberDuplicateSuggestion
from zhongtai.members.errors import SuggestionClosed
from zhongtai.members.models import Member, MemberMerge

OPEN, MERGED, DISMISSED, STALE = "open", "merged", "dismissed", "stale"
STATUSES = (OPEN, MERGED, DISMISSED, STALE)
DEFAULT_THRESHOLD = 0.95
# The chance that two members of one brand picked at random are one person, before any comparison.
PRIOR_MATCH = 1e-4
FIELDS = ("name", "birthday", "city", "address")

# (field, Jaro–Winkler thresholds or None for exact only, m probabilities, u probabilities) — levels
# from the most to the least alike. u: how often two different people agree that well (Chinese names
# repeat: 王芳 is shared by hundreds of thousands; a birthday is 1 in ~25,000 over working ages);
# m: how often one person's two records do (typos, moves, a new flat).
COMPARISONS: tuple[tuple[str, tuple[float, ...] | None, tuple[float, ...], tuple[float, ...]], ...] = (
    ("name", (0.92,), (0.88, 0.08, 0.04), (0.001, 0.004, 0.995)),
    ("birthday", None, (0.95, 0.05), (0.00005, 0.99995)),
    ("city", None, (0.9, 0.1), (0.05, 0.95)),
    ("address", (0.9, 0.7), (0.55, 0.2, 0.1, 0.15), (0.0001, 0.001, 0.02, 0.9789)),
)


@dataclass(frozen=True)
class ScoredPair:
    a: uuid.UUID
    b: uuid.UUID  # a < b
    probability: float
    match_weight: float
    agreement: dict[str, str]


@dataclass(frozen=True)
class ScanReport:
    members_compared: int
    pairs_found: int
    new: int
    updated: int
    stale: int
    over_caps: int  # scored pairs left out: their identifiers together exceed the caps, a merge would be refused


def _level_of(field_weights: tuple[float, ...], weight: float) -> str:
    """How a field agreed, from Splink's weight of its comparison (`mw_<field>`): each level of
    `COMPARISONS` has its own weight log2(m/u), and a missing value weighs exactly 0."""
    if weight == 0.0:
        return "missing"
    index = min(range(len(field_weights)), key=lambda n: abs(field_weights[n] - weight))
    if index == 0:
        return "exact"
    return "different" if index == len(field_weights) - 1 else "similar"


def score_pairs(records: list[dict[str, Any]], threshold: float = DEFAULT_THRESHOLD) -> list[ScoredPair]:
    """Score the pairs among `records` (dicts with `unique_id` and the FIELDS, None when unknown) and
    return those at or above `threshold`, most probable first. Pure and synchronous: run it in a thread."""
    if len(records) < 2:
        return []
    import pyarrow as pa
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    comparisons: list[Any] = []
    for field, thresholds, m, u in COMPARISONS:
        creator = cl.JaroWinklerAtThresholds(field, list(thresholds)) if thresholds else cl.ExactMatch(field)
        comparisons.append(creator.configure(m_probabilities=list(m), u_probabilities=list(u)))
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[block_on("birthday"), block_on("name", "city")],
        probability_two_random_records_match=PRIOR_MATCH,
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=False,
    )
    table = pa.Table.from_pylist(
        records, schema=pa.schema([("unique_id", pa.string())] + [(f, pa.string()) for f in FIELDS])
    )
    api = DuckDBAPI()
    try:
        linker = Linker(api.register(table), settings, log_level=logging.WARNING)
        scored = linker.inference.predict(threshold_match_probability=threshold)
        weights = [f"mw_{field}" for field, *_ in COMPARISONS]
        rows = (
            scored.as_duckdbpyrelation()
            .select("unique_id_l", "unique_id_r", "match_probability", "match_weight", *weights)
            .fetchall()
        )
    finally:
        api.duckdb_con.close()
    levels = {field: tuple(math.log2(a / b) for a, b in zip(m, u, strict=True)) for field, _, m, u in COMPARISONS}
    pairs = []
    for left, right, probability, weight, *values in rows:
        a, b = sorted((uuid.UUID(left), uuid.UUID(right)))
        agreement = {
            field: _level_of(levels[field], float(v)) for (field, *_), v in zip(COMPARISONS, values, strict=True)
        }
        pairs.append(ScoredPair(a, b, float(probability), float(weight), agreement))
    return sorted(pairs, key=lambda p: (-p.probability, p.a, p.b))


def _record(crypto: Crypto, member_id: uuid.UUID, profile: dict[str, Any]) -> dict[str, Any] | None:
    """A member as Splink compares it, or None when too little is known to compare at all."""
    record: dict[str, Any] = {"unique_id": str(member_id)}
    for field in FIELDS:
        entry = profile.get(field)
        if not entry:
            record[field] = None
        elif purpose := r.ENCRYPTED_PROFILE_FIELDS.get(field):
            record[field] = (
                crypto.pii.decrypt(entry["ciphertext"], purpose=purpose) if entry.get("ciphertext") else None
            )
        else:
            record[field] = entry.get("value")
    known = sum(record[f] is not None for f in FIELDS)
    return record if (record["name"] or record["address"]) and known >= 2 else None


async def do_scan(session: AsyncSession, crypto: Crypto, *, threshold: float = DEFAULT_THRESHOLD) -> ScanReport:
    """Score the brand's active members and refresh the review queue: new pairs open, open pairs get
    their new score, pairs already decided stay decided, open pairs of members no longer active go stale."""
    if not 0.5 <= threshold < 1:
        raise ValidationFailed("The threshold is a probability from 0.5 to below 1.", field="threshold")
    records = []
    result = await session.stream(select(Member.id, Member.profile).where(Member.status == oneid.ACTIVE))
    async for member_id, profile in result:
        if (record := _record(crypto, member_id, profile or {})) is not None:
            records.append(record)
    scored = await asyncio.to_thread(score_pairs, records, threshold)
    refused = await oneid.cap_conflicts(session, [(p.a, p.b) for p in scored])
    pairs = [p for p in scored if (p.a, p.b) not in refused]
    known = {
        (row.member_a_id, row.member_b_id): row
        for row in await session.scalars(select(MemberDuplicateSuggestion).execution_options(populate_existing=True))
    }
    now, new, updated = utcnow(), 0, 0
    tenant_id = tenancy.current_scope(session)
    if not isinstance(tenant_id, uuid.UUID):
        raise CrossTenantAccess("a duplicate scan needs a session scoped to one brand")
    for pair in pairs:
        row = known.get((pair.a, pair.b))
        if row is None:
            inserted = await session.execute(
                insert_ignore(session, MemberDuplicateSuggestion, "tenant_id", "member_a_id", "member_b_id").values(
                    id=new_id(),
                    tenant_id=tenant_id,
                    member_a_id=pair.a,
                    member_b_id=pair.b,
                    probability=pair.probability,
                    match_weight=pair.match_weight,
                    agreement=pair.agreement,
                    status=OPEN,
                    note="",
                    found_at=now,
                    updated_at=now,
                )
            )
            new += inserted.rowcount  # type: ignore[attr-defined]
        elif row.status == OPEN:
            row.probability, row.match_weight, row.agreement, row.updated_at = (
                pair.probability,
                pair.match_weight,
                pair.agreement,
                now,
            )
            updated += 1
    stale = await _close_stale(session, now)
    return ScanReport(len(records), len(pairs), new, updated, stale, len(refused))


async def _close_stale(session: AsyncSession, now: Any) -> int:
    inactive = select(Member.id).where(Member.status != oneid.ACTIVE)
    result = await session.execute(
        update(MemberDuplicateSuggestion)
        .where(
            MemberDuplicateSuggestion.status == OPEN,
            or_(
                MemberDuplicateSuggestion.member_a_id.in_(inactive), MemberDuplicateSuggestion.member_b_id.in_(inactive)
            ),
        )
        .values(status=STALE, updated_at=now, note="one of the members is no longer active")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_suggestions(
    session: AsyncSession, *, status: str = OPEN, limit: int = 20, offset: int = 0
) -> tuple[list[tuple[MemberDuplicateSuggestion, Member, Member]], int]:
    """The queue, most probable first, each suggestion with its two members."""
    if status not in STATUSES:
        raise ValidationFailed(f"Status is one of {', '.join(STATUSES)}.", field="status")
    a, b = aliased(Member), aliased(Member)
    total = await session.scalar(
        select(func.count()).select_from(MemberDuplicateSuggestion).where(MemberDuplicateSuggestion.status == status)
    )
    rows = await session.execute(
        select(MemberDuplicateSuggestion, a, b)
        .join(a, a.id == MemberDuplicateSuggestion.member_a_id)
        .join(b, b.id == MemberDuplicateSuggestion.member_b_id)
        .where(MemberDuplicateSuggestion.status == status)
        .order_by(MemberDuplicateSuggestion.probability.desc(), MemberDuplicateSuggestion.id)
        .limit(limit)
        .offset(offset)
    )
    return [(s, ma, mb) for s, ma, mb in rows.all()], int(total or 0)


async def _open_for_update(session: AsyncSession, suggestion_id: uuid.UUID) -> MemberDuplicateSuggestion:
    row = await session.scalar(
        select(MemberDuplicateSuggestion)
        .where(MemberDuplicateSuggestion.id == suggestion_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound("No such duplicate suggestion.")
    return row


def _why(reason: str, what: str) -> str:
    why = " ".join((reason or "").split())
    if not why:
        raise ValidationFailed(f"Say why {what}.", field="reason")
    return why[:300]


async def do_merge(
    session: AsyncSession, actor: Principal, suggestion_id: uuid.UUID, reason: str
) -> tuple[MemberDuplicateSuggestion, MemberMerge]:
    """Merge the two members of an open suggestion (the OneID guard rails still apply)."""
    why = _why(reason, "these members are one person")
    row = await _open_for_update(session, suggestion_id)
    if row.status != OPEN:
        raise SuggestionClosed(status=row.status)
    merge = await oneid.do_merge(session, actor, (row.member_a_id, row.member_b_id), f"duplicate suggestion: {why}")
    row.status, row.merge_id, row.decided_by, row.decided_at, row.note = (
        MERGED,
        merge.id,
        actor.label[:254],
        utcnow(),
        why,
    )
    row.updated_at = row.decided_at
    await session.flush()
    return row, merge


async def do_dismiss(
    session: AsyncSession, actor: Principal, suggestion_id: uuid.UUID, reason: str
) -> MemberDuplicateSuggestion:
    """Say the two members are different people: the pair leaves the queue and is not suggested again."""
    why = _why(reason, "these are different people")
    row = await _open_for_update(session, suggestion_id)
    if row.status != OPEN:
        raise SuggestionClosed(status=row.status)
    row.status, row.decided_by, row.decided_at, row.note = DISMISSED, actor.label[:254], utcnow(), why
    row.updated_at = row.decided_at
    await session.flush()
    await audit.record(
        session,
        actor,
        "members.duplicate_dismissed",
        target_type="member_duplicate_suggestion",
        target_id=row.id,
        data={"member_ids": [str(row.member_a_id), str(row.member_b_id)], "reason": why},
    )
    return row


async def do_undo(
    session: AsyncSession, actor: Principal, suggestion_id: uuid.UUID, reason: str
) -> MemberDuplicateSuggestion:
    """Undo the merge a suggestion led to: both members come back as they were (OneID unmerge) and the
    pair counts as dismissed, so the next scan does not offer it again."""
    why = _why(reason, "this merge is undone")
    row = await _open_for_update(session, suggestion_id)
    if row.status != MERGED or row.merge_id is None:
        raise SuggestionClosed("Only a merged suggestion can be undone.", status=row.status)
    await oneid.do_unmerge(session, actor, row.merge_id, why)
    row.status, row.decided_by, row.decided_at, row.note = (
        DISMISSED,
        actor.label[:254],
        utcnow(),
        f"merge undone: {why}"[:300],
    )
    row.updated_at = row.decided_at
    await session.flush()
    return row
