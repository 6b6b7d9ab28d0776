"""A member's rights over their personal data (PIPL): the export of everything kept about them, and
erasure.

Erasure removes the person, not the business: profile values, phone numbers and every identifier with
its keyed hash go, the real-name identities of their consumer accounts are deleted and the accounts'
phone numbers replaced by a marker; orders, entries, rewards, the ledger and the trace log keep their
amounts, ids and hashes untouched. The erasure itself is recorded (who, when, why, how much) with no
personal data in the record.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import PHONE_PURPOSE as CONSUMER_PHONE_PURPOSE
from zhongtai.core.consumers import do_erase_consumer_phone
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import NotFound, ValidationFailed
from zhongtai.core.models import Consumer
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.members import consent, facts, oneid, service
from zhongtai.members import oneid_rules as r
from zhongtai.members.models import Member, MemberErasure, MemberIdentifier, MemberIdentity, MemberMerge
from zhongtai.members.schemas import IdentityOut

SELF_LABEL = "the member (own request)"
SELF_REASON = "the member's own request"


@dataclass(frozen=True)
class Erased:
    record: MemberErasure
    is_new: bool


def _account_hash(crypto: Crypto, consumer_id: uuid.UUID) -> str:
    return oneid.identifier_hash(crypto, r.normalise(r.IdentifierType.CONSUMER_ACCOUNT.value, str(consumer_id)))


async def _lock(session: AsyncSession, member_id: uuid.UUID) -> Member | None:
    return await session.scalar(
        select(Member).where(Member.id == member_id).with_for_update().execution_options(populate_existing=True)
    )


async def _family(session: AsyncSession, member: Member) -> list[Member]:
    """The person's member records: the one the others were merged into (first), and every member merged
    into it, directly or through another merge. All locked."""
    root, seen = member, {member.id}
    while root.merged_into_id is not None and root.merged_into_id not in seen:
        parent = await _lock(session, root.merged_into_id)
        if parent is None:
            break
        root = parent
        seen.add(root.id)
    family, frontier = [root], [root.id]
    while frontier:
        rows = await session.scalars(
            select(Member)
            .where(Member.merged_into_id.in_(frontier))
            .order_by(Member.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found = [m for m in rows if m.id not in {f.id for f in family}]
        family.extend(found)
        frontier = [m.id for m in found]
    return family


async def member_for_consumer(session: AsyncSession, crypto: Crypto, consumer_id: uuid.UUID) -> Member | None:
    """The member holding this consumer account (the one it was merged into, if it was)."""
    member = await session.scalar(
        select(Member)
        .join(MemberIdentifier, MemberIdentifier.member_id == Member.id)
        .where(
            MemberIdentifier.type == r.IdentifierType.CONSUMER_ACCOUNT.value,
            MemberIdentifier.value_hash == _account_hash(crypto, consumer_id),
        )
    )
    seen: set[uuid.UUID] = set()
    while member is not None and member.merged_into_id is not None and member.id not in seen:
        seen.add(member.id)
        member = await session.scalar(select(Member).where(Member.id == member.merged_into_id))
    return member


async def account_identifiers(
    session: AsyncSession, crypto: Crypto, consumer_id: uuid.UUID
) -> list[oneid.IdentifierInput]:
    """What a consumer account proves about its holder: the account itself and the phone it signed in
    with (verified by the one-time code), so that the member an operator finds by phone is this one."""
    found = [oneid.IdentifierInput(r.IdentifierType.CONSUMER_ACCOUNT.value, str(consumer_id), verified=True)]
    ciphertext = await session.scalar(select(Consumer.phone_ciphertext).where(Consumer.id == consumer_id))
    if ciphertext:
        phone = crypto.pii.decrypt(ciphertext, purpose=CONSUMER_PHONE_PURPOSE)
        found.append(oneid.IdentifierInput(r.IdentifierType.PHONE.value, phone, verified=True))
    return found


async def ensure_member_for_consumer(
    session: AsyncSession, actor: Principal, crypto: Crypto, consumer_id: uuid.UUID
) -> Member:
    """The consumer's member, created from their account (and its phone) when the brand has none yet —
    or the member who already holds that phone, which the account then joins."""
    member = await member_for_consumer(session, crypto, consumer_id)
    if member is not None:
        return member
    linked = await oneid.do_link(
        session,
        actor,
        crypto,
        identifiers=await account_identifiers(session, crypto, consumer_id),
        source="app",
        reason=SELF_REASON,
    )
    return linked.member


async def _consumers_of(
    session: AsyncSession, crypto: Crypto, identifiers: list[MemberIdentifier], extra: list[uuid.UUID]
) -> list[uuid.UUID]:
    """The consumer accounts of the person: those their `consumer_account` identifiers name, those
    signed in with their phone, and `extra`. Identifiers keep only a keyed hash of the account id, so
    accounts not found through the phone are found by hashing the brand's account ids."""
    wanted = {i.value_hash for i in identifiers if i.type == r.IdentifierType.CONSUMER_ACCOUNT.value}
    phone_hashes = []
    for row in identifiers:
        if row.type == r.IdentifierType.PHONE.value and row.value_ciphertext:
            e164 = crypto.pii.decrypt(row.value_ciphertext, purpose=r.PHONE_PURPOSE)
            phone_hashes.append(crypto.lookup_hash(e164, purpose=CONSUMER_PHONE_PURPOSE))
    found = set(extra)
    if phone_hashes:
        found |= set(await session.scalars(select(Consumer.id).where(Consumer.phone_hash.in_(phone_hashes))))
    missing = wanted - {_account_hash(crypto, c) for c in found}
    if missing:
        for consumer_id in await session.scalars(select(Consumer.id)):
            if _account_hash(crypto, consumer_id) in missing:
                found.add(consumer_id)
    return sorted(found)


