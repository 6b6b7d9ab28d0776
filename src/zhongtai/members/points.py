"""Points: a ledger currency (PTS) with a lot per earning. Earn, redeem, take back on refund, expire.

Every member has one ledger account (kind `points`, floor 0) funded from the brand's `points_issued`
account (no floor); the sum of a member's lots' `remaining` equals that account's balance.

Exactly once per (rule, source): the lot's natural key is unique and the ledger entry's idempotency
key is derived from it. Every change to a member's points first locks the member's row, so earnings,
redemptions, refunds, expiry and merges of one member run one after the other and read what the one
before committed (SQLite serialises writers anyway); the ledger's floor backs "never negative".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, event, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from zhongtai.core import sql, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.kit.cache import TTLCache
from zhongtai.ledger import batch as ledger_batch
from zhongtai.ledger import service as ledger
from zhongtai.ledger.errors import InsufficientFunds
from zhongtai.ledger.service import POINTS, EntryDraft, Line
from zhongtai.members import loyalty
from zhongtai.members import loyalty_rules as lr
from zhongtai.members.loyalty_models import PointsLot, PointsRule
from zhongtai.members.models import Member

ISSUED_KEY = "points:issued"
MAX_REDEMPTION = 10**9
MAX_EARN_BATCH = 5_000
_LOTS = cast(Table, PointsLot.__table__)
# Ledger account ids by (tenant, key): an account's id never changes once created, so a hit skips the
# look-up (or the open) on every earning. Filled only after the transaction that read or created the
# account committed, so a rolled-back account is never served.
_ACCOUNT_IDS: TTLCache[tuple[uuid.UUID, str], uuid.UUID] = TTLCache(
    "members.points_accounts", ttl=3600, maxsize=200_000
)
_PENDING_IDS = "zt_points_account_ids"


@event.listens_for(Session, "after_commit")
def _publish_account_ids(session: Session) -> None:
    for key, account_id in session.info.pop(_PENDING_IDS, {}).items():
        _ACCOUNT_IDS.set(key, account_id)


@event.listens_for(Session, "after_rollback")
def _drop_account_ids(session: Session) -> None:
    session.info.pop(_PENDING_IDS, None)


class NotEnoughPoints(Conflict):
    code = "not_enough_points"
    default_message = "Not enough points for this redemption."


class MemberMerged(Conflict):
    code = "member_merged"
    default_message = "This member was merged into another; use the member it was merged into."


@dataclass(frozen=True)
class Earned:
    lot: PointsLot
    is_new: bool


@dataclass(frozen=True)
class EarnRequest:
    """One earning of a batch: what `do_earn` takes."""

    member_id: uuid.UUID
    rule: PointsRule
    source: str
    points: int
    qualifying_fen: int = 0
    at: datetime | None = None


@dataclass(frozen=True)
class Redeemed:
    entry_id: uuid.UUID
    points: int
    balance: int
    is_new: bool


def member_account_key(member_id: uuid.UUID) -> str:
    return f"points:member:{member_id}"


async def lock_member(session: AsyncSession, member_id: uuid.UUID) -> Member:
    """Lock the member's row: the one mutex of all changes to their points. A merged member's points
    live with the survivor, so they are refused (a job that resolved the member before the merge
    retries and finds the survivor)."""
    member = await session.scalar(
        select(Member).where(Member.id == member_id).with_for_update().execution_options(populate_existing=True)
    )
    if member is None:
        raise NotFound("No such member.")
    if member.merged_into_id is not None:
        raise MemberMerged(merged_into_id=str(member.merged_into_id))
    return member


async def member_account(session: AsyncSession, member_id: uuid.UUID) -> uuid.UUID:
    account = await ledger.open_account(
        session,
        key=member_account_key(member_id),
        kind="points",
        name="Member points",
        currency=POINTS,
        owner_type="member",
        owner_id=str(member_id),
        floor=0,
    )
    return account.id


async def issued_account(session: AsyncSession) -> uuid.UUID:
    account = await ledger.open_account(
        session, key=ISSUED_KEY, kind="points_issued", name="Points issued", currency=POINTS
    )
    return account.id


async def balance_of(session: AsyncSession, member_id: uuid.UUID) -> int:
    account = await ledger.account_by_key(session, member_account_key(member_id))
    return 0 if account is None else await ledger.balance_of(session, account.id)


async def _move(
    session: AsyncSession, key: str, kind: str, member_id: uuid.UUID, delta: int, **data: object
) -> ledger.Posted:
    """Post `delta` points to the member (negative: from them), the other side on the issued account."""
    accounts, issued = await _points_accounts(session, [member_id])
    mine = accounts[member_id]
    draft = EntryDraft(
        idempotency_key=key,
        kind=kind,
        lines=[Line(mine, delta), Line(issued, -delta)],
        reference_type="member",
        reference_id=str(member_id),
        data=dict(data),
    )
    return await ledger.post(session, draft, posted_by="members.points")


async def transfer(
    session: AsyncSession, key: str, from_member: uuid.UUID, to_member: uuid.UUID, amount: int
) -> ledger.Posted:
    """Move points between two members' accounts (a merge and its undo; callers hold both locks)."""
    source, target = await member_account(session, from_member), await member_account(session, to_member)
    draft = EntryDraft(
        idempotency_key=key,
        kind="points_transfer",
        lines=[Line(source, -amount), Line(target, amount)],
        reference_type="member",
        reference_id=str(to_member),
    )
    return await ledger.post(session, draft, posted_by="members.points")


