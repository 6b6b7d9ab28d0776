"""OneID use cases: link identifiers to one member (deterministic merge with guard rails), undo a
merge, block values, look members up. Pure rules live in `oneid_rules`.

Concurrency: `(tenant, type, value_hash)` is unique, so two links racing on one identifier cannot both
attach it; the loser's insert does nothing, its savepoint is rolled back and the link runs again and
finds the winner's member. Members that a link or an unmerge changes are locked (`FOR UPDATE`, in id
order) and re-read, so a merge never works from a stale picture under READ COMMITTED; SQLite
serialises writers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import check_phone
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import NotFound, ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.core.models import Consumer
from zhongtai.core.principals import Principal
from zhongtai.core.sql import insert_ignore, upsert
from zhongtai.members import facts, loyalty_merge
from zhongtai.members import oneid_rules as r
from zhongtai.members.errors import CapReached, LinkContended, MergeRefused, UnmergeRefused
from zhongtai.members.models import (
    Member,
    MemberBlockedIdentifier,
    MemberIdentifier,
    MemberMerge,
    MemberOneIdSettings,
)

MAX_IDENTIFIERS_PER_LINK = 20
LINK_ATTEMPTS = 5  # a link that lost a race runs again (each run re-reads what the winner committed)
ACTIVE, MERGED, ERASED = "active", "merged", "erased"


@dataclass(frozen=True)
class IdentifierInput:
    type: str
    value: str
    verified: bool = False
    app_id: str | None = None


@dataclass(frozen=True)
class ProfileInput:
    name: str | None = None
    birthday: date | None = None
    gender: str | None = None
    city: str | None = None
    address: str | None = None
    verified: bool = False


@dataclass(frozen=True)
class Skipped:
    type: str
    value_masked: str
    reason: str  # blocked | held_by_another_member | cap_reached


@dataclass
class Linked:
    member: Member
    is_new: bool
    merged_member_ids: list[uuid.UUID] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class _Item:
    norm: r.Normalised
    hash: str
    verified: bool

    @property
    def type(self) -> str:
        return self.norm.type.value

    @property
    def key(self) -> tuple[str, str]:
        return (r.cap_key(self.type), self.hash)


class _Race(Exception):
    """The picture read changed under this link (a racing insert or merge): run it again."""


def identifier_hash(crypto: Crypto, norm: r.Normalised) -> str:
    if norm.type is r.IdentifierType.PHONE:
        return crypto.lookup_hash(norm.key, purpose=r.PHONE_PURPOSE)
    if norm.type is r.IdentifierType.MARKETPLACE_PHONE_HASH:
        return norm.key
    return crypto.lookup_hash(norm.key, purpose=f"{r.IDENTIFIER_PURPOSE}.{norm.type.value}")


def marketplace_phone_hash(crypto: Crypto, phone: str) -> str:
    """The hashed phone a brand sends to (and receives from) marketplaces: the keyed hash of the E.164
    number, the same one a member's phone identifier carries, so the two match."""
    return crypto.lookup_hash(check_phone(phone), purpose=r.PHONE_PURPOSE)


def _row_key(row: MemberIdentifier) -> tuple[str, str]:
    return (r.cap_key(row.type), row.value_hash)


async def caps_for(session: AsyncSession) -> dict[str, int]:
    caps = dict(r.DEFAULT_CAPS)
    row = await session.scalar(select(MemberOneIdSettings))
    if row is not None:
        caps.update({k: int(v) for k, v in row.caps.items()})
    return caps


async def do_set_caps(session: AsyncSession, actor: Principal, caps: dict[str, int]) -> dict[str, int]:
    """Set the brand's own caps per identifier type (a marketplace hashed phone counts as a phone)."""
    clean: dict[str, int] = {}
    for kind, cap in caps.items():
        typ = r.check_type(kind)
        if typ is r.IdentifierType.MARKETPLACE_PHONE_HASH or not 1 <= int(cap) <= 50:
            raise ValidationFailed(f"Set a cap between 1 and 50 for {typ.value}.", field="caps")
        clean[typ.value] = int(cap)
    await session.execute(
        upsert(
            session,
            MemberOneIdSettings,
            ("tenant_id",),
            {"caps": clean, "updated_at": utcnow()},
        ).values(id=new_id(), tenant_id=actor.tenant_id, caps=clean, updated_at=utcnow())
    )
    await audit.record(session, actor, "members.oneid_caps", target_type="tenant", data={"caps": clean})
    return await caps_for(session)