async def erasure_of(session: AsyncSession, member_id: uuid.UUID) -> MemberErasure | None:
    return await session.scalar(select(MemberErasure).where(MemberErasure.member_id == member_id))


async def do_erase(
    session: AsyncSession,
    actor: Principal,
    member_id: uuid.UUID,
    reason: str,
    *,
    crypto: Crypto,
    consumer_ids: list[uuid.UUID] | None = None,
) -> Erased:
    """Erase the person this member is: every member record of theirs (merged ones too), their
    identifiers with their keyed hashes, their profile, the real-name identities and phone numbers of
    their consumer accounts. Consents still granted are withdrawn; history without personal data stays.
    Erasing again answers the first erasure."""
    why = " ".join((reason or "").split())
    if not why:
        raise ValidationFailed("Say why this member is erased.", field="reason")
    member = await _lock(session, member_id)
    if member is None:
        raise NotFound("No such member.")
    family = await _family(session, member)
    root = family[0]
    if root.status == oneid.ERASED:
        done = await erasure_of(session, root.id)
        if done is not None:
            return Erased(done, False)
    ids = [m.id for m in family]
    identifiers = list(await session.scalars(select(MemberIdentifier).where(MemberIdentifier.member_id.in_(ids))))
    accounts = await _consumers_of(session, crypto, identifiers, consumer_ids or [])
    identities = 0
    if accounts:
        removed = await session.execute(
            delete(MemberIdentity)
            .where(MemberIdentity.consumer_id.in_(accounts))
            .execution_options(synchronize_session=False)
        )
        identities = int(removed.rowcount or 0)  # type: ignore[attr-defined]
    for account in accounts:
        await do_erase_consumer_phone(session, account)
    await session.execute(
        delete(MemberIdentifier).where(MemberIdentifier.member_id.in_(ids)).execution_options(synchronize_session=False)
    )
    withdrawn = 0
    for one in family:
        for purpose, row in (await consent.current(session, one.id)).items():
            if row is not None and row.granted:
                await consent.append(
                    session,
                    one,
                    purpose,
                    granted=False,
                    source=consent.ERASURE_SOURCE,
                    text_version=row.text_version,
                    actor_kind=str(actor.kind),
                )
                withdrawn += 1
    await session.execute(
        update(MemberMerge)
        .where(or_(MemberMerge.survivor_id.in_(ids), MemberMerge.merged_id.in_(ids)))
        .values(snapshot={"erased": True})
        .execution_options(synchronize_session=False)
    )
    now = utcnow()
    for one in family:
        one.profile, one.status, one.updated_at = {}, oneid.ERASED, now
    await facts.on_erased(session, family)
    by_member = actor.kind is PrincipalKind.CONSUMER
    label = SELF_LABEL if by_member else actor.label[:254]
    summary = {
        "members": [str(i) for i in ids],
        "identifiers_removed": len(identifiers),
        "identities_removed": identities,
        "consumer_accounts_erased": len(accounts),
        "consents_withdrawn": withdrawn,
    }
    record = MemberErasure(
        tenant_id=root.tenant_id,
        member_id=root.id,
        requested_by="member" if by_member else "staff",
        actor_kind=str(actor.kind),
        actor_label=label,
        reason=why[:300],
        summary=summary,
        erased_at=now,
    )
    session.add(record)
    await session.flush()
    await audit.record(
        session,
        dataclasses.replace(actor, label=label),
        "members.erased",
        target_type="member",
        target_id=root.id,
        data={**summary, "reason": why[:300], "requested_by": record.requested_by},
    )
    return Erased(record, True)