async def lot_by_source(session: AsyncSession, rule: str, source: str) -> PointsLot | None:
    return await session.scalar(
        select(PointsLot)
        .where(PointsLot.rule == rule, PointsLot.source == source)
        .execution_options(populate_existing=True)
    )


async def do_earn(
    session: AsyncSession,
    member_id: uuid.UUID,
    rule: PointsRule,
    *,
    source: str,
    points: int,
    qualifying_fen: int = 0,
    at: datetime | None = None,
) -> Earned | None:
    """Give the member `points` for `source` under `rule`, once: a second call for the same rule and
    source returns the first lot. 0 points give nothing, unless they stand for spend (a lot of 0 that
    spend tiers count). Tiers are re-evaluated at once. A batch of one (see `do_earn_many`)."""
    request = EarnRequest(member_id, rule, source, points, qualifying_fen, at)
    return (await do_earn_many(session, [request]))[0]


async def do_earn_many(session: AsyncSession, earnings: Sequence[EarnRequest]) -> list[Earned | None]:
    """`do_earn` for many earnings in one transaction with set-based statements; the result of each
    request in order (a request repeating an earlier one's rule and source gets that one's result).

    Locks the members in id order, inserts the new lots in one statement (`ON CONFLICT DO NOTHING` on
    the lot's natural key: exactly once), enrols and re-evaluates the tiers of the members who earned,
    and posts last, with `ledger.batch.post_many`: the brand's `points_issued` balance — the row every
    earning touches — is updated once per batch and held locked only from there to the commit.
    A missing or merged member refuses the whole batch (`NotFound`, `MemberMerged`)."""
    if len(earnings) > MAX_EARN_BATCH:
        raise ValidationFailed(f"Earn at most {MAX_EARN_BATCH} at once.", field="earnings")
    for request in earnings:
        if not request.source or len(request.source) > 120:
            raise ValidationFailed("An earning needs a source of up to 120 characters.", field="source")
    if not earnings:
        return []
    await _lock_members(session, sorted({e.member_id for e in earnings}))
    wanted: dict[tuple[str, str], EarnRequest] = {}
    for request in earnings:
        wanted.setdefault((request.rule.kind, request.source), request)
    lots: dict[tuple[str, str], Earned] = {
        key: Earned(lot, False) for key, lot in (await _lots_by_key(session, list(wanted))).items()
    }
    todo = [e for key, e in wanted.items() if key not in lots and (e.points > 0 or e.qualifying_fen > 0)]
    created = await _insert_lots(session, todo)
    lots |= {key: Earned(lot, True) for key, lot in created.items()}
    if created:
        members = sorted({lot.member_id for lot in created.values()})
        now = max((e.at for e in todo if e.at is not None), default=None) or utcnow()
        await loyalty.do_auto_enroll_many(session, members, now)
        await loyalty.do_refresh_tiers_many(session, members, now)
        await _post_earnings(session, [lot for lot in created.values() if lot.amount > 0])
    return [lots.get((e.rule.kind, e.source)) for e in earnings]