async def do_block_identifier(
    session: AsyncSession, actor: Principal, crypto: Crypto, *, type: str, value: str, app_id: str | None, note: str
) -> MemberBlockedIdentifier:
    """Never match or merge on this value again (a store's counter phone, a test account)."""
    norm = r.normalise(type, value, app_id)
    digest = identifier_hash(crypto, norm)
    kind = r.cap_key(norm.type.value)
    await session.execute(
        insert_ignore(session, MemberBlockedIdentifier, "tenant_id", "type", "value_hash").values(
            id=new_id(),
            tenant_id=actor.tenant_id,
            type=kind,
            value_hash=digest,
            value_masked=norm.masked,
            note=note.strip()[:200],
            created_at=utcnow(),
        )
    )
    row = await session.scalar(
        select(MemberBlockedIdentifier).where(
            MemberBlockedIdentifier.type == kind, MemberBlockedIdentifier.value_hash == digest
        )
    )
    assert row is not None
    await audit.record(session, actor, "members.identifier_blocked", target_type="identifier", data={"type": kind})
    return row


async def _normalise_all(session: AsyncSession, crypto: Crypto, given: list[IdentifierInput]) -> list[_Item]:
    if not given:
        raise ValidationFailed("Give at least one identifier.", field="identifiers")
    if len(given) > MAX_IDENTIFIERS_PER_LINK:
        raise ValidationFailed(f"Give at most {MAX_IDENTIFIERS_PER_LINK} identifiers.", field="identifiers")
    items: dict[tuple[str, str], _Item] = {}
    for one in given:
        norm = r.normalise(one.type, one.value, one.app_id)
        item = _Item(norm, identifier_hash(crypto, norm), one.verified)
        seen = items.get((item.type, item.hash))
        items[(item.type, item.hash)] = item if seen is None else _Item(norm, item.hash, seen.verified or one.verified)
    accounts = [uuid.UUID(i.norm.key) for i in items.values() if i.norm.type is r.IdentifierType.CONSUMER_ACCOUNT]
    if accounts:
        known = set(await session.scalars(select(Consumer.id).where(Consumer.id.in_(accounts))))
        if missing := [a for a in accounts if a not in known]:
            raise ValidationFailed(f"No consumer account {missing[0]} in this brand.", field="value")
    phones = {i.hash for i in items.values() if i.verified and r.cap_key(i.type) == r.IdentifierType.PHONE}
    if len(phones) > 1:
        raise ValidationFailed("One link carries one verified phone; send the others separately.", field="identifiers")
    return list(items.values())


def _profile_entries(crypto: Crypto, profile: ProfileInput | None, source: str, at: datetime) -> dict[str, Any]:
    if profile is None:
        return {}
    entries: dict[str, Any] = {}
    today = at.date() if at.date() > utcnow().date() else utcnow().date()
    for name in r.PROFILE_FIELDS:
        raw = getattr(profile, name)
        if raw is None:
            continue
        text = r.check_profile_value(name, raw, today=today)
        entry: dict[str, Any] = {"source": source, "verified": profile.verified, "at": at.isoformat()}
        if purpose := r.ENCRYPTED_PROFILE_FIELDS.get(name):
            entry["ciphertext"] = crypto.pii.encrypt(text, purpose=purpose)
            entry["masked"] = r.mask_profile_value(name, text)
        else:
            entry["value"] = text
        entries[name] = entry
    return entries


def _matching(items: list[_Item]) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for item in items:
        if item.norm.type in r.PHONE_CLASS:
            kinds = [t.value for t in r.PHONE_CLASS]
            clauses.append(and_(MemberIdentifier.type.in_(kinds), MemberIdentifier.value_hash == item.hash))
        else:
            clauses.append(and_(MemberIdentifier.type == item.type, MemberIdentifier.value_hash == item.hash))
    return or_(*clauses)


async def _holders(session: AsyncSession, items: list[_Item]) -> list[MemberIdentifier]:
    rows = await session.scalars(
        select(MemberIdentifier).where(_matching(items)).execution_options(populate_existing=True)
    )
    return list(rows)