# --- export --------------------------------------------------------------------------------------


def _profile(crypto: Crypto, member: Member) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, entry in member.profile.items():
        value = entry.get("value")
        if (purpose := r.ENCRYPTED_PROFILE_FIELDS.get(name)) and entry.get("ciphertext"):
            value = crypto.pii.decrypt(entry["ciphertext"], purpose=purpose)
        out[name] = {"value": value, "source": entry["source"], "verified": entry["verified"], "at": entry["at"]}
    return out


def _identifier(crypto: Crypto, row: MemberIdentifier) -> dict[str, Any]:
    value = None
    if row.type == r.IdentifierType.PHONE.value and row.value_ciphertext:
        value = crypto.pii.decrypt(row.value_ciphertext, purpose=r.PHONE_PURPOSE)
    return {
        "type": row.type,
        "value": value,
        "value_masked": row.value_masked,
        "app_id": row.app_id,
        "verified": row.verified,
        "source": row.source,
        "first_seen_at": row.first_seen_at.isoformat(),
        "last_seen_at": row.last_seen_at.isoformat(),
    }


def _consent(row: Any) -> dict[str, Any]:
    return {
        "purpose": row.purpose,
        "granted": row.granted,
        "source": row.source,
        "text_version": row.text_version,
        "recorded_at": row.recorded_at.isoformat(),
    }


def _current(purpose: str, row: Any) -> dict[str, Any]:
    if row is None:
        return {"purpose": purpose, "granted": False, "since": None}
    return {"purpose": purpose, "granted": row.granted, "since": row.recorded_at.isoformat()}


def _merge(row: MemberMerge) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "survivor_id": str(row.survivor_id),
        "merged_id": str(row.merged_id),
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
        "identifiers_moved": [
            {"type": i["type"], "value_masked": i["value_masked"]} for i in row.snapshot.get("identifiers", [])
        ],
        "undone_at": row.undone_at.isoformat() if row.undone_at else None,
        "undo_reason": row.undo_reason,
    }


async def export(
    session: AsyncSession, crypto: Crypto, member: Member, *, consumer_ids: list[uuid.UUID] | None = None
) -> dict[str, Any]:
    """Everything kept about the member: the profile and phone decrypted, the other identifiers as
    stored (masked), consents with their history, the merge history and real-name identities (masked)."""
    identifiers = await oneid.identifiers_of(session, member.id)
    accounts = await _consumers_of(session, crypto, identifiers, consumer_ids or [])
    today = service.today()
    identities = [
        IdentityOut.of(row, today).model_dump(mode="json")
        for row in await session.scalars(
            select(MemberIdentity).where(MemberIdentity.consumer_id.in_(accounts)).order_by(MemberIdentity.verified_at)
        )
    ]
    current = await consent.current(session, member.id)
    erasure = await erasure_of(session, member.id)
    return {
        "member": {
            "id": str(member.id),
            "status": member.status,
            "created_at": member.created_at.isoformat(),
            "updated_at": member.updated_at.isoformat(),
        },
        "profile": _profile(crypto, member),
        "identifiers": [_identifier(crypto, i) for i in identifiers],
        "consents": {
            "current": [_current(p.value, row) for p, row in current.items()],
            "history": [_consent(c) for c in await consent.history(session, member.id)],
        },
        "merges": [_merge(m) for m in await oneid.merges_of(session, member.id)],
        "identities": identities,
        "erasure": None
        if erasure is None
        else {"erased_at": erasure.erased_at.isoformat(), "requested_by": erasure.requested_by},
        "exported_at": utcnow().isoformat(),
    }


async def do_export(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    member_id: uuid.UUID,
    *,
    consumer_ids: list[uuid.UUID] | None = None,
) -> dict[str, Any]:
    """The export, recorded in the audit log (who exported whose data)."""
    member = await oneid.get_member(session, member_id)
    data = await export(session, crypto, member, consumer_ids=consumer_ids)
    by_member = actor.kind is PrincipalKind.CONSUMER
    await audit.record(
        session,
        dataclasses.replace(actor, label=SELF_LABEL) if by_member else actor,
        "members.exported",
        target_type="member",
        target_id=member.id,
        data={"requested_by": "member" if by_member else "staff"},
    )
    return data