async def _lock_members(session: AsyncSession, member_ids: list[uuid.UUID]) -> None:
    """`lock_member` for many members, in id order (no deadlock between two batches)."""
    rows = await session.execute(
        select(Member.id, Member.merged_into_id)
        .where(sql.in_values(session, Member.id, member_ids))
        .order_by(Member.id)
        .with_for_update()
    )
    found = {row[0]: row[1] for row in rows.all()}
    if len(found) != len(member_ids):
        raise NotFound("No such member.", member_ids=sorted(str(m) for m in set(member_ids) - found.keys()))
    merged = next((into for into in found.values() if into is not None), None)
    if merged is not None:
        raise MemberMerged(merged_into_id=str(merged))


async def _lots_by_key(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], PointsLot]:
    by_rule: dict[str, list[str]] = {}
    for rule, source in keys:
        by_rule.setdefault(rule, []).append(source)
    conditions = [(PointsLot.rule == rule) & PointsLot.source.in_(sources) for rule, sources in by_rule.items()]
    rows = await session.scalars(select(PointsLot).where(or_(*conditions)).execution_options(populate_existing=True))
    return {(lot.rule, lot.source): lot for lot in rows}


def _lot_row(tenant_id: uuid.UUID, request: EarnRequest) -> dict[str, Any]:
    now = request.at or utcnow()
    rule = request.rule
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "member_id": request.member_id,
        "entry_id": new_id() if request.points > 0 else None,
        "rule": rule.kind,
        "source": request.source,
        "amount": max(request.points, 0),
        "remaining": max(request.points, 0),
        "qualifying_fen": request.qualifying_fen,
        "earned_at": now,
        "expires_at": lr.expires_at(rule.expiry, rule.expiry_days, now),
        "expired_amount": 0,
        "reversed_at": None,
        "reversed_amount": 0,
        "shortfall": 0,
    }


async def _insert_lots(session: AsyncSession, requests: list[EarnRequest]) -> dict[tuple[str, str], PointsLot]:
    """Insert the lots; those whose (rule, source) another transaction took first are left out (and
    earn nothing here)."""
    if not requests:
        return {}
    tenant_id = _tenant(session)
    rows = [_lot_row(tenant_id, request) for request in requests]
    statement = sql.insert_ignore(session, _LOTS, "tenant_id", "rule", "source").returning(_LOTS.c.id)
    inserted = set((await session.execute(statement, rows)).scalars().all())
    return {(r["rule"], r["source"]): PointsLot(**r) for r in rows if r["id"] in inserted}


async def _post_earnings(session: AsyncSession, lots: list[PointsLot]) -> None:
    """One ledger entry per lot, posted as one batch (the entry ids are the lots' `entry_id`)."""
    if not lots:
        return
    accounts, issued = await _points_accounts(session, sorted({lot.member_id for lot in lots}))
    drafts = [
        EntryDraft(
            idempotency_key=f"points:earn:{lot.rule}:{lot.source}",
            kind="points_earn",
            lines=[Line(accounts[lot.member_id], lot.amount), Line(issued, -lot.amount)],
            reference_type="member",
            reference_id=str(lot.member_id),
        )
        for lot in lots
    ]
    ids = {draft.idempotency_key: lot.entry_id for draft, lot in zip(drafts, lots, strict=True) if lot.entry_id}
    posted = await ledger_batch.post_many(session, drafts, posted_by="members.points", entry_ids=ids)
    for lot, done in zip(lots, posted, strict=True):
        if done.entry_id != lot.entry_id:  # the key was posted before the lot existed: point at that entry
            lot.entry_id = done.entry_id
            await session.execute(update(_LOTS).where(_LOTS.c.id == lot.id).values(entry_id=done.entry_id))


