"""What a OneID merge does to loyalty, and how an unmerge undoes it.

A merge moves the merged member's lots and points balance (one ledger transfer) and memberships to
the survivor. Where both hold a membership of one program, the survivor keeps theirs at the higher of
the two tiers and the merged one's row is kept in the snapshot. An unmerge gives back the lots the
merged member brought with what is left of them — spending after the merge takes the survivor's
combined lots earliest-expiry first, so what was spent since may have come from them — transfers
that much back, and restores both members' memberships as they were before the merge. Lots the
survivor earned after the merge stay with the survivor. The callers hold both members' locks.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.ids import new_id
from zhongtai.members import loyalty, points
from zhongtai.members.loyalty_models import LoyaltyMembership, LoyaltyTier, PointsLot
from zhongtai.members.models import Member


def _state(row: LoyaltyMembership) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "program_id": str(row.program_id),
        "tier_id": str(row.tier_id) if row.tier_id else None,
        "tier_since": row.tier_since.isoformat(),
        "period_ends_at": row.period_ends_at.isoformat() if row.period_ends_at else None,
        "joined_at": row.joined_at.isoformat(),
    }


def _apply(row: LoyaltyMembership, state: dict[str, Any]) -> None:
    row.tier_id = uuid.UUID(state["tier_id"]) if state["tier_id"] else None
    row.tier_since = datetime.fromisoformat(state["tier_since"])
    row.period_ends_at = datetime.fromisoformat(state["period_ends_at"]) if state["period_ends_at"] else None


async def _rank(session: AsyncSession, tier_id: uuid.UUID | None) -> int:
    if tier_id is None:
        return 0
    return int(await session.scalar(select(LoyaltyTier.rank).where(LoyaltyTier.id == tier_id)) or 0)


async def _fold_memberships(session: AsyncSession, survivor: Member, merged: Member) -> dict[str, Any]:
    mine = {m.program_id: m for m in await loyalty.memberships_of(session, survivor.id)}
    moved: list[str] = []
    folded: list[dict[str, Any]] = []
    for row in await loyalty.memberships_of(session, merged.id):
        kept = mine.get(row.program_id)
        if kept is None:
            row.member_id = survivor.id
            moved.append(str(row.id))
            continue
        folded.append({"merged": _state(row), "survivor_before": _state(kept)})
        if await _rank(session, row.tier_id) > await _rank(session, kept.tier_id):
            kept.tier_id, kept.tier_since, kept.period_ends_at = row.tier_id, row.tier_since, row.period_ends_at
        await session.delete(row)
    await session.flush()
    return {"moved": moved, "folded": folded}


async def do_move(session: AsyncSession, survivor: Member, merged: Member) -> dict[str, Any]:
    """Move the merged member's points, lots and memberships to the survivor; what an unmerge needs."""
    lots = list(await session.scalars(select(PointsLot.id).where(PointsLot.member_id == merged.id)))
    balance = await points.balance_of(session, merged.id)
    transfer = str(new_id())
    if balance:
        await points.transfer(session, f"points:merge:{transfer}", merged.id, survivor.id, balance)
    await session.execute(
        update(PointsLot)
        .where(PointsLot.member_id == merged.id)
        .values(member_id=survivor.id)
        .execution_options(synchronize_session=False)
    )
    memberships = await _fold_memberships(session, survivor, merged)
    return {"transfer": transfer, "points": balance, "lots": [str(i) for i in lots], "memberships": memberships}


async def do_restore(session: AsyncSession, survivor: Member, merged: Member, snapshot: dict[str, Any] | None) -> int:
    """Undo `do_move`: the merged member's lots (with what is left of them), that many points, and both
    members' memberships as they were. Returns the points given back."""
    if not snapshot:
        return 0
    lot_ids = [uuid.UUID(i) for i in snapshot["lots"]]
    back = int(
        await session.scalar(
            select(func.sum(PointsLot.remaining)).where(PointsLot.id.in_(lot_ids), PointsLot.member_id == survivor.id)
        )
        or 0
    )
    if back:
        await points.transfer(session, f"points:unmerge:{snapshot['transfer']}", survivor.id, merged.id, back)
    await session.execute(
        update(PointsLot)
        .where(PointsLot.id.in_(lot_ids), PointsLot.member_id == survivor.id)
        .values(member_id=merged.id)
        .execution_options(synchronize_session=False)
    )
    await _restore_memberships(session, survivor, merged, snapshot["memberships"])
    return back


async def _restore_memberships(
    session: AsyncSession, survivor: Member, merged: Member, memberships: dict[str, Any]
) -> None:
    moved = [uuid.UUID(i) for i in memberships["moved"]]
    if moved:
        await session.execute(
            update(LoyaltyMembership)
            .where(LoyaltyMembership.id.in_(moved))
            .values(member_id=merged.id)
            .execution_options(synchronize_session=False)
        )
    current = {m.program_id: m for m in await loyalty.memberships_of(session, survivor.id)}
    for pair in memberships["folded"]:
        state = pair["merged"]
        row = LoyaltyMembership(
            id=uuid.UUID(state["id"]),
            program_id=uuid.UUID(state["program_id"]),
            member_id=merged.id,
            joined_at=datetime.fromisoformat(state["joined_at"]),
        )
        _apply(row, state)
        session.add(row)
        kept = current.get(uuid.UUID(state["program_id"]))
        if kept is not None:
            _apply(kept, pair["survivor_before"])
    await session.flush()