async def _lock_members(session: AsyncSession, ids: set[uuid.UUID]) -> list[Member]:
    if not ids:
        return []
    rows = await session.scalars(
        select(Member)
        .where(Member.id.in_(ids))
        .order_by(Member.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def identifiers_of(session: AsyncSession, member_id: uuid.UUID) -> list[MemberIdentifier]:
    rows = await session.scalars(
        select(MemberIdentifier)
        .where(MemberIdentifier.member_id == member_id)
        .execution_options(populate_existing=True)
    )
    return sorted(rows, key=lambda i: (r.priority(i.type), i.first_seen_at, i.id))


def _over_caps(keys: set[tuple[str, str]], caps: dict[str, int]) -> str | None:
    """The first type (by priority) whose distinct values exceed its cap."""
    counts: dict[str, int] = {}
    for kind, _ in keys:
        counts[kind] = counts.get(kind, 0) + 1
    over = [k for k, n in counts.items() if n > caps.get(k, 1)]
    return min(over, key=r.priority) if over else None


def _refusal(kind: str, verified: bool) -> str:
    if kind == r.IdentifierType.PHONE:
        what = "two different verified phones" if verified else "two different phones"
        return f"These members have {what}; review them instead of merging."
    return f"Together these members would hold more {kind} identifiers than allowed; review them instead of merging."


async def _merge(
    session: AsyncSession, actor: Principal, survivor: Member, merged: Member, *, reason: str, at: datetime
) -> MemberMerge:
    moved = await identifiers_of(session, merged.id)
    before = dict(survivor.profile)
    after = r.survive(before, merged.profile)
    snapshot = {
        "identifiers": [
            {
                "id": str(i.id),
                "type": i.type,
                "value_masked": i.value_masked,
                "verified": i.verified,
                "source": i.source,
                "last_seen_at": i.last_seen_at.isoformat(),
            }
            for i in moved
        ],
        "merged": {"profile": merged.profile, "updated_at": merged.updated_at.isoformat()},
        "survivor": {"profile_before": before, "profile_after": after, "updated_at": survivor.updated_at.isoformat()},
        "loyalty": await loyalty_merge.do_move(session, survivor, merged),
    }
    await session.execute(
        update(MemberIdentifier)
        .where(MemberIdentifier.member_id == merged.id)
        .values(member_id=survivor.id)
        .execution_options(synchronize_session=False)
    )
    merged.status, merged.merged_into_id, merged.updated_at = MERGED, survivor.id, at
    survivor.profile, survivor.updated_at = after, at
    record = MemberMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        actor_label=actor.label[:254],
        reason=reason[:300],
        snapshot=snapshot,
        created_at=at,
    )
    session.add(record)
    await session.flush()
    await facts.on_merged(session, survivor, merged)
    await audit.record(
        session,
        actor,
        "members.merge",
        target_type="member",
        target_id=survivor.id,
        data={"merged_id": str(merged.id), "merge_id": str(record.id), "identifiers_moved": len(moved)},
    )
    return record


async def _usable(session: AsyncSession, items: list[_Item]) -> tuple[list[_Item], list[Skipped]]:
    """The identifiers that are not blocked, and a report of those that are."""
    blocked_rows = await session.scalars(
        select(MemberBlockedIdentifier).where(
            or_(
                *(
                    and_(MemberBlockedIdentifier.type == i.key[0], MemberBlockedIdentifier.value_hash == i.hash)
                    for i in items
                )
            )
        )
    )
    blocked = {(b.type, b.value_hash) for b in blocked_rows}
    skipped = [Skipped(i.type, i.norm.masked, "blocked") for i in items if i.key in blocked]
    usable = [i for i in items if i.key not in blocked]
    if not usable:
        raise ValidationFailed("Every identifier given is blocked; there is nothing to link on.", field="identifiers")
    return usable, skipped


async def _find_target(
    session: AsyncSession,
    actor: Principal,
    usable: list[_Item],
    caps: dict[str, int],
    *,
    reason: str,
    now: datetime,
) -> tuple[Member | None, list[uuid.UUID]]:
    """The member these identifiers belong to (merging several when verified identifiers say so)."""
    rows = await _holders(session, usable)
    verified_keys = {i.key for i in usable if i.verified}
    strong = {x.member_id for x in rows if x.verified and _row_key(x) in verified_keys}
    candidates = strong or {x.member_id for x in rows}
    members = await _lock_members(session, candidates)
    if any(m.status != ACTIVE for m in members) or len(members) != len(candidates):
        raise _Race
    rows = await _holders(session, usable)  # again, now that the members are locked
    if {x.member_id for x in rows if x.verified and _row_key(x) in verified_keys} != strong:
        raise _Race
    if not strong and {x.member_id for x in rows} != candidates:
        raise _Race
    if not strong:
        if len(members) != 1:
            return None, []
        # Only unverified evidence points here: attach if nothing conflicts, never merge.
        own = {_row_key(x) for x in await identifiers_of(session, members[0].id)}
        return (members[0] if _over_caps(own | verified_keys, caps) is None else None), []
    ordered = sorted(members, key=lambda m: (m.created_at, m.id))
    target = ordered[0]
    if len(ordered) == 1:
        return target, []
    held: list[MemberIdentifier] = []
    for m in ordered:
        held.extend(await identifiers_of(session, m.id))
    keys = {_row_key(x) for x in held} | verified_keys
    if over := _over_caps(keys, caps):
        verified_only = {_row_key(x) for x in held if x.verified} | verified_keys
        raise MergeRefused(
            _refusal(over, _over_caps(verified_only, caps) == over),
            member_ids=[str(m.id) for m in ordered],
            identifier_type=over,
        )
    merged_ids: list[uuid.UUID] = []
    for step, other in enumerate(ordered[1:]):
        await _merge(session, actor, target, other, reason=reason, at=now + timedelta(microseconds=step))
        merged_ids.append(other.id)
    return target, merged_ids


async def _attach(
    session: AsyncSession,
    target: Member,
    usable: list[_Item],
    caps: dict[str, int],
    *,
    source: str,
    seen_at: datetime,
) -> list[Skipped]:
    skipped: list[Skipped] = []
    held_by = {(x.type, x.value_hash): x for x in await _holders(session, usable)}
    owned = {_row_key(x) for x in await identifiers_of(session, target.id)}
    for item in sorted(usable, key=lambda i: (not i.verified, r.priority(i.type))):
        row = held_by.get((item.type, item.hash))
        if row is not None and row.member_id != target.id:
            skipped.append(Skipped(item.type, item.norm.masked, "held_by_another_member"))
            continue
        if row is not None:
            row.verified = row.verified or item.verified
            row.last_seen_at = max(row.last_seen_at, seen_at)
            continue
        kind = r.cap_key(item.type)
        if _over_caps(owned | {item.key}, caps) is not None:
            if item.verified:
                raise CapReached(
                    f"This member already has as many {kind} identifiers as allowed ({caps.get(kind, 1)}); "
                    "review the member before adding another.",
                    member_id=str(target.id),
                    identifier_type=kind,
                )
            skipped.append(Skipped(item.type, item.norm.masked, "cap_reached"))
            continue
        inserted = await session.execute(
            insert_ignore(session, MemberIdentifier, "tenant_id", "type", "value_hash").values(
                id=new_id(),
                tenant_id=target.tenant_id,
                member_id=target.id,
                type=item.type,
                value_hash=item.hash,
                value_ciphertext=item.norm.key if item.norm.personal else None,
                value_masked=item.norm.masked,
                app_id=item.norm.app_id,
                account_id=uuid.UUID(item.norm.key) if item.type == r.IdentifierType.CONSUMER_ACCOUNT else None,
                verified=item.verified,
                source=source,
                first_seen_at=seen_at,
                last_seen_at=seen_at,
            )
        )
        if inserted.rowcount != 1:  # type: ignore[attr-defined]
            raise _Race  # another link attached it a moment ago
        owned.add(item.key)
    return skipped


async def _link_once(
    session: AsyncSession,
    actor: Principal,
    items: list[_Item],
    entries: dict[str, Any],
    *,
    source: str,
    reason: str,
    seen_at: datetime,
) -> Linked:
    caps = await caps_for(session)
    usable, skipped = await _usable(session, items)
    now = utcnow()
    target, merged_ids = await _find_target(session, actor, usable, caps, reason=reason, now=now)
    is_new = target is None
    if target is None:
        target = Member(status=ACTIVE, profile={}, created_at=now, updated_at=now)
        session.add(target)
        await session.flush()
    skipped += await _attach(session, target, usable, caps, source=source, seen_at=seen_at)
    if entries:
        target.profile = r.survive(target.profile, entries)
        target.updated_at = now
    await session.flush()
    return Linked(target, is_new, merged_ids, skipped)


async def do_link(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    *,
    identifiers: list[IdentifierInput],
    profile: ProfileInput | None = None,
    source: str,
    reason: str = "",
    observed_at: datetime | None = None,
) -> Linked:
    """Find the members holding any of the given verified identifiers: none → a new member; one →
    attach; several → merge them into the oldest. Unverified identifiers attach only when nothing
    conflicts and never cause a merge; blocked values are reported and never used."""
    source = r.check_source(source)
    seen_at = observed_at or utcnow()
    if seen_at.tzinfo is None:
        raise ValidationFailed("Give the observation time with its time zone.", field="observed_at")
    items = await _normalise_all(session, crypto, identifiers)
    for item in items:
        if item.norm.personal:  # encrypt once, outside the retry loop
            object.__setattr__(
                item, "norm", _encrypted(item.norm, crypto.pii.encrypt(item.norm.key, purpose=r.PHONE_PURPOSE))
            )
    entries = _profile_entries(crypto, profile, source, seen_at)
    why = reason.strip() or f"link from {source}"
    for attempt in range(LINK_ATTEMPTS):
        try:
            async with session.begin_nested():
                return await _link_once(session, actor, items, entries, source=source, reason=why, seen_at=seen_at)
        except (_Race, IntegrityError):
            if attempt == LINK_ATTEMPTS - 1:
                raise LinkContended() from None
    raise LinkContended()


async def cap_conflicts(
    session: AsyncSession, pairs: list[tuple[uuid.UUID, uuid.UUID]]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The pairs whose identifiers together exceed the brand's caps (e.g. two different phones): a
    merge of them would be refused, so they are not worth an operator's review."""
    ids = {m for pair in pairs for m in pair}
    if not ids:
        return set()
    held: dict[uuid.UUID, set[tuple[str, str]]] = {m: set() for m in ids}
    rows = await session.execute(
        select(MemberIdentifier.member_id, MemberIdentifier.type, MemberIdentifier.value_hash).where(
            MemberIdentifier.member_id.in_(ids)
        )
    )
    for member_id, kind, value_hash in rows.all():
        held[member_id].add((r.cap_key(kind), value_hash))
    caps = await caps_for(session)
    return {(a, b) for a, b in pairs if _over_caps(held[a] | held[b], caps) is not None}


async def do_merge(
    session: AsyncSession, actor: Principal, member_ids: tuple[uuid.UUID, uuid.UUID], reason: str
) -> MemberMerge:
    """Merge two members an operator reviewed (a duplicate suggestion): the older survives, as in a
    link. The caps still hold — two members with two different phones are refused — and so does
    unmerge, which restores both exactly."""
    why = " ".join((reason or "").split())
    if not why:
        raise ValidationFailed("Say why these members are one person.", field="reason")
    if member_ids[0] == member_ids[1]:
        raise ValidationFailed("A member cannot be merged into itself.", field="member_ids")
    members = await _lock_members(session, set(member_ids))
    if len(members) != 2:
        raise NotFound("No such member.")
    if inactive := [m for m in members if m.status != ACTIVE]:
        raise MergeRefused(
            "One of these members is no longer active (merged or erased).", member_ids=[str(m.id) for m in inactive]
        )
    survivor, merged = sorted(members, key=lambda m: (m.created_at, m.id))
    held = await identifiers_of(session, survivor.id) + await identifiers_of(session, merged.id)
    if over := _over_caps({_row_key(x) for x in held}, await caps_for(session)):
        verified_only = {_row_key(x) for x in held if x.verified}
        raise MergeRefused(
            _refusal(over, _over_caps(verified_only, await caps_for(session)) == over),
            member_ids=[str(survivor.id), str(merged.id)],
            identifier_type=over,
        )
    return await _merge(session, actor, survivor, merged, reason=why[:300], at=utcnow())


def _encrypted(norm: r.Normalised, ciphertext: str) -> r.Normalised:
    """The normal form whose `key` is replaced by its ciphertext for storage (hash already taken)."""
    return r.Normalised(norm.type, ciphertext, norm.masked, norm.app_id, personal=True)


async def do_unmerge(session: AsyncSession, actor: Principal, merge_id: uuid.UUID, reason: str) -> MemberMerge:
    """Undo a merge: the merged member is active again with its identifiers and profile as they were;
    the survivor's profile fields the merge changed (and nothing changed since) go back too."""
    why = " ".join((reason or "").split())
    if not why:
        raise ValidationFailed("Say why this merge is undone.", field="reason")
    merge = await session.scalar(
        select(MemberMerge)
        .where(MemberMerge.id == merge_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if merge is None:
        raise NotFound("No such merge.")
    if merge.undone_at is not None:
        raise UnmergeRefused("This merge was already undone.")
    members = {m.id: m for m in await _lock_members(session, {merge.survivor_id, merge.merged_id})}
    survivor, merged = members[merge.survivor_id], members[merge.merged_id]
    later = await session.scalar(
        select(MemberMerge)
        .where(
            MemberMerge.undone_at.is_(None),
            MemberMerge.id != merge.id,
            or_(
                MemberMerge.merged_id == survivor.id,
                and_(MemberMerge.survivor_id == survivor.id, MemberMerge.created_at > merge.created_at),
            ),
        )
        .order_by(MemberMerge.created_at.desc())
        .limit(1)
    )
    if later is not None or survivor.status != ACTIVE or merged.status != MERGED:
        raise UnmergeRefused(
            "A later merge builds on this one; undo the later merge first.",
            later_merge_id=str(later.id) if later is not None else None,
        )
    snap = merge.snapshot
    for moved in snap["identifiers"]:
        await session.execute(
            update(MemberIdentifier)
            .where(MemberIdentifier.id == uuid.UUID(moved["id"]), MemberIdentifier.member_id == survivor.id)
            .values(
                member_id=merged.id,
                verified=moved["verified"],
                source=moved["source"],
                last_seen_at=datetime.fromisoformat(moved["last_seen_at"]),
            )
            .execution_options(synchronize_session=False)
        )
    await loyalty_merge.do_restore(session, survivor, merged, snap.get("loyalty"))
    now = utcnow()
    merged.status, merged.merged_into_id = ACTIVE, None
    merged.profile = snap["merged"]["profile"]
    merged.updated_at = datetime.fromisoformat(snap["merged"]["updated_at"])
    before, after = snap["survivor"]["profile_before"], snap["survivor"]["profile_after"]
    restored = dict(survivor.profile)
    untouched = restored == after
    for name in set(before) | set(after):
        if restored.get(name) == after.get(name):
            if name in before:
                restored[name] = before[name]
            else:
                restored.pop(name, None)
    survivor.profile = restored
    survivor.updated_at = datetime.fromisoformat(snap["survivor"]["updated_at"]) if untouched else now
    merge.undone_at, merge.undone_by, merge.undo_reason = now, actor.label[:254], why[:300]
    await session.flush()
    await facts.on_unmerged(session, survivor, merged)
    await audit.record(
        session,
        actor,
        "members.unmerge",
        target_type="member",
        target_id=merged.id,
        data={"merge_id": str(merge.id), "survivor_id": str(survivor.id), "reason": why[:300]},
    )
    return merge


async def get_member(session: AsyncSession, member_id: uuid.UUID) -> Member:
    member = await session.scalar(select(Member).where(Member.id == member_id))
    if member is None:
        raise NotFound("No such member.")
    return member


async def merges_of(session: AsyncSession, member_id: uuid.UUID) -> list[MemberMerge]:
    rows = await session.scalars(
        select(MemberMerge)
        .where(or_(MemberMerge.survivor_id == member_id, MemberMerge.merged_id == member_id))
        .order_by(MemberMerge.created_at, MemberMerge.id)
    )
    return list(rows)


async def list_members(session: AsyncSession, *, limit: int = 20, offset: int = 0) -> tuple[list[Member], int]:
    """The brand's active members, newest first."""
    active = Member.status == ACTIVE
    total = await session.scalar(select(func.count()).select_from(Member).where(active))
    rows = await session.scalars(
        select(Member).where(active).order_by(Member.created_at.desc(), Member.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def consumer_ids_of(session: AsyncSession, member_id: uuid.UUID) -> list[uuid.UUID]:
    """The consumer accounts (scans, orders, rewards) linked to the member."""
    rows = await session.scalars(
        select(MemberIdentifier.account_id).where(
            MemberIdentifier.member_id == member_id,
            MemberIdentifier.type == r.IdentifierType.CONSUMER_ACCOUNT.value,
            MemberIdentifier.account_id.is_not(None),
        )
    )
    return sorted(a for a in rows if a is not None)


async def find_by_phone(session: AsyncSession, crypto: Crypto, phone: str) -> list[Member]:
    """Exact look-up through the phone's keyed hash (a phone or a marketplace hashed phone)."""
    digest = crypto.lookup_hash(check_phone(phone), purpose=r.PHONE_PURPOSE)
    kinds = [t.value for t in r.PHONE_CLASS]
    rows = await session.scalars(
        select(Member)
        .join(MemberIdentifier, MemberIdentifier.member_id == Member.id)
        .where(MemberIdentifier.type.in_(kinds), MemberIdentifier.value_hash == digest)
        .order_by(Member.created_at)
    )
    return list(dict.fromkeys(rows))