def _tenant(session: AsyncSession) -> uuid.UUID:
    scope = tenancy.current_scope(session)
    if not isinstance(scope, uuid.UUID):
        raise NotFound("Points need a session scoped to one brand.")
    return scope


async def _points_accounts(
    session: AsyncSession, member_ids: list[uuid.UUID]
) -> tuple[dict[uuid.UUID, uuid.UUID], uuid.UUID]:
    """The members' points accounts and the brand's issued account, opened when missing; cached ids
    are used without a query."""
    tenant_id = _tenant(session)
    specs = {member_account_key(m): _member_spec(m) for m in member_ids}
    specs[ISSUED_KEY] = ledger_batch.AccountSpec(ISSUED_KEY, "points_issued", "Points issued", POINTS)
    ids: dict[str, uuid.UUID] = {}
    for key in specs:
        cached = _ACCOUNT_IDS.get((tenant_id, key))
        if cached is not None:
            ids[key] = cached
    missing = [spec for key, spec in specs.items() if key not in ids]
    if missing:
        opened = await ledger_batch.open_accounts(session, missing)
        ids |= opened
        pending = session.sync_session.info.setdefault(_PENDING_IDS, {})
        pending.update({(tenant_id, key): account_id for key, account_id in opened.items()})
    return {m: ids[member_account_key(m)] for m in member_ids}, ids[ISSUED_KEY]


def _member_spec(member_id: uuid.UUID) -> ledger_batch.AccountSpec:
    return ledger_batch.AccountSpec(
        member_account_key(member_id), "points", "Member points", POINTS, "member", str(member_id), 0
    )


async def open_lots(session: AsyncSession, member_id: uuid.UUID) -> list[PointsLot]:
    """The member's lots with points left, earliest expiry first (the order spending takes them in)."""
    rows = await session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member_id, PointsLot.remaining > 0)
        .order_by(PointsLot.expires_at, PointsLot.earned_at, PointsLot.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def _take(session: AsyncSession, lots: list[PointsLot], amounts: list[int]) -> dict[str, int]:
    """Take the allocated amounts off the lots (caller holds the member's lock)."""
    taken: dict[str, int] = {}
    for lot, amount in zip(lots, amounts, strict=False):
        if amount:
            lot.remaining -= amount
            taken[str(lot.id)] = amount
    await session.flush()
    return taken


def check_redemption(points: int, idempotency_key: str) -> None:
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_REDEMPTION:
        raise ValidationFailed(f"Redeem 1 to {MAX_REDEMPTION} points.", field="points")
    if not idempotency_key or len(idempotency_key) > 80 or not idempotency_key.isprintable():
        raise ValidationFailed("Give an idempotency key of 1 to 80 printable characters.", field="idempotency_key")


async def do_redeem(
    session: AsyncSession, member_id: uuid.UUID, *, points: int, idempotency_key: str, reference: str = ""
) -> Redeemed:
    """Spend points, earliest-expiring lots first. The same key again answers the first redemption;
    a balance that would go below 0 is refused (409)."""
    check_redemption(points, idempotency_key)
    await lock_member(session, member_id)
    key = f"points:redeem:{member_id}:{idempotency_key}"
    done = await ledger.entry_by_key(session, key)
    if done is None:
        lots = await open_lots(session, member_id)
        allocation = lr.allocate([lot.remaining for lot in lots], points)
        try:
            posted = await _move(session, key, "points_redeem", member_id, -points, reference=reference[:120])
        except InsufficientFunds:
            raise NotEnoughPoints(
                f"You have {await balance_of(session, member_id)} points; this needs {points}.",
                balance=await balance_of(session, member_id),
                points=points,
            ) from None
        await _take(session, lots, allocation)
        return Redeemed(posted.entry.id, points, await balance_of(session, member_id), True)
    replay = await _move(session, key, "points_redeem", member_id, -points, reference=reference[:120])
    return Redeemed(replay.entry.id, points, await balance_of(session, member_id), False)


async def do_reverse_earning(
    session: AsyncSession, *, rule: str, source: str, at: datetime | None = None
) -> PointsLot | None:
    """Take back what an earning gave (a refunded order): its points less what already expired, from
    that lot first and then the earliest-expiring others, never below 0. What could not be taken
    back (already spent) is recorded as the lot's `shortfall`. Idempotent; None when nothing was earned."""
    found = await lot_by_source(session, rule, source)
    if found is None:
        return None
    await lock_member(session, found.member_id)
    lot = await lot_by_source(session, rule, source)
    assert lot is not None
    if lot.reversed_at is not None:
        return lot
    owed = lot.amount - lot.expired_amount
    others = [x for x in await open_lots(session, lot.member_id) if x.id != lot.id]
    ordered = ([lot] if lot.remaining else []) + others
    allocation = lr.allocate([x.remaining for x in ordered], owed)
    taken = sum(allocation)
    if taken:
        await _move(session, f"points:reverse:{lot.id}", "points_reverse", lot.member_id, -taken, lot_id=str(lot.id))
        await _take(session, ordered, allocation)
    lot.reversed_at, lot.reversed_amount, lot.shortfall = at or utcnow(), taken, owed - taken
    await session.flush()
    return lot


async def _expire_lot(session: AsyncSession, lot_id: uuid.UUID, member_id: uuid.UUID, now: datetime) -> int:
    await lock_member(session, member_id)
    lot = await session.scalar(
        select(PointsLot).where(PointsLot.id == lot_id).execution_options(populate_existing=True)
    )
    if lot is None or lot.remaining <= 0 or lot.expires_at > now:
        return 0
    amount = lot.remaining
    await _move(session, f"points:expire:{lot.id}", "points_expire", lot.member_id, -amount, lot_id=str(lot.id))
    await session.execute(
        update(PointsLot)
        .where(PointsLot.id == lot.id)
        .values(remaining=0, expired_amount=PointsLot.expired_amount + amount)
        .execution_options(synchronize_session="fetch")
    )
    return amount


async def do_expire_due(session: AsyncSession, at: datetime | None = None, *, limit: int = 500) -> int:
    """Post an expiry entry for what is left of every lapsed lot (up to `limit` lots); the points lapsed.
    Running again expires nothing twice (one entry per lot, and the lot's `remaining` is 0 after)."""
    now = at or utcnow()
    due = await session.execute(
        select(PointsLot.id, PointsLot.member_id)
        .where(PointsLot.expires_at <= now, PointsLot.remaining > 0)
        .order_by(PointsLot.member_id, PointsLot.expires_at)
        .limit(limit)
    )
    return sum([await _expire_lot(session, lot_id, member_id, now) for lot_id, member_id in due.all()])


async def lots_of(session: AsyncSession, member_id: uuid.UUID) -> list[PointsLot]:
    rows = await session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member_id)
        .order_by(PointsLot.earned_at, PointsLot.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def expiry_schedule(lots: list[PointsLot]) -> list[tuple[datetime, int]]:
    """How many points lapse when, earliest first (lots with points left only)."""
    totals: dict[datetime, int] = {}
    for lot in lots:
        if lot.remaining > 0:
            totals[lot.expires_at] = totals.get(lot.expires_at, 0) + lot.remaining
    return sorted(totals.items())
